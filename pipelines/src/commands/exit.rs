//! The exit-code contract of `pipelines` (also in `pipelines --help` and the README):
//! 0 ok, 1 a run failed, 2 bad input or usage or the state directory in use, 3 the runner
//! unreachable, 4 the store failed.

use crate::client::ClientError;
use crate::engine::{CancelError, SubmitError};
use crate::error::Error;
use crate::state::StateError;

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// A run ended failed or cancelled.
    RunFailed,
}

/// The process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The command did what was asked (for `run`: the run succeeded).
    Ok = 0,
    /// A run failed or was cancelled.
    RunFailed = 1,
    /// Bad flags, files or requests (invalid chain files included), or the state directory is
    /// in use by another process.
    BadInput = 2,
    /// The runner named by `--url` cannot be reached or answered with a server error.
    Unreachable = 3,
    /// The run database or the state directory cannot be read or written.
    StoreFailed = 4,
}

impl ExitCode {
    /// The code for a command's outcome.
    pub fn of(outcome: &Result<Status, Error>) -> Self {
        match outcome {
            Ok(Status::Success) => Self::Ok,
            Ok(Status::RunFailed) => Self::RunFailed,
            Err(err) => Self::of_error(err),
        }
    }

    /// The code for an error.
    pub fn of_error(err: &Error) -> Self {
        match err {
            Error::StateDir { .. } => Self::StoreFailed,
            Error::State(err) => Self::of_state(err),
            Error::Client(err) => Self::of_client(err),
            Error::Submit(SubmitError::State(err)) | Error::Cancel(CancelError::State(err)) => {
                Self::of_state(err)
            }
            Error::Submit(SubmitError::RunDir { .. }) => Self::StoreFailed,
            _ => Self::BadInput,
        }
    }

    fn of_state(err: &StateError) -> Self {
        match err {
            StateError::Locked { .. } | StateError::RunNotFound { .. } => Self::BadInput,
            _ => Self::StoreFailed,
        }
    }

    fn of_client(err: &ClientError) -> Self {
        match err {
            ClientError::Status { status, .. } if *status < 500 => Self::BadInput,
            _ => Self::Unreachable,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        Self::from(code as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_code() {
        let chains = Error::Chains(crate::chain::ChainErrors(Vec::new()));
        assert_eq!(ExitCode::of_error(&chains), ExitCode::BadInput);
        let locked = Error::State(StateError::Locked { path: "db".into() });
        assert_eq!(ExitCode::of_error(&locked), ExitCode::BadInput);
        let corrupt = Error::State(StateError::Corrupt {
            key: "k".into(),
            source: serde_json::from_str::<u8>("x").unwrap_err(),
        });
        assert_eq!(ExitCode::of_error(&corrupt), ExitCode::StoreFailed);
        let refused = Error::Client(ClientError::Status {
            url: "http://u/".parse().unwrap(),
            status: 404,
            message: "unknown chain".into(),
        });
        assert_eq!(ExitCode::of_error(&refused), ExitCode::BadInput);
        let broken = Error::Client(ClientError::Status {
            url: "http://u/".parse().unwrap(),
            status: 500,
            message: "store".into(),
        });
        assert_eq!(ExitCode::of_error(&broken), ExitCode::Unreachable);
        assert_eq!(ExitCode::of_error(&Error::NoToken), ExitCode::BadInput);
        assert_eq!(ExitCode::of(&Ok(Status::Success)), ExitCode::Ok);
        assert_eq!(ExitCode::of(&Ok(Status::RunFailed)), ExitCode::RunFailed);
    }
}
