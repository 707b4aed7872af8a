//! commands/status.rs: `watcher status`: the report from the store, or from the daemon when it
//! holds the store; a table or JSON.

use std::io::Write;

use chrono::Utc;

use crate::config::Config;
use crate::error::{Outcome, WatcherError};
use crate::status::StatusReport;
use crate::store::StoreError;
use crate::watch::Watcher;

/// `watcher status`: from the store, or from the daemon when it holds the store.
pub async fn status(
    config: Config,
    json: bool,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let listen = config.watcher.listen;
    let report = match Watcher::inspect(config) {
        Ok(w) => w.status().await?,
        Err(WatcherError::Store(StoreError::Locked { .. })) => {
            crate::control::remote_status(listen).await?
        }
        Err(e) => return Err(e),
    };
    print_status(&report, json, out)?;
    Ok(Outcome::Ok)
}

fn print_status(report: &StatusReport, json: bool, out: &mut impl Write) -> std::io::Result<()> {
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(report).expect("status serializes")
        )?;
    } else {
        report.write(Utc::now(), out)?;
    }
    Ok(())
}
