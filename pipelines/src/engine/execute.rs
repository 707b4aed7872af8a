//! Executing one run: its stages in DAG order, independent ones in parallel, a failure or a
//! cancel skipping what has not started, a deferred stage deferring what waits for it, and the
//! run's end recorded (a run whose stages all succeeded or were deferred succeeded).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use runner_api::{RunStatus, StageStatus};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::stage::StageEnd;
use super::{Engine, INTERRUPTED_BY_SHUTDOWN};
use crate::chain::{self, Chain};
use crate::gate::Deferral;
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
        // A gate's catch-up run executes part of the chain: the stages not skipped at its start.
        let in_scope: Vec<bool> = stages
            .iter()
            .map(|stage| {
                run.stage(stage.name())
                    .is_none_or(|record| record.status == StageStatus::Queued)
            })
            .collect();
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
                        .all(|&dep| !in_scope[dep] || ends[dep] == Some(StageEnd::Succeeded));
                    if !in_scope[index] || started[index] || !ready {
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
        let waiting = waiting_for_deferred(chain, &ends, &in_scope);
        let all_done = (0..stages.len()).all(|i| {
            !in_scope[i]
                || matches!(ends[i], Some(StageEnd::Succeeded | StageEnd::Deferred))
                || waiting[i].is_some()
        });
        // Every stage succeeded or was deferred: a cancel or shutdown that came too late changes
        // nothing.
        let run = if all_done {
            let deferred: Vec<(String, String)> = stages
                .iter()
                .zip(waiting)
                .filter_map(|(stage, upstream)| {
                    let why = Deferral::Upstream { stage: upstream? };
                    Some((stage.name().to_owned(), why.to_string()))
                })
                .collect();
            self.update(run_id, move |run| {
                for (stage, why) in deferred {
                    if let Some(record) = run.stage_mut(&stage) {
                        record.status = StageStatus::Deferred;
                        record.finished_at = Some(now);
                        record.error = Some(why);
                    }
                }
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
        self.inner.metrics.run_ended(&run.chain, run.status);
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

/// For each stage of the run that never started: the deferred stage it waits for (directly or
/// through other such stages), if any.
fn waiting_for_deferred(
    chain: &Chain,
    ends: &[Option<StageEnd>],
    in_scope: &[bool],
) -> Vec<Option<String>> {
    let stages = chain.stages();
    let mut waiting: Vec<Option<String>> = vec![None; stages.len()];
    for index in chain::topological_order(stages).unwrap_or_default() {
        if !in_scope[index] || ends[index].is_some() {
            continue;
        }
        waiting[index] = stages[index].deps().iter().find_map(|&dep| {
            if ends[dep] == Some(StageEnd::Deferred) {
                Some(stages[dep].name().to_owned())
            } else {
                waiting[dep].clone()
            }
        });
    }
    waiting
}
