//! commands/check.rs: `watcher check`: the config is valid (loading it checked it); says what it
//! holds.

use std::io::Write;

use crate::config::Config;
use crate::error::{Outcome, WatcherError};

/// `watcher check`
pub fn check(config: &Config, out: &mut impl Write) -> Result<Outcome, WatcherError> {
    let sources = config.sources();
    writeln!(
        out,
        "{}: ok ({} author(s), {} source(s), trigger {} → {})",
        config.path.display(),
        config.authors.len(),
        sources.len(),
        config
            .trigger
            .table
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("?"),
        config.trigger.pipeline
    )?;
    Ok(Outcome::Ok)
}
