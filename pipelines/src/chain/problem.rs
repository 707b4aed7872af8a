//! What is wrong with chain files: one [`ChainError`] per problem (file, key, message) and
//! [`ChainErrors`], all problems of all files at once.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainError {
    pub file: PathBuf,
    /// The key path, e.g. `stages[clean].after`; `None` for whole-file problems.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: `{key}`: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem found while loading chain files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ChainErrors(pub Vec<ChainError>);

impl fmt::Display for ChainErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(
            f,
            "{count} problem{} in chain files; fix them and run `pipelines check`:",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}
