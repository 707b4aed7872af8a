//! error.rs: the watcher's top-level error (what `main` maps to exit codes) and how an error
//! chain is shown on one line.

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
    #[error("cannot listen on `{addr}`; hint: set [watcher] listen to a free address")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon at `{addr}` did not answer: {message}")]
    Daemon { addr: String, message: String },
    #[error("{0}")]
    Usage(String),
}

/// `e` and its causes on one line, without repeating a cause already in the text.
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}
