//! status.rs: the status report (per source and per delivery), built from the store, served as
//! JSON by the daemon, and rendered for humans by the CLI.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Delivery, DeliveryState, Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceStatus {
    pub author: String,
    pub url: String,
    pub last_poll: Option<DateTime<Utc>>,
    pub last_result: Option<String>,
    pub items_known: u64,
    pub consecutive_failures: u32,
    pub failing: bool,
    pub next_due: Option<DateTime<Utc>>,
    pub next_due_reason: Option<String>,
    /// Where a permanent redirect moved the source.
    pub current_url: Option<String>,
    /// For sites: the feed autodiscovery found.
    pub discovered_feed: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeliveryStatus {
    pub batch_id: String,
    pub state: DeliveryState,
    pub authors: Vec<String>,
    pub links: usize,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub run: Option<String>,
    /// The run's state as the engine last reported it.
    pub run_state: Option<String>,
    pub run_message: Option<String>,
    pub config_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    pub sources: Vec<SourceStatus>,
    /// Items found but not yet grouped into a batch (waiting for the batch window).
    pub staged: usize,
    pub pending: usize,
    pub failed: usize,
    pub done: usize,
    /// Pending and failed deliveries, and the 10 most recent done ones, oldest first.
    pub deliveries: Vec<DeliveryStatus>,
}

fn delivery_status(d: &Delivery) -> DeliveryStatus {
    DeliveryStatus {
        batch_id: d.batch_id.clone(),
        state: d.state,
        authors: d.authors.clone(),
        links: d.items.len(),
        created_at: d.created_at,
        attempts: d.attempts,
        next_attempt_at: (d.state == DeliveryState::Pending).then_some(d.next_attempt_at),
        last_error: d.last_error.clone(),
        run: d.run.clone(),
        run_state: d.run_state.clone(),
        run_message: d.run_message.clone(),
        config_path: d.config_path.display().to_string(),
    }
}

impl StatusReport {
    /// Builds the report; a source with `failing_after` consecutive failures shows as failing.
    pub fn build(store: &Store, failing_after: u32) -> Result<StatusReport, StoreError> {
        let sources = store
            .sources()?
            .into_iter()
            .map(|(_, s)| SourceStatus {
                failing: s.consecutive_failures >= failing_after,
                author: s.author,
                url: s.url,
                last_poll: s.last_poll,
                last_result: s.last_result,
                items_known: s.items_known,
                consecutive_failures: s.consecutive_failures,
                next_due: s.next_due,
                next_due_reason: s.next_due_reason,
                current_url: s.current_url,
                discovered_feed: s.discovered_feed,
            })
            .collect();
        let all = store.deliveries()?;
        let count = |st| all.iter().filter(|(_, d)| d.state == st).count();
        let done: Vec<&Delivery> = all
            .iter()
            .map(|(_, d)| d)
            .filter(|d| d.state == DeliveryState::Done)
            .collect();
        let recent_done = &done[done.len().saturating_sub(10)..];
        let deliveries = all
            .iter()
            .map(|(_, d)| d)
            .filter(|d| {
                d.state != DeliveryState::Done
                    || recent_done.iter().any(|r| r.batch_id == d.batch_id)
            })
            .map(delivery_status)
            .collect();
        Ok(StatusReport {
            sources,
            staged: store.staged()?.len(),
            pending: count(DeliveryState::Pending),
            failed: count(DeliveryState::Failed),
            done: count(DeliveryState::Done),
            deliveries,
        })
    }

    /// A plain-text table for humans.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let mut out = String::new();
        let ago = |t: Option<DateTime<Utc>>| match t {
            None => "never".to_string(),
            Some(t) => relative(t, now),
        };
        let _ = writeln!(out, "SOURCES ({})", self.sources.len());
        for s in &self.sources {
            let flag = if s.failing { "FAILING" } else { "ok" };
            let url = s
                .current_url
                .as_deref()
                .map(|u| format!("{} (moved to {u})", s.url));
            let _ = writeln!(
                out,
                "  {} [{}] {}",
                s.author,
                flag,
                url.as_deref().unwrap_or(&s.url)
            );
            let _ = writeln!(
                out,
                "    last poll {}: {}",
                ago(s.last_poll),
                s.last_result.as_deref().unwrap_or("-")
            );
            let _ = writeln!(
                out,
                "    items known {}, consecutive failures {}, next poll {}{}",
                s.items_known,
                s.consecutive_failures,
                ago(s.next_due),
                s.next_due_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            out,
            "DELIVERIES: {} pending, {} failed, {} done; {} item(s) waiting for the batch window",
            self.pending, self.failed, self.done, self.staged
        );
        for d in &self.deliveries {
            let state = match d.state {
                DeliveryState::Pending => "pending",
                DeliveryState::Failed => "FAILED",
                DeliveryState::Done => "done",
            };
            let _ = write!(
                out,
                "  {} {:<7} {} link(s) for {}, attempts {}",
                d.batch_id,
                state,
                d.links,
                d.authors.join(", "),
                d.attempts
            );
            if let Some(run) = &d.run {
                let _ = write!(out, ", run {run}");
                match d.run_state.as_deref() {
                    Some(s @ ("failed" | "cancelled")) => {
                        let _ = write!(out, " RUN {}", s.to_uppercase());
                    }
                    Some(s) => {
                        let _ = write!(out, " {s}");
                    }
                    None => {}
                }
            }
            if let Some(next) = d.next_attempt_at {
                let _ = write!(out, ", next attempt {}", relative(next, now));
            }
            out.push('\n');
            if let Some(e) = &d.last_error {
                let _ = writeln!(out, "      last error: {e}");
            }
            if let Some(m) = &d.run_message {
                let _ = writeln!(out, "      run: {m}");
            }
            if matches!(d.run_state.as_deref(), Some("failed" | "cancelled")) {
                let _ = writeln!(
                    out,
                    "      hint: fix the cause, then `watcher redeliver {}`",
                    d.batch_id
                );
            }
        }
        out
    }
}

/// "3m ago", "in 2h", "now".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let span = |s: i64| {
        humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs()))
            .to_string()
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    match secs {
        -1..=1 => "now".into(),
        s if s < 0 => format!("{} ago", span(s)),
        s => format!("in {}", span(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        assert_eq!(relative(now, now), "now");
        assert_eq!(
            relative(now - chrono::Duration::seconds(190), now),
            "3m 10s ago"
        );
        assert_eq!(
            relative(now + chrono::Duration::seconds(7200), now),
            "in 2h"
        );
    }
}
