//! The engine's life: opening (chains, state directory, database, recovery), starting the
//! schedules, queues and pruning, and a graceful shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Engine, Inner};
use crate::chain::ChainErrors;
use crate::settings::{self, RunnerSettings};
use crate::state::{State, StateError};

/// Why an engine could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Chains(#[from] ChainErrors),
    #[error("cannot create the state directory `{path}`; check the path and its permissions")]
    StateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

impl Engine {
    /// Loads the chains, opens the state (locking it) and recovers from the previous process:
    /// kills leftover process groups, fails interrupted runs, re-queues queued ones.
    pub fn open(settings: &RunnerSettings) -> Result<Self, OpenError> {
        let chains = crate::chain::load(&settings.chains_dir)?;
        let state_dir =
            std::path::absolute(&settings.state_dir).unwrap_or_else(|_| settings.state_dir.clone());
        let runs_dir = settings::runs_dir(&state_dir);
        std::fs::create_dir_all(&runs_dir).map_err(|source| OpenError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        let state = State::open(&settings::db_dir(&state_dir))?;
        let engine = Self {
            inner: Arc::new(Inner {
                state,
                runs_dir,
                kill_grace: settings.kill_grace,
                shutdown_grace: settings.shutdown_grace,
                log_cap: settings.log_cap,
                keep_runs: settings.keep_runs,
                secret_env: settings.secret_env.clone(),
                queues: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                stopping: CancellationToken::new(),
                kill: CancellationToken::new(),
                changed: Notify::new(),
                clock: settings.clock.clone(),
                runs_ended: Notify::new(),
                metrics: crate::metrics::RunnerMetrics::new(chains.iter().map(|c| c.name())),
                chains,
            }),
        };
        engine.recover()?;
        Ok(engine)
    }

    /// Starts the cron schedules, the gates' catch-up, the queued runs and the pruning of old finished runs (now and
    /// every [`PRUNE_EVERY`](super::PRUNE_EVERY)). Call once, inside a tokio runtime.
    pub fn start(&self) {
        let engine = self.clone();
        self.inner
            .tracker
            .spawn(async move { engine.prune_periodically().await });
        self.start_schedules();
        self.start_catchup();
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
}
