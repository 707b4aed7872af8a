//! Cancelling a run: a queued one ends `cancelled` at once; for a running one the request is
//! recorded and its stages are stopped in the background.

use chrono::Utc;
use runner_api::{Run, RunStatus};

use super::Engine;
use crate::state::StateError;

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

impl Engine {
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
}
