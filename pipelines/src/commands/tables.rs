//! What the commands print: the runs table, one run with its stages, a chain's stages in order,
//! the progress lines of a run being followed and its final summary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::chain::{self, Chain};
use runner_api::{Run, RunPage, StageStatus};

/// Prints stage status changes between snapshots of a run.
#[derive(Debug, Default)]
pub struct Progress {
    seen: BTreeMap<String, StageStatus>,
}

impl Progress {
    /// Prints one line per stage whose status changed since the last call.
    pub fn show(&mut self, run: &Run) {
        for stage in &run.stages {
            if self.seen.get(&stage.name) == Some(&stage.status) {
                continue;
            }
            self.seen.insert(stage.name.clone(), stage.status);
            if stage.status == StageStatus::Queued {
                continue;
            }
            let detail = match (stage.status, stage.exit_code, &stage.error) {
                (StageStatus::Running, _, _) if stage.attempts > 1 => {
                    format!(" (attempt {})", stage.attempts)
                }
                (_, _, Some(error)) => format!(" ({error})"),
                (_, Some(code), None) => format!(" (exit {code})"),
                _ => String::new(),
            };
            let status = stage.status;
            println!(
                "  {} {:<32} {status}{detail}",
                chrono::Local::now().format("%H:%M:%S"),
                stage.name
            );
        }
    }
}

/// The summary of a finished run: status, time taken, error, run directory.
pub fn print_finished(run: &Run) {
    let took = match (run.started_at, run.finished_at) {
        (Some(start), Some(end)) => format!(" in {}", format_duration(end - start)),
        _ => String::new(),
    };
    println!("run {} {}{took}", run.id, run.status);
    if let Some(error) = &run.error {
        println!("error: {error}");
    }
    println!(
        "run directory (config, logs, outputs): {}",
        run.run_dir.display()
    );
}

/// The runs table, newest first.
pub fn print_runs(page: &RunPage) {
    if page.runs.is_empty() {
        println!("no runs");
    }
    println!(
        "{:<36}  {:<16} {:<10} {:<20} {:>9}  ERROR",
        "ID", "CHAIN", "STATUS", "CREATED", "TOOK"
    );
    for run in &page.runs {
        let took = match (run.started_at, run.finished_at) {
            (Some(start), Some(end)) => format_duration(end - start),
            _ => "-".into(),
        };
        println!(
            "{:<36}  {:<16} {:<10} {:<20} {:>9}  {}",
            run.id,
            run.chain,
            run.status,
            run.created_at.format("%Y-%m-%d %H:%M:%S"),
            took,
            run.error.as_deref().unwrap_or("")
        );
    }
    if page.next.is_some() {
        println!("(more runs: raise --limit)");
    }
}

/// One run with its stages.
pub fn print_run(run: &Run) {
    println!("run        {}", run.id);
    println!("chain      {}", run.chain);
    println!("status     {}", run.status);
    println!("trigger    {}", run.trigger);
    println!("created    {}", run.created_at.to_rfc3339());
    if let Some(at) = run.cancel_requested_at {
        println!("cancel     requested {}", at.to_rfc3339());
    }
    if let Some(error) = &run.error {
        println!("error      {error}");
    }
    println!("run dir    {}", run.run_dir.display());
    println!("stages:");
    for stage in &run.stages {
        let status = stage.status;
        let exit = stage
            .exit_code
            .map(|c| format!("exit {c}"))
            .unwrap_or_default();
        println!(
            "  {:<32} {:<10} {:<8} {}",
            stage.name,
            status,
            exit,
            stage.error.as_deref().unwrap_or("")
        );
    }
}

/// A chain: description, schedule with its next time, stages in order, then `warnings`.
pub fn print_chain(chain: &Chain, warnings: &BTreeSet<String>) {
    println!("chain `{}` ({})", chain.name(), chain.file().display());
    for line in chain.description().lines() {
        println!("  {line}");
    }
    if let Some(schedule) = chain.schedule() {
        let next = schedule
            .next_after(chrono::Utc::now())
            .map(|at| at.with_timezone(&schedule.timezone()).to_rfc3339())
            .unwrap_or_else(|| "never".into());
        println!(
            "  schedule `{}` ({}), next {next}",
            schedule.expr(),
            schedule.timezone()
        );
    }
    let order = chain::topological_order(chain.stages()).unwrap_or_default();
    for index in order {
        let stage = &chain.stages()[index];
        let after = if stage.after().is_empty() {
            String::new()
        } else {
            format!(" (after {})", stage.after().join(", "))
        };
        let argv: Vec<&str> = stage.run().iter().map(|arg| arg.source()).collect();
        println!("  - {}{after}: {}", stage.name(), argv.join(" "));
    }
    for warning in warnings {
        println!("  warning: {warning}");
    }
}

fn format_duration(delta: chrono::TimeDelta) -> String {
    let millis = delta.num_milliseconds().max(0);
    if millis < 60_000 {
        format!("{:.1}s", millis as f64 / 1000.0)
    } else {
        humantime::format_duration(Duration::from_secs((millis / 1000) as u64)).to_string()
    }
}
