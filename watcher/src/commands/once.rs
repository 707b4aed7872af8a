//! commands/once.rs: `watcher once`: one pass, its report on stdout (one line per poll and per
//! delivery, then the problems), and with the embedded runner the runs it started followed to
//! their end. SIGTERM (or SIGINT) is handled like `run`'s: polls in flight finish, the embedded
//! runner's stages get `shutdown_grace` to end before it stops them, the store is flushed.

use std::io::{IsTerminal, Write};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{Outcome, WatcherError};
use crate::poll::PollOutcome;
use crate::printable::{LINE, printable, printable_within};
use crate::watch::{OnceOptions, Watcher};

/// `watcher once`
pub async fn once(
    config: Config,
    opts: OnceOptions,
    cancel: &CancellationToken,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let watcher = Watcher::open(config)?;
    let tty = std::io::stderr().is_terminal();
    let mut failed = 0;
    let report = watcher
        .once_until(opts, cancel, |p, done, total| {
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
            PollOutcome::Polled { new, held, updated } => format!(
                "{} new, {held} held, {updated} updated{}",
                new.len(),
                if *held > 0 {
                    " (a flood: see `watcher held`)"
                } else {
                    ""
                }
            ),
            PollOutcome::Throttled { retry_after } => format!(
                "throttled (Retry-After {})",
                humantime::format_duration(*retry_after)
            ),
            PollOutcome::Gone => {
                "GONE (410): asked again daily for 30 days; remove it from the config".into()
            }
            PollOutcome::Failed { error } => format!("FAILED: {}", printable_within(error, LINE)),
        };
        writeln!(
            out,
            "{} ({}): {what}; next poll in {} ({})",
            p.source.url,
            p.source.author,
            humantime::format_duration(std::time::Duration::from_secs(p.next.wait.as_secs())),
            p.next.reason
        )?;
    }
    if report.not_due > 0 {
        writeln!(
            out,
            "{} source(s) not due yet (see `watcher status`; `once --all` polls them anyway)",
            report.not_due
        )?;
    }
    if opts.dry_run {
        if report.would_deliver.is_empty() {
            writeln!(out, "dry run: nothing to deliver")?;
        }
        for d in &report.would_deliver {
            writeln!(
                out,
                "dry run: would write {} and trigger batch {} with {} link(s):",
                d.config_path.display(),
                d.batch_id,
                d.items.len()
            )?;
            for i in &d.items {
                writeln!(
                    out,
                    "  {} {}",
                    printable_within(i.url.as_str(), LINE),
                    printable(i.title.as_deref().unwrap_or(""))
                )?;
            }
        }
    }
    for d in &report.deliveries {
        match &d.outcome {
            Ok(run) => {
                writeln!(
                    out,
                    "delivered batch {}: config {}, run {run}",
                    d.batch_id,
                    d.config_path.display()
                )?;
            }
            Err(e) => {
                writeln!(
                    out,
                    "delivery of batch {} failed: {}",
                    d.batch_id,
                    crate::causes::one_line(e)
                )?;
            }
        }
    }
    let mut problems = report.problems();
    if watcher.embedded().is_some() && !opts.dry_run && !report.interrupted {
        // The embedded runner stops with this process: follow the runs started here.
        let timeout = watcher.config().trigger.wait_timeout;
        let mut unwritten = None;
        let waiting = watcher.wait_for_runs(&report, timeout, |batch, s| {
            if let Err(e) = writeln!(
                out,
                "batch {batch}: run {}",
                printable_within(&s.to_string(), LINE)
            ) {
                unwritten.get_or_insert(e);
            }
        });
        let waited = tokio::select! {
            waited = waiting => waited?,
            () = cancel.cancelled() => {
                problems.push(format!(
                    "interrupted by a signal while waiting for the runs: the embedded runner gave running stages {} to end, then stopped them; `watcher status` shows how each run ended",
                    humantime::format_duration(embedded_grace(&watcher))
                ));
                Vec::new()
            }
        };
        if let Some(e) = unwritten {
            return Err(WatcherError::Output(e));
        }
        for (batch, result) in waited {
            match result {
                Ok(s) if s.state == trigger_client::RunState::Succeeded => {}
                Ok(s) => problems.push(format!(
                    "batch {batch}: run {s}; hint: fix the stage, then `watcher redeliver {batch}`"
                )),
                Err(e) => problems.push(format!(
                    "batch {batch}: {} (waited up to {})",
                    crate::causes::one_line(&e),
                    humantime::format_duration(timeout)
                )),
            }
        }
    }
    watcher.shutdown().await?;
    if problems.is_empty() {
        return Ok(Outcome::Ok);
    }
    writeln!(out, "{} problem(s):", problems.len())?;
    for p in problems {
        writeln!(out, "  {}", printable_within(&p, LINE))?;
    }
    Ok(Outcome::Problems)
}

/// How long the embedded runner lets running stages finish when it stops.
fn embedded_grace(watcher: &Watcher) -> std::time::Duration {
    (watcher.config().trigger.embedded.as_ref())
        .map_or(std::time::Duration::ZERO, |e| e.shutdown_grace)
}
