//! The engine that runs chains: the handle every part shares ([`Engine`]), what it holds (the
//! chains, the run database, the per-chain queues, the shutdown tokens) and the few operations
//! every part uses (reading and updating a run record, waiting for changes). The work itself is
//! in the children, in the order a run meets them: [`submit`] accepts it, [`queue`] starts it
//! under the chain's concurrency limit, [`execute`] walks its DAG, [`stage`] runs each stage's
//! attempts, [`gates`] admitting each past its gate and budget; [`cancel`] stops it;
//! [`catchup`] starts the runs a gate's `or_after` makes due; [`schedules`] submits on cron; [`recover`] cleans up after the
//! previous process at open; [`retention`] deletes old runs; [`lifecycle`] opens, starts and
//! shuts the whole down.
//!
//! Restart semantics: a run that was `running` when the previous runner process ended is marked
//! `failed` with the error "interrupted by restart" (its running stages `failed`, the rest
//! `skipped`), after the process groups that runner left are killed; `queued` runs stay queued
//! and start in their original order. Runs are never resumed half-way: a stage that was cut off
//! may have had side effects, so the caller decides (e.g. the watcher redelivers the batch).

mod cancel;
mod catchup;
mod execute;
mod gates;
mod lifecycle;
mod observe;
mod queue;
mod recover;
mod retention;
mod schedules;
mod stage;
mod submit;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runner_api::{Run, RunPage};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::causes::list;
use crate::chain::Chains;
use crate::clock::Clock;
use crate::process;
use crate::state::{RunFilter, State, StateError};

pub use self::cancel::CancelError;
pub use self::lifecycle::OpenError;
pub use self::retention::PRUNE_EVERY;
pub use self::submit::{SubmitError, Submitted};

/// The error a run that was running when the runner stopped gets at the next start.
pub const INTERRUPTED_BY_RESTART: &str = "interrupted by restart";
/// The error a run gets when the runner shuts down before its stages could all start.
pub const INTERRUPTED_BY_SHUTDOWN: &str = "interrupted by shutdown";
/// The error of a stage whose runner task panicked (its process group is killed).
pub const STAGE_TASK_PANICKED: &str =
    "the runner's task for this stage panicked; its processes were killed";
/// The error of a stage whose runner task was stopped before the stage ended (its process group
/// is killed).
pub const STAGE_TASK_STOPPED: &str =
    "the runner's task for this stage was stopped; its processes were killed";

/// Why a log could not be found.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("run `{id}` not found")]
    RunNotFound { id: String },
    #[error("run `{id}` has no stage `{stage}`; its stages are {known}")]
    StageNotFound {
        id: String,
        stage: String,
        known: String,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

/// Runs chains; cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    chains: Chains,
    state: State,
    runs_dir: PathBuf,
    kill_grace: Duration,
    shutdown_grace: Duration,
    log_cap: u64,
    keep_runs: Duration,
    /// The embedder's secret variables, removed from every stage's environment.
    secret_env: Vec<String>,
    queues: Mutex<HashMap<String, ChainQueue>>,
    tracker: TaskTracker,
    /// No new run or stage starts once this is cancelled.
    stopping: CancellationToken,
    /// Running stages are stopped once this is cancelled (after the shutdown grace).
    kill: CancellationToken,
    /// Woken after every change of a run record.
    changed: Notify,
    /// What gates and budgets read the time from.
    clock: Clock,
    /// Woken when a run ends, so a gate's catch-up that waited for it looks again.
    runs_ended: Notify,
    /// Prometheus metrics (`/metrics`; see `observe.rs`).
    metrics: crate::metrics::RunnerMetrics,
}

#[derive(Debug, Default)]
struct ChainQueue {
    waiting: VecDeque<String>,
    /// Cancel tokens of the runs of this chain that are executing.
    active: HashMap<String, CancellationToken>,
}

impl Engine {
    /// The loaded chains.
    pub fn chains(&self) -> &Chains {
        &self.inner.chains
    }

    /// The clock gates and budgets read.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// One run.
    pub fn run(&self, id: &str) -> Result<Option<Run>, StateError> {
        self.inner.state.get_run(id)
    }

    /// Runs matching `filter`, newest first.
    pub async fn runs(&self, filter: RunFilter) -> Result<RunPage, StateError> {
        self.inner.state.list_runs(filter).await
    }

    /// The gates and budgets of `chain` (every chain when `None`), by the engine's clock (a
    /// store read, on the blocking pool).
    pub async fn gates(&self, chain: Option<&str>) -> Result<runner_api::GateReport, StateError> {
        let chains: Vec<_> = self
            .inner
            .chains
            .iter()
            .filter(|c| chain.is_none_or(|name| c.name() == name))
            .cloned()
            .collect();
        let (state, now) = (self.inner.state.clone(), self.inner.clock.now());
        sled_gate::blocking(move || crate::gate_report::report(&chains, &state, now)).await
    }

    /// Waits until run `id` has finished.
    pub async fn wait(&self, id: &str) -> Result<Run, StateError> {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let run = self
                .inner
                .state
                .get_run(id)?
                .ok_or_else(|| StateError::RunNotFound { id: id.to_owned() })?;
            if run.status.is_finished() {
                return Ok(run);
            }
            notified.await;
        }
    }

    /// Resolves at the next change of any run (for progress displays); `enable` it before
    /// reading the state to miss no change.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.changed.notified()
    }

    /// The log file of one stage of one run (it may not exist yet).
    pub fn log_path(&self, id: &str, stage: &str) -> Result<PathBuf, LogError> {
        let run = self
            .inner
            .state
            .get_run(id)?
            .ok_or_else(|| LogError::RunNotFound { id: id.to_owned() })?;
        if run.stage(stage).is_none() {
            return Err(LogError::StageNotFound {
                id: id.to_owned(),
                stage: stage.to_owned(),
                known: list(run.stages.iter().map(|s| s.name.as_str())),
            });
        }
        Ok(process::log_path(&run.run_dir, stage))
    }

    fn lock_queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, ChainQueue>> {
        self.inner
            .queues
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Changes a run record (on the blocking pool) and wakes whoever waits for changes.
    async fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Run) + Send + 'static,
    ) -> Result<Run, StateError> {
        let run = self.inner.state.update_run(id, change).await?;
        self.inner.changed.notify_waiters();
        Ok(run)
    }

    /// [`update`](Self::update) on the calling thread: for recovery at startup and drop guards.
    fn update_blocking(&self, id: &str, change: impl FnOnce(&mut Run)) -> Result<Run, StateError> {
        let run = self.inner.state.update_run_blocking(id, change)?;
        self.inner.changed.notify_waiters();
        Ok(run)
    }
}
