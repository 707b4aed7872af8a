//! delivery.rs: what the outbox holds: a batch (its articles and the config file it writes) and
//! where its delivery stands, typed: pending, failed, or done with the run it started and what
//! following that run found. On disk it is today's flat record (`state`, `run`, `run_state` as
//! strings), converted in one place, so the store format does not change.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trigger_client::{RunHandle, RunState};

use crate::config::OutputFormat;

/// One article in a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeliveryItem {
    pub author: String,
    pub source: String,
    pub url: String,
    pub title: Option<String>,
    pub published: Option<DateTime<Utc>>,
    /// The article's revision (see [`crate::identity::Item::revision`]): above 0 for content
    /// updates delivered with `trigger_on_update`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A batch in the outbox: the config it writes and the trigger it owes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Record", into = "Record")]
pub struct Delivery {
    pub batch_id: String,
    pub created_at: DateTime<Utc>,
    pub format: OutputFormat,
    pub authors: Vec<String>,
    pub items: Vec<DeliveryItem>,
    pub config_path: PathBuf,
    pub state: DeliveryState,
    /// Attempts to send since the batch was (re)queued.
    pub attempts: u32,
    /// When a pending delivery is sent next.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt to send failed (cleared when one succeeds).
    pub last_error: Option<String>,
    /// When the run was started (kept across a redelivery, for the cost guard).
    pub delivered_at: Option<DateTime<Utc>>,
    /// How often `watcher redeliver` started this batch again (each time with a new key).
    pub redeliveries: u32,
}

/// Where a delivery stands.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryState {
    /// Waiting to be sent (again) at `next_attempt_at`.
    Pending,
    /// Sent: the engine started a run, which the watcher follows.
    Done(FollowedRun),
    /// Out of attempts; `watcher retry` queues it again.
    Failed,
}

/// The three states by name, as the store and the status report spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Pending,
    Done,
    Failed,
}

/// A started run and what following it found.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowedRun {
    pub handle: RunHandle,
    pub follow: RunFollow,
    /// The engine's last message (or why the run counts as lost).
    pub message: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
    /// Consecutive failures to get the run's status.
    pub errors: u32,
    /// Since when the run's status has been unavailable (the first of those failures); past
    /// `[trigger] run_lost_after` the run counts as lost.
    pub unreachable_since: Option<DateTime<Utc>>,
}

/// What the watcher knows about a run. Stored (and shown by `status`) as the engine's state name,
/// `untracked`, `lost`, or null when not asked yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunFollow {
    /// Not asked yet.
    #[default]
    Started,
    /// The state the engine last reported.
    Reported(RunState),
    /// The engine cannot report runs (a webhook without status URL).
    Untracked,
    /// The engine stopped knowing the run.
    Lost,
}

impl RunFollow {
    /// The stored name: the engine's state, `untracked`, `lost`, or none yet.
    pub fn name(self) -> Option<&'static str> {
        match self {
            RunFollow::Started => None,
            RunFollow::Reported(state) => Some(state.as_str()),
            RunFollow::Untracked => Some(UNTRACKED),
            RunFollow::Lost => Some(LOST),
        }
    }

    /// Reads a stored name back.
    pub fn from_name(name: Option<&str>) -> Result<RunFollow, RecordError> {
        Ok(match name {
            None => RunFollow::Started,
            Some(UNTRACKED) => RunFollow::Untracked,
            Some(LOST) => RunFollow::Lost,
            Some(other) => RunFollow::Reported(
                serde_json::from_value(serde_json::Value::String(other.into()))
                    .map_err(|_| RecordError::RunState(other.into()))?,
            ),
        })
    }

    /// Whether the run may still change (it is worth asking the engine again).
    pub fn open(self) -> bool {
        match self {
            RunFollow::Started => true,
            RunFollow::Reported(state) => !state.is_terminal(),
            RunFollow::Untracked | RunFollow::Lost => false,
        }
    }

    /// Whether the run ended without succeeding (failed, cancelled, or lost): a redelivery
    /// starts it again.
    pub fn ended_badly(self) -> bool {
        matches!(
            self,
            RunFollow::Reported(RunState::Failed | RunState::Cancelled) | RunFollow::Lost
        )
    }
}

impl Serialize for RunFollow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.name().serialize(s)
    }
}

impl<'de> Deserialize<'de> for RunFollow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RunFollow, D::Error> {
        let name = Option::<String>::deserialize(d)?;
        RunFollow::from_name(name.as_deref()).map_err(serde::de::Error::custom)
    }
}

const UNTRACKED: &str = "untracked";
const LOST: &str = "lost";

impl DeliveryState {
    pub fn phase(&self) -> Phase {
        match self {
            DeliveryState::Pending => Phase::Pending,
            DeliveryState::Done(_) => Phase::Done,
            DeliveryState::Failed => Phase::Failed,
        }
    }
}

impl Delivery {
    /// The idempotency key of the current attempt: the batch id, then `<batch id>-r<N>` after
    /// the N-th redelivery.
    pub fn idempotency_key(&self) -> String {
        if self.redeliveries == 0 {
            self.batch_id.clone()
        } else {
            format!("{}-r{}", self.batch_id, self.redeliveries)
        }
    }

    /// The run this delivery started, if it was sent.
    pub fn run(&self) -> Option<&FollowedRun> {
        match &self.state {
            DeliveryState::Done(run) => Some(run),
            _ => None,
        }
    }

    /// Whether the run still needs following.
    pub fn run_open(&self) -> bool {
        self.run().is_some_and(|r| r.follow.open())
    }

    pub fn phase(&self) -> Phase {
        self.state.phase()
    }
}

/// Why a stored delivery cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("a done delivery without a run")]
    NoRun,
    #[error("run `{run}` cannot be read")]
    Handle {
        run: String,
        #[source]
        source: Box<trigger_client::Error>,
    },
    #[error("unknown run state `{0}`")]
    RunState(String),
}

/// The record as stored (the layout of schema 1): flat, with states as strings.
#[derive(Serialize, Deserialize)]
struct Record {
    batch_id: String,
    created_at: DateTime<Utc>,
    format: OutputFormat,
    authors: Vec<String>,
    items: Vec<DeliveryItem>,
    config_path: PathBuf,
    state: Phase,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    run: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
    #[serde(default)]
    run_state: RunFollow,
    #[serde(default)]
    run_message: Option<String>,
    #[serde(default)]
    run_checked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    redeliveries: u32,
    #[serde(default)]
    run_errors: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_unreachable_since: Option<DateTime<Utc>>,
}

impl TryFrom<Record> for Delivery {
    type Error = RecordError;

    fn try_from(r: Record) -> Result<Delivery, RecordError> {
        let state = match r.state {
            Phase::Pending => DeliveryState::Pending,
            Phase::Failed => DeliveryState::Failed,
            Phase::Done => {
                let run = r.run.ok_or(RecordError::NoRun)?;
                DeliveryState::Done(FollowedRun {
                    handle: run.parse().map_err(|source| RecordError::Handle {
                        run,
                        source: Box::new(source),
                    })?,
                    follow: r.run_state,
                    message: r.run_message,
                    checked_at: r.run_checked_at,
                    errors: r.run_errors,
                    unreachable_since: r.run_unreachable_since,
                })
            }
        };
        Ok(Delivery {
            batch_id: r.batch_id,
            created_at: r.created_at,
            format: r.format,
            authors: r.authors,
            items: r.items,
            config_path: r.config_path,
            state,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            delivered_at: r.delivered_at,
            redeliveries: r.redeliveries,
        })
    }
}

impl From<Delivery> for Record {
    fn from(d: Delivery) -> Record {
        let phase = d.state.phase();
        let run = match d.state {
            DeliveryState::Done(run) => Some(run),
            _ => None,
        };
        Record {
            batch_id: d.batch_id,
            created_at: d.created_at,
            format: d.format,
            authors: d.authors,
            items: d.items,
            config_path: d.config_path,
            state: phase,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error,
            run: run.as_ref().map(|r| r.handle.to_string()),
            delivered_at: d.delivered_at,
            run_state: run.as_ref().map_or(RunFollow::Started, |r| r.follow),
            run_message: run.as_ref().and_then(|r| r.message.clone()),
            run_checked_at: run.as_ref().and_then(|r| r.checked_at),
            redeliveries: d.redeliveries,
            run_errors: run.as_ref().map_or(0, |r| r.errors),
            run_unreachable_since: run.and_then(|r| r.unreachable_since),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: &str, run: Option<&str>, run_state: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "batch_id": "b", "created_at": "2026-01-01T00:00:00Z", "format": "digital_data_etl",
            "authors": ["A"], "items": [], "config_path": "/o/c.yaml", "state": state,
            "attempts": 1, "next_attempt_at": "2026-01-01T00:00:00Z", "last_error": null,
            "run": run, "delivered_at": null, "run_state": run_state, "run_message": null,
            "run_checked_at": null, "redeliveries": 0, "run_errors": 0,
        })
    }

    #[test]
    fn every_stored_state_reads_typed_and_writes_back_the_same() {
        let cases = [
            ("pending", None, None),
            ("failed", None, None),
            ("done", Some("webhook:r1"), None),
            ("done", Some("webhook:r1"), Some("running")),
            ("done", Some("pipelines:x"), Some("succeeded")),
            ("done", Some("webhook:r1"), Some("untracked")),
            ("done", Some("webhook:r1"), Some("lost")),
        ];
        for (state, run, run_state) in cases {
            let stored = record(state, run, run_state);
            let d: Delivery = serde_json::from_value(stored.clone()).unwrap();
            assert_eq!(
                serde_json::to_value(&d).unwrap(),
                stored,
                "{state} {run_state:?}"
            );
        }
        let lost: Delivery =
            serde_json::from_value(record("done", Some("webhook:r1"), Some("lost"))).unwrap();
        assert_eq!(lost.run().unwrap().follow, RunFollow::Lost);
        assert!(!lost.run_open() && lost.run().unwrap().follow.ended_badly());
    }

    #[test]
    fn a_done_record_without_a_run_or_with_an_unknown_state_is_refused() {
        assert!(serde_json::from_value::<Delivery>(record("done", None, None)).is_err());
        let odd = record("done", Some("webhook:r1"), Some("exploded"));
        assert!(serde_json::from_value::<Delivery>(odd).is_err());
    }
}
