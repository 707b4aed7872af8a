//! commands/import_opml.rs: `watcher import-opml FILE`: a feed reader's subscriptions added to
//! the config (checked before it is written).

use std::io::Write;

use crate::config::Config;
use crate::error::{Outcome, WatcherError};

/// `watcher import-opml`
pub fn import_opml(
    config: &Config,
    file: &std::path::Path,
    author: Option<&str>,
    dry_run: bool,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let text = std::fs::read_to_string(&config.path).map_err(|e| {
        WatcherError::Usage(format!("cannot read `{}`: {e}", config.path.display()))
    })?;
    let import = crate::subscriptions::import(&config.path, &text, file, author)
        .map_err(|e| WatcherError::Usage(crate::causes::one_line(&e)))?;
    // The result must still be a valid config before it replaces the old one.
    crate::preflight::parse(&config.path, &import.text)?;
    for (name, urls) in &import.added {
        writeln!(out, "{name}: +{} feed(s)", urls.len())?;
        for u in urls {
            writeln!(out, "  {u}")?;
        }
    }
    writeln!(
        out,
        "{} feed(s) added, {} already present",
        import.added.iter().map(|(_, u)| u.len()).sum::<usize>(),
        import.skipped
    )?;
    if dry_run {
        writeln!(out, "dry run: the config would read:\n{}", import.text)?;
    } else if !import.added.is_empty() {
        crate::subscriptions::write(&config.path, &import.text)
            .map_err(|e| WatcherError::Usage(crate::causes::one_line(&e)))?;
        writeln!(out, "wrote {}", config.path.display())?;
    }
    Ok(Outcome::Ok)
}
