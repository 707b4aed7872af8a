//! How `run --url` and `runs --url` find the API token: an explicit `--token-file` (the flag wins
//! over the environment), then PIPELINES_TOKEN, then the state directory's token file.

use std::path::Path;

use crate::error::Error;
use crate::token::{ApiToken, TOKEN_FILE};

/// The token to send, from `file`, else `env` (PIPELINES_TOKEN), else `<state_dir>/api-token`.
pub fn client_token(
    env: Option<String>,
    file: Option<&Path>,
    state_dir: &Path,
) -> Result<String, Error> {
    let path = match file {
        Some(path) => path.to_owned(),
        None => {
            if let Some(token) = env.filter(|token| !token.trim().is_empty()) {
                return Ok(token.trim().to_owned());
            }
            let default = state_dir.join(TOKEN_FILE);
            if !default.exists() {
                return Err(Error::NoToken);
            }
            default
        }
    };
    let text =
        std::fs::read_to_string(&path).map_err(|source| Error::TokenFile { path, source })?;
    let token = ApiToken::new(text.trim());
    if token.expose().is_empty() {
        return Err(Error::NoToken);
    }
    Ok(token.expose().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_token_file_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my-token");
        std::fs::write(&file, "from-file\n").unwrap();
        std::fs::write(dir.path().join(TOKEN_FILE), "from-state-dir\n").unwrap();
        let env = || Some("from-env".to_owned());

        let token = client_token(env(), Some(&file), dir.path()).unwrap();
        assert_eq!(token, "from-file");
        assert_eq!(client_token(env(), None, dir.path()).unwrap(), "from-env");
        assert_eq!(
            client_token(Some("  ".into()), None, dir.path()).unwrap(),
            "from-state-dir"
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            client_token(None, None, empty.path()),
            Err(Error::NoToken)
        ));
        let missing = client_token(env(), Some(&dir.path().join("nope")), dir.path());
        assert!(
            matches!(missing, Err(Error::TokenFile { .. })),
            "{missing:?}"
        );
    }
}
