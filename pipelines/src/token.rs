//! The API bearer token: taken from `PIPELINES_TOKEN` (passed in by the caller) or generated at
//! first start into `<state dir>/api-token` with mode 0600, and compared in constant time.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use runner_api::TOKEN_FILE;

/// Where the token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Given by the caller (`PIPELINES_TOKEN`, or the embedding program).
    Given,
    /// Read from, or generated into (`created`), this file.
    File { path: PathBuf, created: bool },
}

/// The bearer token every `/api` request must carry. `Debug` never shows it.
#[derive(Clone)]
pub struct ApiToken {
    secret: String,
    source: TokenSource,
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "PIPELINES_TOKEN is set but empty; set a long random value, or unset it to use a generated token"
    )]
    Empty,
    #[error("token file `{path}` is empty; delete it to have a new token generated")]
    EmptyFile { path: PathBuf },
    #[error("cannot read token file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write token file `{path}`; check the state directory's permissions")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl ApiToken {
    /// Uses `given` if set; otherwise reads `<state_dir>/api-token`, creating it (0600) if missing.
    pub fn resolve(given: Option<&str>, state_dir: &Path) -> Result<Self, TokenError> {
        if let Some(given) = given {
            let secret = given.trim();
            if secret.is_empty() {
                return Err(TokenError::Empty);
            }
            return Ok(Self {
                secret: secret.to_owned(),
                source: TokenSource::Given,
            });
        }
        let path = state_dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let secret = text.trim();
                if secret.is_empty() {
                    return Err(TokenError::EmptyFile { path });
                }
                if let Ok(meta) = std::fs::metadata(&path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        path = %path.display(),
                        "token file is readable by other users; run `chmod 600` on it"
                    );
                }
                Ok(Self {
                    secret: secret.to_owned(),
                    source: TokenSource::File {
                        path,
                        created: false,
                    },
                })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let secret = generate();
                let write_error = |source| TokenError::Write {
                    path: path.clone(),
                    source,
                };
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(write_error)?;
                writeln!(file, "{secret}").map_err(write_error)?;
                Ok(Self {
                    secret,
                    source: TokenSource::File {
                        path,
                        created: true,
                    },
                })
            }
            Err(source) => Err(TokenError::Read { path, source }),
        }
    }

    /// A token with this value (for embedding programs and tests).
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            source: TokenSource::Given,
        }
    }

    /// The secret itself, to put in an `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    pub fn source(&self) -> &TokenSource {
        &self.source
    }

    /// Constant-time comparison (of SHA-256 digests, so the length does not leak either).
    pub fn matches(&self, candidate: &str) -> bool {
        let want = Sha256::digest(self.secret.as_bytes());
        let got = Sha256::digest(candidate.as_bytes());
        want.ct_eq(&got).into()
    }
}

/// 32 random bytes, hex-encoded.
/// A new random token (32 bytes, hex): what the runner writes to its token file, or what an
/// embedding program keeps in memory and passes with `RunnerSettings::with_token`.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_with_mode_0600_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = ApiToken::resolve(None, dir.path()).unwrap();
        let path = dir.path().join(TOKEN_FILE);
        assert_eq!(
            first.source(),
            &TokenSource::File {
                path: path.clone(),
                created: true
            }
        );
        assert_eq!(first.expose().len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = ApiToken::resolve(None, dir.path()).unwrap();
        assert_eq!(second.expose(), first.expose());
        assert!(matches!(
            second.source(),
            TokenSource::File { created: false, .. }
        ));
    }

    #[test]
    fn given_token_wins_and_compares() {
        let dir = tempfile::tempdir().unwrap();
        let token = ApiToken::resolve(Some("s3cret"), dir.path()).unwrap();
        assert!(token.matches("s3cret"));
        assert!(!token.matches("s3cre"));
        assert!(!token.matches(""));
        assert!(!dir.path().join(TOKEN_FILE).exists());
        assert!(matches!(
            ApiToken::resolve(Some("  "), dir.path()),
            Err(TokenError::Empty)
        ));
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
