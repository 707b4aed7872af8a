//! Executing one run: its stages in DAG order, independent ones in parallel, a failure or a
//! cancel skipping what has not started, and the run's end recorded.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use runner_api::RunStatus;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::stage::StageEnd;
use super::{Engine, INTERRUPTED_BY_SHUTDOWN};
use crate::chain::Chain;
use crate::state::StateError;

impl Engine {
    /// Executes one run: its stages in DAG order, independent ones in parallel.
    pub(super) async fn execute_run(
        &self,
        chain: &Arc<Chain>,
        run_id: &str,
        cancel: CancellationToken,
    ) {
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
}
