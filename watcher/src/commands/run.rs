//! commands/run.rs: `watcher run`: the daemon, until cancelled (SIGINT or SIGTERM in `main`).

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{Outcome, WatcherError};
use crate::watch::Watcher;

/// `watcher run`: the daemon, until `cancel`.
pub async fn run(config: Config, cancel: CancellationToken) -> Result<Outcome, WatcherError> {
    let addr = config.watcher.listen;
    // The store first: a second daemon on the same state dir is told which pid holds it.
    let watcher = Watcher::open(config)?;
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(source) => {
            watcher.shutdown().await?;
            return Err(WatcherError::Listen { addr, source });
        }
    };
    watcher.run(listener, cancel).await?;
    Ok(Outcome::Ok)
}
