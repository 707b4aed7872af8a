//! What a run is: the record of one execution of a chain and its stages, with the status machines
//! (queued → running → succeeded / failed / cancelled; a stage may also be skipped, or deferred
//! by a closed gate or an exhausted budget).
//!
//! These types are the REST API's response bodies, and the runner stores them in sled as the same
//! JSON: a field renamed here changes both the API and the on-disk format.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// Whether the run has ended (it will not change again).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A status string that is not a run status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown run status `{}`; expected one of `queued`, `running`, `succeeded`, `failed`, `cancelled`",
            self.0
        )
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(UnknownStatus(other.to_owned())),
        })
    }
}

/// Status of one stage within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Waiting for its `after` stages or for the run to start.
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Never started because a stage failed, the run was cancelled or the runner stopped.
    Skipped,
    /// Not started because its gate is closed or the chain's budget cannot pay for it (or a
    /// stage it waits for is deferred); the reason is in the stage's `error`. A run whose other
    /// stages succeeded still ends `succeeded`.
    Deferred,
}

impl StageStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
            Self::Deferred => "deferred",
        }
    }
}

impl fmt::Display for StageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `POST` on [`paths::CHAIN_RUNS`](crate::paths::CHAIN_RUNS).
    Api,
    /// The chain's cron schedule.
    Schedule,
    /// `pipelines run` without `--url`.
    Cli,
    /// The runner itself, catching up on a gate whose `or_after` came due with links waiting:
    /// the run starts at the gated stages.
    Gate,
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRun {
    pub name: String,
    pub status: StageStatus,
    /// Exit code of the last attempt's main process; `None` if it did not exit by itself.
    pub exit_code: Option<i32>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times the stage was started (1 + retries used).
    #[serde(default)]
    pub attempts: u32,
    /// Why it failed, was cancelled or skipped.
    #[serde(default)]
    pub error: Option<String>,
}

impl StageRun {
    /// A stage that has not started yet.
    pub fn queued(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: StageStatus::Queued,
            exit_code: None,
            started_at: None,
            finished_at: None,
            attempts: 0,
            error: None,
        }
    }
}

/// One run of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub chain: String,
    pub status: RunStatus,
    pub trigger: Trigger,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When a cancel of the run was accepted (the run ends `cancelled` shortly after, unless it
    /// ended otherwise first).
    #[serde(default)]
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Stages in the chain file's order.
    pub stages: Vec<StageRun>,
    /// Why the run failed or was cancelled.
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    /// The params the stages were given (trigger's params over the chain's defaults).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Absolute path of the run's directory: `config.yaml`, `logs/`, and room for outputs.
    pub run_dir: PathBuf,
    /// Started with `force`: gates and budgets were open for this run.
    #[serde(default)]
    pub force: bool,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Api => "api",
            Self::Schedule => "schedule",
            Self::Cli => "cli",
            Self::Gate => "gate",
        })
    }
}

impl Run {
    pub fn stage(&self, name: &str) -> Option<&StageRun> {
        self.stages.iter().find(|stage| stage.name == name)
    }
    pub fn stage_mut(&mut self, name: &str) -> Option<&mut StageRun> {
        self.stages.iter_mut().find(|stage| stage.name == name)
    }
    /// Marks every stage that never started as skipped, with `reason`.
    pub fn skip_unstarted(&mut self, reason: &str, at: DateTime<Utc>) {
        for stage in &mut self.stages {
            if stage.status == StageStatus::Queued {
                stage.status = StageStatus::Skipped;
                stage.finished_at = Some(at);
                stage.error = Some(reason.to_owned());
            }
        }
    }
    /// Marks every stage that never started as deferred, with `reason`.
    pub fn defer_unstarted(&mut self, reason: &str, at: DateTime<Utc>) {
        for stage in &mut self.stages {
            if stage.status == StageStatus::Queued {
                stage.status = StageStatus::Deferred;
                stage.finished_at = Some(at);
                stage.error = Some(reason.to_owned());
            }
        }
    }
    /// The deferred stages with their reasons, in the chain file's order.
    pub fn deferred(&self) -> impl Iterator<Item = &StageRun> {
        self.stages
            .iter()
            .filter(|stage| stage.status == StageStatus::Deferred)
    }
    /// Ends the run: sets status, error and end time.
    pub fn finish(&mut self, status: RunStatus, error: Option<String>, at: DateTime<Utc>) {
        self.status = status;
        self.error = error;
        self.finished_at = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_as_snake_case() {
        for status in [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), status);
        }
        assert_eq!(
            serde_json::to_string(&StageStatus::Skipped).unwrap(),
            "\"skipped\""
        );
        assert_eq!(format!("[{:<9}]", RunStatus::Failed), "[failed   ]");
        assert!("done".parse::<RunStatus>().is_err());
    }
}
