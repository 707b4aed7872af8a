//! commands/held.rs: `watcher held`, `watcher release SOURCE|--all` and `watcher discard
//! SOURCE|--all`: the items held as a flood, listed, staged for delivery or dropped, in the store
//! or through the daemon that holds it.

use std::io::Write;

use crate::cli::Which;
use crate::config::Config;
use crate::error::{Outcome, WatcherError};
use crate::hold::{HeldAction, HeldSource, Selection};
use crate::store::{Store, StoreError};

impl From<Which> for Selection {
    fn from(which: Which) -> Selection {
        match which.source {
            Some(url) if !which.all => Selection::Source {
                url,
                author: which.author,
            },
            _ => Selection::All,
        }
    }
}

/// The store, or `None` when the daemon holds it.
fn open(config: &Config) -> Result<Option<Store>, WatcherError> {
    match Store::open(&config.watcher.state_dir) {
        Ok(store) => Ok(Some(store)),
        Err(StoreError::Locked { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `watcher held`
pub async fn held(
    config: Config,
    json: bool,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let list = match open(&config)? {
        Some(store) => sled_gate::blocking(move || crate::hold::list(&store)).await?,
        None => crate::control::remote_held(config.watcher.listen).await?,
    };
    if json {
        let text = serde_json::to_string_pretty(&list).expect("held items serialize");
        writeln!(out, "{text}")?;
    } else {
        print_held(&list, out)?;
    }
    Ok(Outcome::Ok)
}

/// Items listed per source in the table (a flood can hold thousands).
const SHOWN: usize = 50;

fn print_held(list: &[HeldSource], out: &mut impl Write) -> std::io::Result<()> {
    let total: usize = list.iter().map(|s| s.items.len()).sum();
    if total == 0 {
        return writeln!(out, "nothing held");
    }
    writeln!(out, "HELD: {total} item(s) of {} source(s)", list.len())?;
    for s in list {
        let since = s.items.iter().map(|i| i.found_at).min();
        writeln!(
            out,
            "  {} {}: {} item(s), held since {}",
            s.author,
            s.url,
            s.items.len(),
            since
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default()
        )?;
        for item in s.items.iter().take(SHOWN) {
            writeln!(
                out,
                "    {} {}",
                item.url.as_deref().unwrap_or("-"),
                item.title.as_deref().unwrap_or("")
            )?;
        }
        if s.items.len() > SHOWN {
            writeln!(
                out,
                "    ... and {} more (`watcher held --json` lists every one)",
                s.items.len() - SHOWN
            )?;
        }
        writeln!(
            out,
            "    deliver them: `watcher release {}`; drop them: `watcher discard {}`",
            s.url, s.url
        )?;
    }
    Ok(())
}

/// `watcher release` and `watcher discard`
pub async fn on_held(
    config: Config,
    action: HeldAction,
    selection: Selection,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let n = match open(&config)? {
        Some(store) => crate::hold::apply(&store, action, selection.clone()).await?,
        None => crate::control::remote_on_held(config.watcher.listen, action, &selection).await?,
    };
    let what = match action {
        HeldAction::Release => {
            "they are staged: the next pass (or the running daemon) delivers them"
        }
        HeldAction::Discard => "they stay known and are never delivered",
    };
    writeln!(out, "{} {n} held item(s); {what}", action.done())?;
    match selection {
        Selection::Source { url, .. } if n == 0 => Err(WatcherError::Usage(format!(
            "nothing held for source `{url}`; hint: `watcher held` lists the held items and their sources"
        ))),
        _ => Ok(Outcome::Ok),
    }
}
