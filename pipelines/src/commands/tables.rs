//! What the commands print: the runs table, one run with its stages, a chain's stages in order,
//! the gates and budgets report, the progress lines of a run being followed and its final
//! summary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::chain::{self, Chain};
use runner_api::{GateReport, Run, RunPage, StageStatus};

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
    for stage in run.deferred() {
        println!(
            "deferred: {} ({})",
            stage.name,
            stage.error.as_deref().unwrap_or("")
        );
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
        let deferred: Vec<&str> = run.deferred().map(|s| s.name.as_str()).collect();
        let note = match (&run.error, deferred.is_empty()) {
            (Some(error), _) => error.clone(),
            (None, false) => format!("deferred: {}", deferred.join(", ")),
            (None, true) => String::new(),
        };
        println!(
            "{:<36}  {:<16} {:<10} {:<20} {:>9}  {note}",
            run.id,
            run.chain,
            run.status,
            run.created_at.format("%Y-%m-%d %H:%M:%S"),
            took,
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
    if run.force {
        println!("force      gates and budgets were open for this run");
    }
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
        if let Some(gate) = stage.gate() {
            let mut keys = Vec::new();
            if let Some(min) = gate.min_new_links {
                keys.push(format!("{min} new links"));
            }
            if let Some(after) = gate.or_after {
                keys.push(format!(
                    "{} after its last success",
                    humantime::format_duration(after)
                ));
            }
            println!(
                "      gate: {}; after a failure not before {}",
                keys.join(" or "),
                humantime::format_duration(gate.retry)
            );
        }
        if let Some(cost) = stage.cost() {
            println!("      cost: {cost} per attempt");
        }
    }
    if let Some(budget) = chain.budget() {
        println!(
            "  budget: {} per {} (rolling)",
            budget.limit,
            humantime::format_duration(budget.per)
        );
    }
    for warning in warnings {
        println!("  warning: {warning}");
    }
}

/// The gates and budgets report.
pub fn print_gates(report: &GateReport) {
    if report.chains.is_empty() {
        println!("no gates and no budgets");
    }
    let date = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map(crate::gate::when).unwrap_or_else(|| "never".into())
    };
    for chain in &report.chains {
        println!("chain `{}`", chain.chain);
        for gate in &chain.gates {
            println!("  gate {}: {}", gate.stage, gate.summary);
            let mut keys = Vec::new();
            if let Some(min) = gate.min_new_links {
                keys.push(format!("{min} new links"));
            }
            if let Some(after) = &gate.or_after {
                keys.push(format!("{after} after its last success"));
            }
            println!(
                "    opens at {}; last success {}; last failure {}; gate_retry {}",
                keys.join(" or "),
                date(gate.last_success),
                date(gate.last_failure),
                gate.gate_retry
            );
        }
        if let Some(budget) = &chain.budget {
            println!(
                "  budget: {} of {} spent in the last {}, {} left{}",
                budget.spent,
                budget.limit,
                budget.per,
                budget.left,
                budget
                    .next_release_at
                    .map(|at| format!(
                        "; the oldest charge leaves the window on {}",
                        crate::gate::when(at)
                    ))
                    .unwrap_or_default()
            );
            for (stage, cost) in &budget.costs {
                println!("    {stage} costs {cost} per attempt");
            }
        }
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
