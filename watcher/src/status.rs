//! status.rs: the status report (per source and per delivery), built from the store, served as
//! JSON by the daemon, and rendered for humans by the CLI.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::delivery::{Delivery, Phase, RunFollow};

use crate::store::{Store, StoreError};

mod push;
pub use push::PushStatus;

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
    /// Items held as a flood, waiting for `watcher release` or `watcher discard`.
    #[serde(default)]
    pub held: usize,
    /// WebSub push, when the source has a subscription.
    #[serde(default)]
    pub push: Option<PushStatus>,
    /// New items dropped because their link pointed into a private network.
    #[serde(default)]
    pub links_refused: u64,
    /// The source answered 410 Gone (asked again daily for 30 days).
    #[serde(default)]
    pub gone: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeliveryStatus {
    pub batch_id: String,
    pub state: Phase,
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
    /// The highest revision among its articles: above 0 when it delivers updated content
    /// (`trigger_on_update`).
    #[serde(default)]
    pub revision: u32,
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
    /// Store records skipped because they cannot be read (`tree/sequence`); they block nothing.
    #[serde(default)]
    pub unreadable: Vec<String>,
    /// `[websub]` is on: a source whose `push` is null has none.
    #[serde(default)]
    pub push_on: bool,
}

/// A stored field that came from the network (an error line, a run's message, a URL a server
/// named), made safe to print: records stored before the rule get it here too.
fn shown(text: &str) -> String {
    crate::printable::printable_within(text, crate::printable::LINE)
}

fn delivery_status(d: &Delivery) -> DeliveryStatus {
    let run = d.run();
    DeliveryStatus {
        batch_id: d.batch_id.clone(),
        state: d.phase(),
        authors: d.authors.clone(),
        links: d.items.len(),
        created_at: d.created_at,
        attempts: d.attempts,
        next_attempt_at: (d.phase() == Phase::Pending).then_some(d.next_attempt_at),
        last_error: d.last_error.as_deref().map(shown),
        run: run.map(|r| shown(&r.handle.to_string())),
        run_state: run.and_then(|r| r.follow.name()).map(str::to_owned),
        run_message: run.and_then(|r| r.message.as_deref()).map(shown),
        config_path: d.config_path.display().to_string(),
        revision: d.items.iter().map(|i| i.revision).max().unwrap_or(0),
    }
}

impl DeliveryStatus {
    /// The run's state, typed (a name this build does not know reads as not asked yet).
    pub fn run_follow(&self) -> RunFollow {
        RunFollow::from_name(self.run_state.as_deref()).unwrap_or_default()
    }
}

impl StatusReport {
    /// Builds the report; a source with `failing_after` consecutive failures shows as failing.
    pub fn build(store: &Store, failing_after: u32) -> Result<StatusReport, StoreError> {
        let held = store.held_counts()?;
        let mut push = PushStatus::by_source(store)?;
        let sources = store
            .sources()?
            .into_iter()
            .map(|(key, s)| SourceStatus {
                held: held.get(&key).copied().unwrap_or(0),
                push: push.remove(&key),
                failing: s.consecutive_failures >= failing_after,
                author: s.author,
                url: s.url,
                last_poll: s.last_poll,
                last_result: s.last_result.as_deref().map(shown),
                items_known: s.items_known,
                consecutive_failures: s.consecutive_failures,
                next_due: s.next_due,
                next_due_reason: s.next_due_reason,
                current_url: s.current_url.as_deref().map(shown),
                discovered_feed: s.discovered_feed.as_deref().map(shown),
                links_refused: s.links_refused,
                gone: s.gone,
            })
            .collect();
        let all = store.deliveries()?;
        let count = |phase| all.iter().filter(|(_, d)| d.phase() == phase).count();
        let done: Vec<&Delivery> = all
            .iter()
            .map(|(_, d)| d)
            .filter(|d| d.phase() == Phase::Done)
            .collect();
        let recent_done = &done[done.len().saturating_sub(10)..];
        let deliveries = all
            .iter()
            .map(|(_, d)| d)
            .filter(|d| {
                d.phase() != Phase::Done || recent_done.iter().any(|r| r.batch_id == d.batch_id)
            })
            .map(delivery_status)
            .collect();
        Ok(StatusReport {
            sources,
            staged: store.staged()?.len(),
            pending: count(Phase::Pending),
            failed: count(Phase::Failed),
            done: count(Phase::Done),
            deliveries,
            unreadable: store.unreadable(),
            push_on: false,
        })
    }

    /// A plain-text table for humans.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let mut out = Vec::new();
        self.write(now, &mut out)
            .expect("writing to memory does not fail");
        String::from_utf8(out).expect("the table is UTF-8")
    }

    /// The plain-text table, written to `out`.
    pub fn write(&self, now: DateTime<Utc>, out: &mut impl Write) -> std::io::Result<()> {
        let ago = |t: Option<DateTime<Utc>>| match t {
            None => "never".to_string(),
            Some(t) => relative(t, now),
        };
        writeln!(out, "SOURCES ({})", self.sources.len())?;
        for s in &self.sources {
            let flag = match (s.failing, s.held) {
                (true, 0) => "FAILING".to_string(),
                (false, 0) => "ok".to_string(),
                (failing, n) => format!(
                    "{}HELD {n} item(s): `watcher held`, then `watcher release` or `watcher discard`",
                    if failing { "FAILING, " } else { "" }
                ),
            };
            let url = s
                .current_url
                .as_deref()
                .map(|u| format!("{} (moved to {u})", s.url));
            writeln!(
                out,
                "  {} [{}] {}",
                s.author,
                flag,
                url.as_deref().unwrap_or(&s.url)
            )?;
            writeln!(
                out,
                "    last poll {}: {}",
                ago(s.last_poll),
                s.last_result.as_deref().unwrap_or("-")
            )?;
            writeln!(
                out,
                "    items known {}, consecutive failures {}, next poll {}{}",
                s.items_known,
                s.consecutive_failures,
                ago(s.next_due),
                s.next_due_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )?;
            if let Some(line) = PushStatus::line(s.push.as_ref(), self.push_on, ago) {
                writeln!(out, "    {line}")?;
            }
            if s.links_refused > 0 {
                writeln!(
                    out,
                    "    links refused {} (a private-network host; see [fetch] allow_networks)",
                    s.links_refused
                )?;
            }
        }
        writeln!(
            out,
            "DELIVERIES: {} pending, {} failed, {} done; {} item(s) waiting for the batch window",
            self.pending, self.failed, self.done, self.staged
        )?;
        if !self.unreadable.is_empty() {
            let shown: Vec<&str> = self
                .unreadable
                .iter()
                .take(10)
                .map(String::as_str)
                .collect();
            writeln!(
                out,
                "UNREADABLE: {} store record(s) skipped ({}{}); they block nothing and stay in the store (the log has each error)",
                self.unreadable.len(),
                shown.join(", "),
                if self.unreadable.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            )?;
        }
        for d in &self.deliveries {
            let state = match d.state {
                Phase::Pending => "pending",
                Phase::Failed => "FAILED",
                Phase::Done => "done",
            };
            let follow = d.run_follow();
            let ended_badly = matches!(
                follow,
                RunFollow::Reported(
                    trigger_client::RunState::Failed | trigger_client::RunState::Cancelled
                )
            );
            write!(
                out,
                "  {} {:<7} {} link(s) for {}, attempts {}",
                d.batch_id,
                state,
                d.links,
                d.authors.join(", "),
                d.attempts
            )?;
            if d.revision > 0 {
                write!(out, ", updated content revision {}", d.revision)?;
            }
            if let Some(run) = &d.run {
                write!(out, ", run {run}")?;
                match follow.name() {
                    Some(s) if ended_badly => write!(out, " RUN {}", s.to_uppercase())?,
                    Some(s) => write!(out, " {s}")?,
                    None => {}
                }
            }
            if let Some(next) = d.next_attempt_at {
                write!(out, ", next attempt {}", relative(next, now))?;
            }
            writeln!(out)?;
            if let Some(e) = &d.last_error {
                writeln!(out, "      last error: {e}")?;
            }
            if let Some(m) = &d.run_message {
                writeln!(out, "      run: {m}")?;
            }
            if ended_badly {
                writeln!(
                    out,
                    "      hint: fix the cause, then `watcher redeliver {}`",
                    d.batch_id
                )?;
            } else if follow == RunFollow::Lost {
                writeln!(
                    out,
                    "      hint: the engine may still be running it; check, then `watcher redeliver {} --force`",
                    d.batch_id
                )?;
            }
        }
        Ok(())
    }
}

/// "3m ago", "in 2h", "now": the dashboards' rule, so the CLI and the pages say it alike.
pub use pipelines::dashboard::html::relative;

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
