//! How a command can fail, and the exit status each failure maps to (the contract in `--help`).

use trigger_client::exit;

/// A command's failure: the client's error, or a result that could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Client(#[from] trigger_client::Error),

    /// stdout or stderr is gone (a closed pipe, a full disk).
    #[error("cannot write to {stream}")]
    Output {
        stream: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl Failure {
    /// The exit status: the client error's own, else 2 (the caller's environment is at fault).
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Client(err) => err.exit_code(),
            Failure::Output { .. } | Failure::Runtime(_) => exit::USAGE,
        }
    }
}
