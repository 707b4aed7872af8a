//! Recovery at open: killing the process groups the previous runner left, failing the runs it
//! was running ("interrupted by restart") and giving their gates' links back, re-queueing its
//! queued runs in creation order.

use chrono::Utc;
use runner_api::{RunStatus, StageStatus};

use super::{Engine, INTERRUPTED_BY_RESTART};
use crate::process::{self, Leftover};
use crate::state::StateError;

impl Engine {
    /// Kills what the previous runner process left, fails its interrupted runs, re-queues the
    /// queued ones in creation order.
    pub(super) fn recover(&self) -> Result<(), StateError> {
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
        // An attempt that held a gate's links was interrupted: they wait again.
        state.release_in_flight_blocking(self.inner.clock.now())?;
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
