//! commands.rs: what each CLI command does and prints. `main` parses and maps the result to an
//! exit code; everything a user sees on stdout is written here.

use std::io::{IsTerminal, Write};

use chrono::Utc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::WatcherError;
use crate::poll::PollOutcome;
use crate::status::StatusReport;
use crate::store::StoreError;
use crate::watch::{OnceOptions, Watcher};

/// How a command ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Problems,
}

/// `watcher check`
pub fn check(config: &Config, out: &mut impl Write) -> std::io::Result<Outcome> {
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

/// `watcher once`
pub async fn once(
    config: Config,
    opts: OnceOptions,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let watcher = Watcher::open(config)?;
    let tty = std::io::stderr().is_terminal();
    let mut failed = 0;
    let report = watcher
        .once(opts, |p, done, total| {
            if matches!(p.outcome, PollOutcome::Failed { .. }) {
                failed += 1;
            }
            if tty {
                eprint!("\r\x1b[2Kpolled {done}/{total} source(s), {failed} failed");
                if done == total {
                    eprintln!();
                }
            }
        })
        .await?;
    for p in &report.polls {
        let what = match &p.outcome {
            PollOutcome::NotModified => "not modified".to_string(),
            PollOutcome::Baseline { recorded } => format!("baseline: {recorded} items recorded"),
            PollOutcome::Polled { new, updated } => format!("{} new, {updated} updated", new.len()),
            PollOutcome::Throttled { retry_after } => format!(
                "throttled (Retry-After {})",
                humantime::format_duration(*retry_after)
            ),
            PollOutcome::Gone => "GONE (410): not polled again; remove it from the config".into(),
            PollOutcome::Failed { error } => format!("FAILED: {error}"),
        };
        let _ = writeln!(
            out,
            "{} ({}): {what}; next poll in {} ({})",
            p.source.url,
            p.source.author,
            humantime::format_duration(std::time::Duration::from_secs(p.next.wait.as_secs())),
            p.next.reason
        );
    }
    if report.not_due > 0 {
        let _ = writeln!(
            out,
            "{} source(s) not due yet (see `watcher status`; `once --all` polls them anyway)",
            report.not_due
        );
    }
    if opts.dry_run {
        if report.would_deliver.is_empty() {
            let _ = writeln!(out, "dry run: nothing to deliver");
        }
        for d in &report.would_deliver {
            let _ = writeln!(
                out,
                "dry run: would write {} and trigger batch {} with {} link(s):",
                d.config_path.display(),
                d.batch_id,
                d.items.len()
            );
            for i in &d.items {
                let _ = writeln!(out, "  {} {}", i.url, i.title.as_deref().unwrap_or(""));
            }
        }
    }
    for d in &report.deliveries {
        match &d.outcome {
            Ok(run) => {
                let _ = writeln!(
                    out,
                    "delivered batch {}: config {}, run {run}",
                    d.batch_id,
                    d.config_path.display()
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "delivery of batch {} failed: {}",
                    d.batch_id,
                    crate::error::one_line(e)
                );
            }
        }
    }
    let mut problems = report.problems();
    if watcher.embedded().is_some() && !opts.dry_run {
        // The embedded runner stops with this process: follow the runs started here.
        let timeout = watcher.config().trigger.wait_timeout;
        let waited = watcher
            .wait_for_runs(&report, timeout, |batch, s| {
                let _ = writeln!(out, "batch {batch}: run {s}");
            })
            .await?;
        for (batch, result) in waited {
            match result {
                Ok(s) if s.state == trigger_client::RunState::Succeeded => {}
                Ok(s) => problems.push(format!(
                    "batch {batch}: run {s}; hint: fix the stage, then `watcher redeliver {batch}`"
                )),
                Err(e) => problems.push(format!(
                    "batch {batch}: {} (waited up to {})",
                    crate::error::one_line(&e),
                    humantime::format_duration(timeout)
                )),
            }
        }
    }
    watcher.shutdown().await?;
    if problems.is_empty() {
        return Ok(Outcome::Ok);
    }
    let _ = writeln!(out, "{} problem(s):", problems.len());
    for p in problems {
        let _ = writeln!(out, "  {p}");
    }
    Ok(Outcome::Problems)
}

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
    print_status(&report, json, out);
    Ok(Outcome::Ok)
}

fn print_status(report: &StatusReport, json: bool, out: &mut impl Write) {
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(report).expect("status serializes")
        );
    } else {
        let _ = report.write(Utc::now(), out);
    }
}

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
    let _ = writeln!(
        out,
        "re-queued {n} failed deliver{}",
        if n == 1 { "y" } else { "ies" }
    );
    if n == 0 && batch.is_some() {
        return Err(WatcherError::Usage(format!(
            "batch `{}` is not a failed delivery; hint: `watcher status` lists them",
            batch.unwrap_or_default()
        )));
    }
    Ok(Outcome::Ok)
}

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

/// `watcher redeliver BATCH`
pub async fn redeliver(
    config: Config,
    batch: &str,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let listen = config.watcher.listen;
    match Watcher::inspect(config) {
        Ok(w) => {
            let d = w.redeliver(batch).await?;
            let _ = writeln!(
                out,
                "batch {} queued again with idempotency key {}; the next pass (or the running daemon) starts it",
                d.batch_id,
                d.idempotency_key()
            );
        }
        Err(WatcherError::Store(StoreError::Locked { .. })) => {
            let key = crate::control::remote_redeliver(listen, batch).await?;
            let _ = writeln!(
                out,
                "batch {batch} queued again with idempotency key {key}; the daemon starts it"
            );
        }
        Err(e) => return Err(e),
    }
    Ok(Outcome::Ok)
}

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
        .map_err(|e| WatcherError::Usage(crate::error::one_line(&e)))?;
    // The result must still be a valid config before it replaces the old one.
    crate::preflight::parse(&config.path, &import.text)?;
    for (name, urls) in &import.added {
        let _ = writeln!(out, "{name}: +{} feed(s)", urls.len());
        for u in urls {
            let _ = writeln!(out, "  {u}");
        }
    }
    let _ = writeln!(
        out,
        "{} feed(s) added, {} already present",
        import.added.iter().map(|(_, u)| u.len()).sum::<usize>(),
        import.skipped
    );
    if dry_run {
        let _ = writeln!(out, "dry run: the config would read:\n{}", import.text);
    } else if !import.added.is_empty() {
        crate::subscriptions::write(&config.path, &import.text)
            .map_err(|e| WatcherError::Usage(crate::error::one_line(&e)))?;
        let _ = writeln!(out, "wrote {}", config.path.display());
    }
    Ok(Outcome::Ok)
}

/// `watcher export-opml`
pub fn export_opml(config: &Config, out: &mut impl Write) -> Result<Outcome, WatcherError> {
    let _ = write!(out, "{}", crate::subscriptions::export(config));
    Ok(Outcome::Ok)
}
