//! What the runner answers besides a single run: a page of runs, the chains it loaded, and the
//! error body every failed call carries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::gates::{BudgetSpec, GateSpec};
use crate::run::Run;

/// One page of runs, newest first; `next` is the cursor for the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPage {
    pub runs: Vec<Run>,
    pub next: Option<String>,
}

/// The body of every error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// The answer of `GET` [`HEALTHZ`](crate::paths::HEALTHZ).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// How many chains the runner loaded.
    pub chains: usize,
}

/// The answer of `GET` [`CHAINS`](crate::paths::CHAINS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainList {
    pub chains: Vec<ChainView>,
}

/// One chain as the runner loaded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainView {
    pub name: String,
    pub description: String,
    /// The chain file's path on the runner's machine.
    pub file: String,
    /// The cron expression, if the chain is scheduled.
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub next_scheduled_at: Option<DateTime<Utc>>,
    pub default_config: Option<String>,
    /// How many runs of the chain may run at once.
    pub concurrency: usize,
    /// The params' defaults.
    pub params: BTreeMap<String, String>,
    pub stages: Vec<StageView>,
    /// What the costed stages may spend per rolling window.
    #[serde(default)]
    pub budget: Option<BudgetSpec>,
}

/// One stage of a [`ChainView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageView {
    pub name: String,
    pub after: Vec<String>,
    /// The argv as written, placeholders unexpanded.
    pub run: Vec<String>,
    pub workdir: String,
    /// A humantime duration such as `10m`.
    pub timeout: Option<String>,
    pub retries: u32,
    /// When the stage may run at all.
    #[serde(default)]
    pub gate: Option<GateSpec>,
    /// The user's estimate per attempt, charged to the chain's budget.
    #[serde(default)]
    pub cost: Option<f64>,
}
