//! The gates and budgets report: the answer of `GET` [`GATES`](crate::paths::GATES), one entry
//! per chain with a gated stage or a budget: each gate's counters and when it opens, and the
//! chain's budget (spent, left, window).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The answer of `GET` [`GATES`](crate::paths::GATES).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// When the report was made (by the runner's clock).
    pub at: DateTime<Utc>,
    pub chains: Vec<ChainGates>,
}

/// The gates and the budget of one chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainGates {
    pub chain: String,
    /// Gated stages, in the chain file's order.
    pub gates: Vec<GateView>,
    pub budget: Option<BudgetView>,
}

/// One gated stage and its durable counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateView {
    pub stage: String,
    pub min_new_links: Option<u64>,
    /// A humantime duration such as `14days`.
    pub or_after: Option<String>,
    /// How long after a failure the stage is not tried again.
    pub gate_retry: String,
    /// Distinct links that arrived since the stage last succeeded, waiting.
    pub new_links: u64,
    /// Links an attempt that is running now took (they come back if it fails).
    pub in_flight_links: u64,
    /// Where the `or_after` clock starts: the last success, or the first run that reached the
    /// stage.
    pub since: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// The last failure since the last success.
    pub last_failure: Option<DateTime<Utc>>,
    /// When `or_after` opens the gate (if a link is waiting by then).
    pub opens_at: Option<DateTime<Utc>>,
    /// Until when a failure keeps the stage closed.
    pub retry_after: Option<DateTime<Utc>>,
    /// Whether the gate would let a run through now.
    pub open: bool,
    /// The same in words, e.g. "7 of 20 new links; or on 2026-12-31 00:00 UTC".
    pub summary: String,
}

/// A chain's budget over its rolling window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    pub limit: f64,
    /// The window, a humantime duration such as `30days`.
    pub per: String,
    /// Charged within the window (every attempt started, failed ones too).
    pub spent: f64,
    /// What is left (negative after forced runs).
    pub left: f64,
    pub window_start: DateTime<Utc>,
    /// When the oldest charge in the window leaves it.
    pub next_release_at: Option<DateTime<Utc>>,
    /// Each costed stage's estimate per attempt.
    pub costs: BTreeMap<String, f64>,
}

/// A stage's gate as the chain file gives it (in [`StageView`](crate::StageView)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    pub min_new_links: Option<u64>,
    /// A humantime duration such as `14days`.
    pub or_after: Option<String>,
    pub gate_retry: String,
}

/// A chain's budget as the chain file gives it (in [`ChainView`](crate::ChainView)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSpec {
    pub limit: f64,
    /// A humantime duration such as `30days`.
    pub per: String,
}
