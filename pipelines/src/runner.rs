//! The engine that runs chains: accepting runs (idempotently), the per-chain FIFO queue with its
//! concurrency limit, executing a run's DAG (independent stages in parallel, a failure skipping
//! what has not started), retries, cancel, cron schedules, recovery after a restart, deleting
//! finished runs past their retention, and graceful shutdown.
//!
//! Restart semantics: a run that was `running` when the previous runner process ended is marked
//! `failed` with the error "interrupted by restart" (its running stages `failed`, the rest
//! `skipped`), after the process groups that runner left are killed; `queued` runs stay queued
//! and start in their original order. Runs are never resumed half-way: a stage that was cut off
//! may have had side effects, so the caller decides (e.g. the watcher redelivers the batch).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::chain::{Chain, Chains};
use crate::error::Error;
use crate::placeholder::Values;
use crate::process::{self, Leftover, Outcome, Stops};
use crate::schedule;
use crate::settings::{self, RunnerSettings};
use crate::state::{Inserted, RunFilter, State, StateError};
use runner_api::{Run, RunPage, RunRequest, RunStatus, StageRun, StageStatus, Trigger};

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

/// How often finished runs past the retention (`keep_runs`) are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The least age of a run directory without a run record before it is deleted (a run being
/// created has its directory before its record).
const ORPHAN_MIN_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What [`Engine::submit`] did.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// A new run was queued.
    Created(Run),
    /// The idempotency key named this run already.
    Existing(Run),
}

impl Submitted {
    pub fn run(&self) -> &Run {
        match self {
            Self::Created(run) | Self::Existing(run) => run,
        }
    }
}

/// Why a run was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("unknown chain `{name}`; known chains: {known}")]
    UnknownChain { name: String, known: String },
    #[error(
        "idempotency key `{key}` was already used for run `{run_id}` with a different request; use a new key for a different request"
    )]
    Conflict { key: String, run_id: String },
    #[error(
        "chain `{chain}` needs params {names}; send them in `params` or add defaults under `[params]` in its chain file"
    )]
    MissingParams { chain: String, names: String },
    #[error("chain `{chain}` has no `default_config`, so the request must carry a `config` object")]
    NoConfig { chain: String },
    #[error(
        "cannot use the default config `{path}` of chain `{chain}`: {reason}; send a `config` in the request or fix `default_config`"
    )]
    DefaultConfig {
        chain: String,
        path: PathBuf,
        reason: String,
    },
    #[error("the runner is shutting down; retry once it is back")]
    ShuttingDown,
    #[error("cannot prepare the run directory `{path}`")]
    RunDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why a run could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("run `{id}` not found")]
    NotFound { id: String },
    #[error(
        "run `{id}` already finished with status `{status}`; only queued or running runs can be cancelled"
    )]
    Finished { id: String, status: RunStatus },
    #[error(transparent)]
    State(#[from] StateError),
}

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
    queues: Mutex<HashMap<String, ChainQueue>>,
    tracker: TaskTracker,
    /// No new run or stage starts once this is cancelled.
    stopping: CancellationToken,
    /// Running stages are stopped once this is cancelled (after the shutdown grace).
    kill: CancellationToken,
    /// Woken after every change of a run record.
    changed: Notify,
}

#[derive(Debug, Default)]
struct ChainQueue {
    waiting: VecDeque<String>,
    /// Cancel tokens of the runs of this chain that are executing.
    active: HashMap<String, CancellationToken>,
}

/// How a stage task ended, for the run's DAG loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StageEnd {
    Succeeded,
    Failed,
    Stopped,
}

impl Engine {
    /// Loads the chains, opens the state (locking it) and recovers from the previous process:
    /// kills leftover process groups, fails interrupted runs, re-queues queued ones.
    pub fn open(settings: &RunnerSettings) -> Result<Self, Error> {
        let chains = crate::chain::load(&settings.chains_dir)?;
        let state_dir =
            std::path::absolute(&settings.state_dir).unwrap_or_else(|_| settings.state_dir.clone());
        let runs_dir = settings::runs_dir(&state_dir);
        std::fs::create_dir_all(&runs_dir).map_err(|source| Error::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        let state = State::open(&settings::db_dir(&state_dir))?;
        let engine = Self {
            inner: Arc::new(Inner {
                chains,
                state,
                runs_dir,
                kill_grace: settings.kill_grace,
                shutdown_grace: settings.shutdown_grace,
                log_cap: settings.log_cap,
                keep_runs: settings.keep_runs,
                queues: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                stopping: CancellationToken::new(),
                kill: CancellationToken::new(),
                changed: Notify::new(),
            }),
        };
        engine.recover()?;
        Ok(engine)
    }

    /// The loaded chains.
    pub fn chains(&self) -> &Chains {
        &self.inner.chains
    }

    /// Starts the cron schedules, the queued runs and the pruning of old finished runs (now and
    /// every [`PRUNE_EVERY`]). Call once, inside a tokio runtime.
    pub fn start(&self) {
        let engine = self.clone();
        self.inner
            .tracker
            .spawn(async move { engine.prune_periodically().await });
        for chain in self.inner.chains.iter() {
            if let Some(schedule) = chain.schedule().cloned() {
                let engine = self.clone();
                let chain = Arc::clone(chain);
                let stopping = self.inner.stopping.clone();
                tracing::info!(chain = chain.name(), schedule = schedule.expr(), timezone = %schedule.timezone(), "schedule active");
                self.inner.tracker.spawn(async move {
                    schedule::run_schedule(&schedule, stopping, |at| {
                        let engine = engine.clone();
                        let chain = chain.name().to_owned();
                        async move { engine.fire_schedule(&chain, at).await }
                    })
                    .await;
                });
            }
        }
        for chain in self.inner.chains.iter() {
            self.dispatch(chain.name());
        }
    }

    /// Stops accepting work, lets running stages finish for the shutdown grace period, then
    /// stops them; returns when every task has ended and the state is flushed.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.stopping.cancel();
        inner.tracker.close();
        if tokio::time::timeout(inner.shutdown_grace, inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace = %humantime::format_duration(inner.shutdown_grace),
                "stages still running after the shutdown grace period; stopping them"
            );
            inner.kill.cancel();
            inner.tracker.wait().await;
        }
        if let Err(err) = inner.state.flush().await {
            tracing::error!(error = %err, "flushing the run database at shutdown failed");
        }
    }

    /// Accepts a run: idempotency check, params, config file, then the chain's queue.
    pub async fn submit(
        &self,
        chain_name: &str,
        request: RunRequest,
        trigger: Trigger,
    ) -> Result<Submitted, SubmitError> {
        let inner = &self.inner;
        let chain = inner
            .chains
            .get(chain_name)
            .ok_or_else(|| SubmitError::UnknownChain {
                name: chain_name.to_owned(),
                known: list(inner.chains.iter().map(|c| c.name())),
            })?
            .clone();
        let fingerprint = fingerprint(chain_name, &request);
        let key = request.idempotency_key.clone();
        if let Some(key) = &key
            && let Some(found) = self.existing(key, &fingerprint)?
        {
            return Ok(found);
        }
        if inner.stopping.is_cancelled() {
            return Err(SubmitError::ShuttingDown);
        }

        let mut params = chain.params().clone();
        params.extend(request.params.clone());
        let missing: Vec<&str> = chain
            .required_params()
            .into_iter()
            .filter(|name| !params.contains_key(*name))
            .collect();
        if !missing.is_empty() {
            return Err(SubmitError::MissingParams {
                chain: chain_name.to_owned(),
                names: list(missing.into_iter()),
            });
        }
        let config = match request.config {
            Some(config) => Value::Object(config),
            None => read_default_config(&chain).await?,
        };

        let id = uuid::Uuid::now_v7().to_string();
        let run_dir = inner.runs_dir.join(&id);
        let prepared = {
            let run_dir = run_dir.clone();
            tokio::task::spawn_blocking(move || write_run_dir(&run_dir, &config))
                .await
                .unwrap_or_else(|join| Err(std::io::Error::other(join)))
        };
        prepared.map_err(|source| SubmitError::RunDir {
            path: run_dir.clone(),
            source,
        })?;
        let now = Utc::now();
        let run = Run {
            id: id.clone(),
            chain: chain_name.to_owned(),
            status: RunStatus::Queued,
            trigger,
            created_at: now,
            started_at: None,
            finished_at: None,
            cancel_requested_at: None,
            stages: chain
                .stages()
                .iter()
                .map(|stage| StageRun {
                    name: stage.name().to_owned(),
                    status: StageStatus::Queued,
                    exit_code: None,
                    started_at: None,
                    finished_at: None,
                    attempts: 0,
                    error: None,
                })
                .collect(),
            error: None,
            idempotency_key: key.clone(),
            params,
            run_dir: run_dir.clone(),
        };
        let idempotency = key.clone().map(|key| (key, fingerprint.clone()));
        match inner.state.insert_run(run.clone(), idempotency).await? {
            Inserted::New => {}
            Inserted::Existing { run, same_request } => {
                // Lost a race with the same key: drop what this request prepared.
                let _ = tokio::fs::remove_dir_all(&run_dir).await;
                return if same_request {
                    Ok(Submitted::Existing(*run))
                } else {
                    Err(SubmitError::Conflict {
                        key: key.unwrap_or_default(),
                        run_id: run.id,
                    })
                };
            }
        }
        inner.state.flush().await?;
        tracing::info!(chain = chain_name, run_id = %id, %trigger, "run queued");
        self.lock_queues()
            .entry(chain_name.to_owned())
            .or_default()
            .waiting
            .push_back(id);
        inner.changed.notify_waiters();
        self.dispatch(chain_name);
        Ok(Submitted::Created(run))
    }

    fn existing(&self, key: &str, fingerprint: &str) -> Result<Option<Submitted>, SubmitError> {
        // A probe insert with an impossible run would be wasteful; read the index directly.
        match self.inner.state.idempotent_run(key)? {
            None => Ok(None),
            Some((run, stored)) if stored == fingerprint => Ok(Some(Submitted::Existing(run))),
            Some((run, _)) => Err(SubmitError::Conflict {
                key: key.to_owned(),
                run_id: run.id,
            }),
        }
    }

    /// One run.
    pub fn run(&self, id: &str) -> Result<Option<Run>, StateError> {
        self.inner.state.get_run(id)
    }

    /// Runs matching `filter`, newest first.
    pub async fn runs(&self, filter: RunFilter) -> Result<RunPage, StateError> {
        self.inner.state.list_runs(filter).await
    }

    /// Cancels a queued or running run without waiting for it to end. A queued run is
    /// `cancelled` at once. For a running one the request is recorded (`cancel_requested_at`)
    /// and its stages are stopped in the background (SIGTERM, at most the kill grace, SIGKILL):
    /// the run returned is usually still `running` and becomes `cancelled` shortly after
    /// ([`wait`](Self::wait) for it). Cancelling a run that is already being cancelled is fine.
    pub async fn cancel(&self, id: &str) -> Result<Run, CancelError> {
        let run = self
            .inner
            .state
            .get_run(id)?
            .ok_or_else(|| CancelError::NotFound { id: id.to_owned() })?;
        if run.status.is_finished() {
            return Err(CancelError::Finished {
                id: id.to_owned(),
                status: run.status,
            });
        }
        let dequeued = {
            let mut queues = self.lock_queues();
            let queue = queues.entry(run.chain.clone()).or_default();
            let position = queue.waiting.iter().position(|queued| queued == id);
            position.and_then(|pos| queue.waiting.remove(pos)).is_some()
        };
        let now = Utc::now();
        if dequeued {
            tracing::info!(chain = %run.chain, run_id = id, "queued run cancelled");
            let run = self
                .update(id, move |run| {
                    run.cancel_requested_at.get_or_insert(now);
                    run.skip_unstarted("run cancelled", now);
                    run.finish(RunStatus::Cancelled, Some("cancelled".into()), now);
                })
                .await?;
            return Ok(run);
        }
        // Recorded before the run's token fires, so a run that has not reached its executor yet
        // (or a restarted runner's re-queued run) sees the request when it starts.
        let run = self
            .update(id, move |run| {
                if !run.status.is_finished() {
                    run.cancel_requested_at.get_or_insert(now);
                }
            })
            .await?;
        if run.status.is_finished() {
            // It ended by itself just before the cancel reached it.
            return Err(CancelError::Finished {
                id: id.to_owned(),
                status: run.status,
            });
        }
        self.inner.state.flush().await?;
        if let Some(token) = self
            .lock_queues()
            .get(&run.chain)
            .and_then(|queue| queue.active.get(id))
        {
            token.cancel();
        }
        tracing::info!(chain = %run.chain, run_id = id, "cancelling running run");
        Ok(run)
    }

    /// Deletes the finished runs that ended longer than the `keep_runs` setting ago: record,
    /// idempotency key and run directory; also run directories without a record (left by a
    /// crash while a run was being created) once they are that old and at least an hour old.
    /// Queued and running runs are never touched. Returns how many runs were deleted.
    pub async fn prune_runs(&self) -> Result<usize, StateError> {
        let Some(cutoff) = chrono::TimeDelta::from_std(self.inner.keep_runs)
            .ok()
            .and_then(|keep| Utc::now().checked_sub_signed(keep))
        else {
            return Ok(0);
        };
        let engine = self.clone();
        let pruned = tokio::task::spawn_blocking(move || engine.prune_blocking(cutoff))
            .await
            .unwrap_or_else(|join| {
                tracing::error!(error = %join, "pruning old runs crashed");
                Ok(0)
            })?;
        if pruned > 0 {
            self.inner.state.flush().await?;
        }
        Ok(pruned)
    }

    fn prune_blocking(&self, cutoff: chrono::DateTime<Utc>) -> Result<usize, StateError> {
        let runs_dir = &self.inner.runs_dir;
        let pruned = self.inner.state.prune_runs(cutoff)?;
        for run in &pruned {
            // The run's directory under this state directory (never a path read from the record).
            remove_run_dir(&runs_dir.join(&run.id));
            tracing::info!(chain = %run.chain, run_id = %run.id, status = %run.status, "deleted an old run");
        }
        let orphan_cutoff = cutoff.min(Utc::now() - ORPHAN_MIN_AGE);
        let entries = match std::fs::read_dir(runs_dir) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::warn!(error = %err, dir = %runs_dir.display(), "cannot list run directories");
                return Ok(pruned.len());
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().filter(|id| uuid::Uuid::parse_str(id).is_ok()) else {
                continue;
            };
            let modified = entry.metadata().and_then(|meta| meta.modified());
            let old = modified.is_ok_and(|at| chrono::DateTime::<Utc>::from(at) < orphan_cutoff);
            if old && matches!(self.inner.state.get_run(id), Ok(None)) {
                tracing::info!(dir = %entry.path().display(), "deleting a run directory that has no run");
                remove_run_dir(&entry.path());
            }
        }
        Ok(pruned.len())
    }

    /// Prunes old runs now and every [`PRUNE_EVERY`] until shutdown.
    async fn prune_periodically(&self) {
        loop {
            match self.prune_runs().await {
                Ok(0) => {}
                Ok(count) => tracing::info!(
                    count,
                    keep = %humantime::format_duration(self.inner.keep_runs),
                    "deleted finished runs older than the retention"
                ),
                Err(err) => tracing::error!(error = %error_chain(&err), "pruning old runs failed"),
            }
            tokio::select! {
                () = self.inner.stopping.cancelled() => return,
                () = tokio::time::sleep(PRUNE_EVERY) => {}
            }
        }
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

    /// Starts queued runs of `chain_name` while it is under its concurrency limit.
    fn dispatch(&self, chain_name: &str) {
        if self.inner.stopping.is_cancelled() {
            return;
        }
        let Some(chain) = self.inner.chains.get(chain_name).cloned() else {
            return;
        };
        let mut queues = self.lock_queues();
        let queue = queues.entry(chain_name.to_owned()).or_default();
        while queue.active.len() < chain.concurrency() {
            let Some(id) = queue.waiting.pop_front() else {
                break;
            };
            let cancel = CancellationToken::new();
            queue.active.insert(id.clone(), cancel.clone());
            let engine = self.clone();
            let chain = Arc::clone(&chain);
            let span = tracing::info_span!("run", chain = chain.name(), run_id = %id);
            self.inner.tracker.spawn(
                async move {
                    engine.execute_run(&chain, &id, cancel).await;
                    engine
                        .lock_queues()
                        .entry(chain.name().to_owned())
                        .or_default()
                        .active
                        .remove(&id);
                    engine.dispatch(chain.name());
                }
                .instrument(span),
            );
        }
    }

    /// Executes one run: its stages in DAG order, independent ones in parallel.
    async fn execute_run(&self, chain: &Arc<Chain>, run_id: &str, cancel: CancellationToken) {
        if let Err(err) = self.try_execute_run(chain, run_id, cancel).await {
            tracing::error!(error = %err, "run bookkeeping failed");
            let now = Utc::now();
            let error = format!("runner error: {err}");
            let recorded = self
                .update(run_id, move |run| {
                    run.skip_unstarted("runner error", now);
                    run.finish(RunStatus::Failed, Some(error), now);
                })
                .await;
            if let Err(err) = recorded {
                tracing::error!(error = %err, "recording a run's failure failed");
            }
        }
    }

    async fn try_execute_run(
        &self,
        chain: &Arc<Chain>,
        run_id: &str,
        cancel: CancellationToken,
    ) -> Result<(), StateError> {
        let run = self
            .update(run_id, |run| {
                run.status = RunStatus::Running;
                run.started_at = Some(Utc::now());
            })
            .await?;
        if run.cancel_requested_at.is_some() {
            cancel.cancel();
        }
        // Durable before any process starts: a crash from here on is "interrupted by restart",
        // never a second execution of the same run.
        self.inner.state.flush().await?;
        tracing::info!("run started");
        let stages = chain.stages();
        let mut ends: Vec<Option<StageEnd>> = vec![None; stages.len()];
        let mut started = vec![false; stages.len()];
        // Dropping the set (an early return, a panic) aborts the stage tasks, and each one's
        // guards then kill its process group and mark the stage failed.
        let mut tasks = JoinSet::new();
        let mut task_stage = HashMap::new();
        let mut failure: Option<String> = None;
        let mut cancelled = cancel.is_cancelled();
        let mut stopping = false;
        loop {
            // Read the tokens too: a stage may have ended in the same poll that they fired.
            cancelled |= cancel.is_cancelled();
            stopping |= self.inner.stopping.is_cancelled();
            if failure.is_none() && !cancelled && !stopping {
                for (index, stage) in stages.iter().enumerate() {
                    let ready = stage
                        .deps()
                        .iter()
                        .all(|&dep| ends[dep] == Some(StageEnd::Succeeded));
                    if started[index] || !ready {
                        continue;
                    }
                    started[index] = true;
                    let engine = self.clone();
                    let chain = Arc::clone(chain);
                    let run = run.clone();
                    let cancel = cancel.clone();
                    let span = tracing::info_span!("stage", stage = stage.name());
                    let task = tasks.spawn(
                        async move { (index, engine.run_stage(&chain, index, &run, cancel).await) }
                            .instrument(span),
                    );
                    task_stage.insert(task.id(), index);
                }
            }
            if tasks.is_empty() {
                break;
            }
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    Some(Ok((index, end))) => {
                        ends[index] = Some(end);
                        if end == StageEnd::Failed && failure.is_none() {
                            failure = Some(self.stage_failure(run_id, stages[index].name()));
                        }
                    }
                    Some(Err(err)) => {
                        // The task panicked; its guard has marked the stage failed.
                        tracing::error!(error = %err, "a stage task crashed");
                        match task_stage.get(&err.id()) {
                            Some(&index) => {
                                ends[index] = Some(StageEnd::Failed);
                                if failure.is_none() {
                                    failure = Some(self.stage_failure(run_id, stages[index].name()));
                                }
                            }
                            None => {
                                failure.get_or_insert_with(|| format!("a stage task crashed: {err}"));
                            }
                        }
                    }
                    None => {}
                },
                () = cancel.cancelled(), if !cancelled => cancelled = true,
                () = self.inner.stopping.cancelled(), if !stopping => stopping = true,
            }
        }

        let now = Utc::now();
        let all_done = ends.iter().all(|end| *end == Some(StageEnd::Succeeded));
        // Every stage succeeded: a cancel or shutdown that came too late changes nothing.
        let run = if all_done {
            self.update(run_id, move |run| {
                run.finish(RunStatus::Succeeded, None, now)
            })
            .await?
        } else if cancelled {
            self.update(run_id, move |run| {
                run.skip_unstarted("run cancelled", now);
                run.finish(RunStatus::Cancelled, Some("cancelled".into()), now);
            })
            .await?
        } else if let Some(failure) = failure {
            let reason = "skipped because an earlier stage failed";
            self.update(run_id, move |run| {
                run.skip_unstarted(reason, now);
                run.finish(RunStatus::Failed, Some(failure), now);
            })
            .await?
        } else {
            self.update(run_id, move |run| {
                run.skip_unstarted(INTERRUPTED_BY_SHUTDOWN, now);
                run.finish(RunStatus::Failed, Some(INTERRUPTED_BY_SHUTDOWN.into()), now);
            })
            .await?
        };
        self.inner.state.flush().await?;
        match run.status {
            RunStatus::Succeeded => tracing::info!("run succeeded"),
            status => {
                tracing::warn!(%status, error = run.error.as_deref().unwrap_or(""), "run ended")
            }
        }
        Ok(())
    }

    /// "stage `x` failed: <its recorded error>" for the run's error.
    fn stage_failure(&self, run_id: &str, stage: &str) -> String {
        // Only a message is at stake: a failed read must not end the run loop, whose stage tasks
        // (and their processes) would go with it.
        let why = match self.run(run_id) {
            Ok(run) => run.and_then(|run| run.stage(stage).and_then(|s| s.error.clone())),
            Err(err) => {
                tracing::error!(error = %err, "reading a failed stage's error failed");
                None
            }
        };
        format!(
            "stage `{stage}` failed: {}",
            why.as_deref().unwrap_or("failed")
        )
    }

    /// Runs one stage (with its retries) and records its end.
    async fn run_stage(
        &self,
        chain: &Chain,
        index: usize,
        run: &Run,
        cancel: CancellationToken,
    ) -> StageEnd {
        let stage = &chain.stages()[index];
        let name = stage.name();
        let mut guard = StageGuard {
            engine: self,
            run_id: &run.id,
            stage: name,
            armed: true,
        };
        let result = self.try_run_stage(chain, index, run, cancel).await;
        guard.armed = false;
        let (status, exit_code, error, end) = match result {
            Ok(outcome) => {
                let status = match outcome {
                    _ if outcome.succeeded() => StageStatus::Succeeded,
                    Outcome::Cancelled => StageStatus::Cancelled,
                    _ => StageStatus::Failed,
                };
                let end = match outcome {
                    _ if outcome.succeeded() => StageEnd::Succeeded,
                    Outcome::Cancelled | Outcome::Killed => StageEnd::Stopped,
                    _ => StageEnd::Failed,
                };
                (status, outcome.exit_code(), outcome.describe(), end)
            }
            Err(message) => (StageStatus::Failed, None, Some(message), StageEnd::Failed),
        };
        match &error {
            None => tracing::info!("stage succeeded"),
            Some(error) => tracing::warn!(%error, "stage did not succeed"),
        }
        let now = Utc::now();
        let stage_name = name.to_owned();
        let recorded = self
            .update(&run.id, move |run| {
                if let Some(record) = run.stage_mut(&stage_name) {
                    record.status = status;
                    record.exit_code = exit_code;
                    record.finished_at = Some(now);
                    record.started_at.get_or_insert(now);
                    record.error = error;
                }
            })
            .await;
        if let Err(err) = recorded {
            tracing::error!(error = %err, "recording a stage's end failed");
        }
        end
    }

    /// The attempts of one stage; `Err` is a problem before any process ran.
    async fn try_run_stage(
        &self,
        chain: &Chain,
        index: usize,
        run: &Run,
        cancel: CancellationToken,
    ) -> Result<Outcome, String> {
        let inner = &self.inner;
        let stage = &chain.stages()[index];
        let run_config = run.run_dir.join("config.yaml");
        let config = match stage.config_dir() {
            Some(dir) => copy_config(&run_config, dir, &run.id).await?,
            None => run_config.clone(),
        };
        let _copy = stage.config_dir().map(|_| RemoveOnDrop(config.clone()));
        let values = Values {
            config: &config,
            run_id: &run.id,
            stage: stage.name(),
            chain: chain.name(),
            run_dir: &run.run_dir,
            params: &run.params,
        };
        let argv = stage
            .run()
            .iter()
            .map(|arg| arg.render(&values))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| err.to_string())?;
        let mut env = vec![
            ("PIPELINES_RUN_ID".to_owned(), run.id.clone()),
            ("PIPELINES_CHAIN".to_owned(), chain.name().to_owned()),
            ("PIPELINES_STAGE".to_owned(), stage.name().to_owned()),
            (
                "PIPELINES_CONFIG".to_owned(),
                config.to_string_lossy().into_owned(),
            ),
            (
                "PIPELINES_RUN_DIR".to_owned(),
                run.run_dir.to_string_lossy().into_owned(),
            ),
        ];
        for (name, value) in stage.env() {
            env.push((
                name.clone(),
                value.render(&values).map_err(|err| err.to_string())?,
            ));
        }
        let (program, args) = argv.split_first().ok_or("empty `run`")?;
        let log = process::log_path(&run.run_dir, stage.name());
        let stops = Stops {
            timeout: stage.timeout(),
            cancel,
            kill: inner.kill.clone(),
            grace: inner.kill_grace,
        };
        let attempts = stage.retries() + 1;
        let mut outcome = Outcome::Exited(-1);
        for attempt in 1..=attempts {
            if stops.cancel.is_cancelled() {
                outcome = Outcome::Cancelled;
                break;
            }
            if stops.kill.is_cancelled() {
                outcome = Outcome::Killed;
                break;
            }
            let now = Utc::now();
            let stage_name = stage.name().to_owned();
            self.update(&run.id, move |run| {
                if let Some(record) = run.stage_mut(&stage_name) {
                    record.status = StageStatus::Running;
                    record.attempts = attempt;
                    record.started_at.get_or_insert(now);
                }
            })
            .await
            .map_err(|err| err.to_string())?;
            let spec = process::Spec {
                program: program.clone(),
                args: args.to_vec(),
                workdir: stage.workdir().to_owned(),
                env: env.clone(),
                env_remove: vec![runner_api::TOKEN_ENV.to_owned()],
                log: log.clone(),
                log_cap: inner.log_cap,
                header: format!(
                    "[pipelines] {} attempt {attempt}/{attempts}: {argv:?} in {}\n",
                    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    stage.workdir().display()
                ),
            };
            tracing::info!(attempt, argv = ?argv, "stage starting");
            let child = process::spawn(&spec)
                .await
                .map_err(|err| error_chain(&err))?;
            let pgid = child.pgid();
            if let Err(err) = inner
                .state
                .record_group(&child.record(&run.id, stage.name()))
                .await
            {
                tracing::error!(error = %err, pgid, "recording a process group failed");
            }
            outcome = child.wait(&stops).await;
            if let Err(err) = inner.state.forget_group(pgid).await {
                tracing::error!(error = %err, pgid, "forgetting a process group failed");
            }
            let retryable = !outcome.succeeded()
                && !matches!(outcome, Outcome::Cancelled | Outcome::Killed)
                && !inner.stopping.is_cancelled();
            if !retryable || attempt == attempts {
                break;
            }
            tracing::warn!(
                attempt,
                attempts,
                error = outcome.describe().unwrap_or_default(),
                "stage failed; retrying"
            );
        }
        Ok(outcome)
    }

    async fn fire_schedule(&self, chain: &str, at: chrono::DateTime<Utc>) {
        let request = RunRequest {
            config: None,
            idempotency_key: Some(format!("schedule:{chain}:{}", at.to_rfc3339())),
            params: BTreeMap::new(),
        };
        match self.submit(chain, request, Trigger::Schedule).await {
            Ok(submitted) => {
                tracing::info!(chain, run_id = %submitted.run().id, at = %at, "scheduled run queued");
            }
            Err(err) => {
                tracing::error!(chain, error = %error_chain(&err), "scheduled run not started")
            }
        }
    }

    /// Kills what the previous runner process left, fails its interrupted runs, re-queues the
    /// queued ones in creation order.
    fn recover(&self) -> Result<(), StateError> {
        let state = &self.inner.state;
        for group in state.groups()? {
            match process::kill_leftover(&group) {
                Leftover::Killed => tracing::warn!(
                    pgid = group.pgid,
                    run_id = %group.run_id,
                    stage = %group.stage,
                    "killed a process group left by the previous runner"
                ),
                Leftover::Gone => {}
                Leftover::NotOurs => tracing::info!(
                    pgid = group.pgid,
                    "recorded process group belongs to an earlier boot or another process; left alone"
                ),
            }
            state.forget_group_blocking(group.pgid)?;
        }
        let now = Utc::now();
        for run in state.runs_with_status(&[RunStatus::Running])? {
            tracing::warn!(chain = %run.chain, run_id = %run.id, "run was interrupted by a restart; marking it failed");
            self.update_blocking(&run.id, |run| {
                for stage in &mut run.stages {
                    if stage.status == StageStatus::Running {
                        stage.status = StageStatus::Failed;
                        stage.finished_at = Some(now);
                        stage.error = Some(INTERRUPTED_BY_RESTART.into());
                    }
                }
                run.skip_unstarted(INTERRUPTED_BY_RESTART, now);
                run.finish(RunStatus::Failed, Some(INTERRUPTED_BY_RESTART.into()), now);
            })?;
        }
        for run in state.runs_with_status(&[RunStatus::Queued])? {
            if self.inner.chains.get(&run.chain).is_some() {
                self.lock_queues()
                    .entry(run.chain.clone())
                    .or_default()
                    .waiting
                    .push_back(run.id);
            } else {
                let error = format!("chain `{}` is no longer in the chains directory", run.chain);
                self.update_blocking(&run.id, |run| {
                    run.skip_unstarted(&error, now);
                    run.finish(RunStatus::Failed, Some(error.clone()), now);
                })?;
            }
        }
        Ok(())
    }
}

/// A stable digest of what was asked: chain, config and params (keys sorted at every level).
fn fingerprint(chain: &str, request: &RunRequest) -> String {
    let mut canonical = String::new();
    write_canonical(
        &serde_json::json!({
            "chain": chain,
            "config": request.config,
            "params": request.params,
        }),
        &mut canonical,
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

async fn read_default_config(chain: &Chain) -> Result<Value, SubmitError> {
    let path = chain
        .default_config()
        .ok_or_else(|| SubmitError::NoConfig {
            chain: chain.name().to_owned(),
        })?;
    let error = |reason: String| SubmitError::DefaultConfig {
        chain: chain.name().to_owned(),
        path: path.to_owned(),
        reason,
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|err| error(err.to_string()))?;
    let value: Value = serde_yaml_ng::from_str(&text).map_err(|err| error(err.to_string()))?;
    if !value.is_object() {
        return Err(error("expected a mapping at the top level".into()));
    }
    Ok(value)
}

/// Creates the run directory with `config.yaml` (JSON, which every YAML parser reads too) and
/// `logs/`.
fn write_run_dir(run_dir: &Path, config: &Value) -> std::io::Result<()> {
    std::fs::create_dir_all(run_dir.join("logs"))?;
    let mut text = serde_json::to_string_pretty(config).expect("JSON values serialise");
    text.push('\n');
    std::fs::write(run_dir.join("config.yaml"), text)
}

/// Copies the run's config into a stage's `config_dir` under a name unique to the run.
async fn copy_config(config: &Path, dir: &Path, run_id: &str) -> Result<PathBuf, String> {
    let target = dir.join(format!("pipelines-{run_id}.yaml"));
    tokio::fs::copy(config, &target).await.map_err(|err| {
        format!(
            "cannot copy the config into `config_dir` `{}`: {err}; check that the directory exists",
            dir.display()
        )
    })?;
    Ok(target)
}

/// Marks a stage `failed` if its task ends before the stage's end is recorded: a panic, or an
/// abort when the run's task goes away. (The stage's process group is killed by the dropped
/// [`process::StageProcess`].)
struct StageGuard<'a> {
    engine: &'a Engine,
    run_id: &'a str,
    stage: &'a str,
    armed: bool,
}

impl Drop for StageGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let error = if std::thread::panicking() {
            STAGE_TASK_PANICKED
        } else {
            STAGE_TASK_STOPPED
        };
        tracing::error!(stage = self.stage, error, "stage task ended early");
        let now = Utc::now();
        let recorded = self.engine.update_blocking(self.run_id, |run| {
            if let Some(record) = run.stage_mut(self.stage)
                && !record.status.is_finished()
            {
                record.status = StageStatus::Failed;
                record.finished_at = Some(now);
                record.started_at.get_or_insert(now);
                record.error = Some(error.into());
            }
        });
        if let Err(err) = recorded {
            tracing::error!(error = %err, "recording a stage's early end failed");
        }
    }
}

/// Deletes a run directory; a missing one is fine.
fn remove_run_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::warn!(error = %err, dir = %dir.display(), "cannot delete a run directory");
        }
    }
}

/// Removes a stage's copy of the config however the stage ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|name| format!("`{name}`")).collect();
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// An error and its causes on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_key_order_but_not_values() {
        let request = |json: &str| RunRequest {
            config: serde_json::from_str(json).unwrap(),
            idempotency_key: Some("k".into()),
            params: BTreeMap::new(),
        };
        let a = fingerprint("c", &request(r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#));
        let b = fingerprint("c", &request(r#"{"b": {"y": null, "x": [1, 2]}, "a": 1}"#));
        let c = fingerprint("c", &request(r#"{"b": {"y": null, "x": [2, 1]}, "a": 1}"#));
        let d = fingerprint(
            "other",
            &request(r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let mut with_param = request(r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#);
        with_param.params.insert("p".into(), "v".into());
        assert_ne!(a, fingerprint("c", &with_param));
    }

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            let state = stat[stat.rfind(')').unwrap() + 1..].trim_start();
            !state.starts_with(['Z', 'X'])
        })
    }

    async fn read_pid(path: &Path) -> i32 {
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.ends_with('\n')
            {
                return text.trim().parse().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never appeared", path.display());
    }

    /// An engine over a chain `slow` whose one stage writes its pid and its child's pid into the
    /// run directory and sleeps; and a running run of it (not dispatched: tests drive it).
    async fn slow_stage_run() -> (tempfile::TempDir, Engine, Arc<Chain>, Run) {
        let dir = tempfile::tempdir().unwrap();
        let chains = dir.path().join("chains");
        std::fs::create_dir_all(&chains).unwrap();
        std::fs::write(
            chains.join("slow.toml"),
            r#"
name = "slow"
[[stages]]
name = "sleep"
run = ["sh", "-c", "sleep 30 & echo $! > \"$PIPELINES_RUN_DIR/child\"; echo $$ > \"$PIPELINES_RUN_DIR/leader\"; wait"]
"#,
        )
        .unwrap();
        let settings = RunnerSettings::new(&chains, dir.path().join("state"))
            .with_kill_grace(Duration::from_millis(300));
        let engine = Engine::open(&settings).unwrap();
        let chain = Arc::clone(engine.chains().get("slow").unwrap());
        let id = uuid::Uuid::now_v7().to_string();
        let run_dir = engine.inner.runs_dir.join(&id);
        write_run_dir(&run_dir, &serde_json::json!({})).unwrap();
        let run = Run {
            id,
            chain: "slow".into(),
            status: RunStatus::Running,
            trigger: Trigger::Api,
            created_at: Utc::now(),
            started_at: Some(Utc::now()),
            finished_at: None,
            cancel_requested_at: None,
            stages: vec![StageRun {
                name: "sleep".into(),
                status: StageStatus::Queued,
                exit_code: None,
                started_at: None,
                finished_at: None,
                attempts: 0,
                error: None,
            }],
            error: None,
            idempotency_key: None,
            params: BTreeMap::new(),
            run_dir,
        };
        engine.inner.state.insert_run_blocking(&run, None).unwrap();
        (dir, engine, chain, run)
    }

    #[tokio::test]
    async fn an_aborted_stage_task_kills_its_process_group_and_fails_the_stage() {
        let (_dir, engine, chain, run) = slow_stage_run().await;
        let task = tokio::spawn({
            let (engine, chain, run) = (engine.clone(), Arc::clone(&chain), run.clone());
            async move {
                engine
                    .run_stage(&chain, 0, &run, CancellationToken::new())
                    .await
            }
        });
        let pids = [
            read_pid(&run.run_dir.join("leader")).await,
            read_pid(&run.run_dir.join("child")).await,
        ];

        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|&pid| alive(pid)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let survivors: Vec<i32> = pids.into_iter().filter(|&pid| alive(pid)).collect();
        for &pid in &survivors {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(
            survivors.is_empty(),
            "processes outlived the stage task: {survivors:?}"
        );
        let stage = engine.run(&run.id).unwrap().unwrap().stages[0].clone();
        assert_eq!(stage.status, StageStatus::Failed, "{stage:?}");
        assert_eq!(stage.error.as_deref(), Some(STAGE_TASK_STOPPED));
        assert!(stage.finished_at.is_some());
    }

    #[test]
    fn config_yaml_is_json_that_yaml_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"parameters": {"user_full_name": "Paul: \"P\" #1", "links": ["https://x/a?b=c"]}});
        write_run_dir(dir.path(), &config).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.yaml")).unwrap();
        let from_yaml: Value = serde_yaml_ng::from_str(&text).unwrap();
        let from_json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(from_yaml, config);
        assert_eq!(from_json, config);
        assert!(dir.path().join("logs").is_dir());
    }
}
