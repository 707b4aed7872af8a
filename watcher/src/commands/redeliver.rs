//! commands/redeliver.rs: `watcher redeliver BATCH`: a batch whose run ended badly queued again
//! with a new idempotency key, in the store or through the daemon that holds it; a lost run only
//! with `--force`.

use std::io::Write;

use crate::config::Config;
use crate::error::{Outcome, WatcherError};
use crate::store::StoreError;
use crate::watch::Watcher;

/// `watcher redeliver BATCH`
pub async fn redeliver(
    config: Config,
    batch: &str,
    force: bool,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let listen = config.watcher.listen;
    match Watcher::inspect(config) {
        Ok(w) => {
            let d = w.redeliver(batch, force).await?;
            writeln!(
                out,
                "batch {} queued again with idempotency key {}; the next pass (or the running daemon) starts it",
                d.batch_id,
                d.idempotency_key()
            )?;
        }
        Err(WatcherError::Store(StoreError::Locked { .. })) => {
            let key = crate::control::remote_redeliver(listen, batch, force).await?;
            writeln!(
                out,
                "batch {batch} queued again with idempotency key {key}; the daemon starts it"
            )?;
        }
        Err(e) => return Err(e),
    }
    Ok(Outcome::Ok)
}
