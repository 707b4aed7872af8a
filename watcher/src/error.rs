//! error.rs: the watcher's top-level error and the exit-code contract it maps to (`main` applies
//! it, `watcher --help` documents it).

use crate::config::ConfigError;
use crate::deliver::DeliverError;
use crate::fetch::FetchError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WatcherError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error(transparent)]
    Embedded(#[from] crate::embedded::EmbeddedError),
    #[error(transparent)]
    Redeliver(#[from] crate::outbox::RedeliverError),
    #[error("cannot build the HTTP client")]
    Fetch(#[from] FetchError),
    #[error("cannot build the HTTP client for WebSub hubs")]
    Hub(#[from] crate::websub::hub::HubError),
    #[error(
        "cannot listen on `{addr}` for WebSub callbacks; hint: set [websub] listen to a free address"
    )]
    CallbackListen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on `{addr}`; hint: set [watcher] listen to a free address")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon at `{addr}` did not answer: {message}")]
    Daemon { addr: String, message: String },
    /// The daemon's store failed while it ran (it stopped; `reason` carries the cause and hint).
    #[error("the store failed, so the watcher stopped: {reason}")]
    StoreFailed { reason: String },
    #[error("{0}")]
    Usage(String),
    /// Writing the command's output (stdout) failed.
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
}

/// The exit codes of every `watcher` command.
pub mod exit {
    /// Done; every source and delivery was fine.
    pub const OK: u8 = 0;
    /// A run, a source or a delivery failed (the output says which).
    pub const FAILED: u8 = 1;
    /// Bad input: the command line, the config, or the state dir is in use.
    pub const USAGE: u8 = 2;
    /// The engine (or the daemon holding the store) could not be reached.
    pub const UNREACHABLE: u8 = 3;
    /// The store failed (disk, permissions, a corrupt record).
    pub const STORE: u8 = 4;
}

/// How a command that did its work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Something it handled failed (a source, a delivery, a run).
    Problems,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => exit::OK,
            Outcome::Problems => exit::FAILED,
        }
    }
}

impl WatcherError {
    /// This error's exit code (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            WatcherError::Config(_)
            | WatcherError::Usage(_)
            | WatcherError::Fetch(_)
            | WatcherError::Hub(_)
            | WatcherError::CallbackListen { .. }
            | WatcherError::Listen { .. } => exit::USAGE,
            WatcherError::Store(e) => store_exit_code(e),
            WatcherError::StoreFailed { .. } => exit::STORE,
            WatcherError::Redeliver(crate::outbox::RedeliverError::Store(e)) => store_exit_code(e),
            WatcherError::Redeliver(_) => exit::USAGE,
            WatcherError::Deliver(DeliverError(e)) => match e.exit_code() {
                trigger_client::exit::UNREACHABLE => exit::UNREACHABLE,
                _ => exit::USAGE,
            },
            WatcherError::Embedded(_) | WatcherError::Daemon { .. } => exit::UNREACHABLE,
            WatcherError::Output(_) => exit::FAILED,
        }
    }
}

fn store_exit_code(e: &StoreError) -> u8 {
    match e {
        StoreError::Locked { .. } | StoreError::NewerSchema { .. } => exit::USAGE,
        StoreError::Io { .. }
        | StoreError::Sled(_)
        | StoreError::Corrupt { .. }
        | StoreError::CorruptItem { .. }
        | StoreError::CorruptPolled { .. }
        | StoreError::Migrate { .. }
        | StoreError::InvalidUrl { .. } => exit::STORE,
    }
}

pub use crate::causes::one_line;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_codes_follow_the_contract() {
        let locked = StoreError::Locked {
            dir: "s".into(),
            pid: "1".into(),
        };
        let broken = StoreError::Io {
            dir: "s".into(),
            source: std::io::Error::other("disk"),
        };
        assert_eq!(Outcome::Ok.exit_code(), exit::OK);
        assert_eq!(Outcome::Problems.exit_code(), exit::FAILED);
        assert_eq!(WatcherError::Usage("x".into()).exit_code(), exit::USAGE);
        assert_eq!(WatcherError::Store(locked).exit_code(), exit::USAGE);
        assert_eq!(WatcherError::Store(broken).exit_code(), exit::STORE);
        let daemon = WatcherError::Daemon {
            addr: "127.0.0.1:1".into(),
            message: "refused".into(),
        };
        assert_eq!(daemon.exit_code(), exit::UNREACHABLE);
    }
}
