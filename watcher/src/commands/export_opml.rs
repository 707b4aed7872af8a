//! commands/export_opml.rs: `watcher export-opml`: the configured feeds as OPML on stdout.

use std::io::Write;

use crate::config::Config;
use crate::error::{Outcome, WatcherError};

/// `watcher export-opml`
pub fn export_opml(config: &Config, out: &mut impl Write) -> Result<Outcome, WatcherError> {
    write!(out, "{}", crate::subscriptions::export(config))?;
    Ok(Outcome::Ok)
}
