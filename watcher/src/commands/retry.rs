//! commands/retry.rs: `watcher retry [BATCH]`: failed deliveries back to pending, in the store
//! or through the daemon that holds it.

use std::io::Write;

use crate::config::Config;
use crate::error::{Outcome, WatcherError};
use crate::store::StoreError;
use crate::watch::Watcher;

/// `watcher retry`
pub async fn retry(
    config: Config,
    batch: Option<String>,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let listen = config.watcher.listen;
    let n = match Watcher::inspect(config) {
        Ok(w) => w.retry(batch.as_deref()).await?,
        Err(WatcherError::Store(StoreError::Locked { .. })) => {
            crate::control::remote_retry(listen, batch.as_deref()).await?
        }
        Err(e) => return Err(e),
    };
    writeln!(
        out,
        "re-queued {n} failed deliver{}",
        if n == 1 { "y" } else { "ies" }
    )?;
    if n == 0 && batch.is_some() {
        return Err(WatcherError::Usage(format!(
            "batch `{}` is not a failed delivery; hint: `watcher status` lists them",
            batch.unwrap_or_default()
        )));
    }
    Ok(Outcome::Ok)
}
