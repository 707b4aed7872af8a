//! One stage of a run: admitted past its gate and budget (or deferred), its argv and environment
//! rendered, its attempts (retries) as a process group, and its end recorded (a gated stage's
//! success together with its gate's reset); [`StageGuard`] records an end however the stage's
//! task ends.

use std::path::{Path, PathBuf};

use chrono::Utc;
use runner_api::{Run, StageStatus};
use tokio_util::sync::CancellationToken;

use super::{Engine, STAGE_TASK_PANICKED, STAGE_TASK_STOPPED};
use crate::causes::error_chain;
use crate::chain::Chain;
use crate::placeholder::Values;
use crate::process::{self, Outcome, Stops};
use crate::stage_env::StageEnv;
use crate::state::Admission;

/// How a stage task ended, for the run's DAG loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StageEnd {
    Succeeded,
    Failed,
    Stopped,
    /// Its gate or the budget kept it from starting.
    Deferred,
}

impl Engine {
    /// Runs one stage (with its retries) and records its end.
    pub(super) async fn run_stage(
        &self,
        chain: &Chain,
        index: usize,
        run: &Run,
        cancel: CancellationToken,
    ) -> StageEnd {
        let stage = &chain.stages()[index];
        let name = stage.name();
        match self.admit(chain, index, run, 1).await {
            Ok(Admission::Open) => {}
            Ok(Admission::Deferred(why)) => {
                let (status, end) = (StageStatus::Deferred, StageEnd::Deferred);
                self.record_unstarted(run, name, status, why.to_string())
                    .await;
                return end;
            }
            Err(err) => {
                let why = format!("cannot check the stage's gate or budget: {err}");
                tracing::error!(error = %error_chain(&err), "admission failed");
                self.record_unstarted(run, name, StageStatus::Failed, why)
                    .await;
                return StageEnd::Failed;
            }
        }
        let gated = stage.gate().is_some();
        let mut guard = StageGuard {
            engine: self,
            run_id: &run.id,
            chain: chain.name(),
            stage: name,
            gated,
            armed: true,
        };
        let started = std::time::Instant::now();
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
        self.inner
            .metrics
            .stage_ended(chain.name(), status, started.elapsed());
        match &error {
            None => tracing::info!("stage succeeded"),
            Some(error) => tracing::warn!(%error, "stage did not succeed"),
        }
        let now = Utc::now();
        let stage_name = name.to_owned();
        let change = move |run: &mut Run| {
            if let Some(record) = run.stage_mut(&stage_name) {
                record.status = status;
                record.exit_code = exit_code;
                record.finished_at = Some(now);
                record.started_at.get_or_insert(now);
                record.error = error;
            }
        };
        let recorded = if gated && status == StageStatus::Succeeded {
            // The stage's success and its gate's reset: one write.
            let at = self.inner.clock.now();
            let recorded = self
                .inner
                .state
                .gate_succeeded(&run.id, change, chain.name(), name, at)
                .await;
            self.inner.changed.notify_waiters();
            recorded.map(drop)
        } else {
            if gated {
                self.gate_failed(chain, name, &run.id).await;
            }
            self.update(&run.id, change).await.map(drop)
        };
        if let Err(err) = recorded {
            tracing::error!(error = %err, "recording a stage's end failed");
        }
        end
    }

    /// Records a stage that never started (deferred, or its admission failed).
    async fn record_unstarted(&self, run: &Run, stage: &str, status: StageStatus, why: String) {
        let now = Utc::now();
        let stage = stage.to_owned();
        let recorded = self
            .update(&run.id, move |run| {
                if let Some(record) = run.stage_mut(&stage) {
                    record.status = status;
                    record.finished_at = Some(now);
                    record.error = Some(why);
                }
            })
            .await;
        if let Err(err) = recorded {
            tracing::error!(error = %err, "recording a stage's end failed");
        }
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
        let plan = StageEnv::new(chain.env_policy(), &inner.secret_env);
        let mut env: Vec<(String, String)> = plan.inherited(std::env::vars());
        env.extend([
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
        ]);
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
            if attempt > 1 {
                // Every attempt pays: a retry the budget cannot pay for is not made.
                match self.admit(chain, index, run, attempt).await {
                    Ok(Admission::Open) => {}
                    Ok(Admission::Deferred(why)) => {
                        let failed = outcome.describe().unwrap_or_else(|| "failed".into());
                        return Err(format!("{failed}; not retried: {why}"));
                    }
                    Err(err) => return Err(format!("cannot check the budget: {err}")),
                }
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
                env_clear: plan.clear,
                env_remove: plan.remove.clone(),
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
    chain: &'a str,
    stage: &'a str,
    /// The stage has a gate, whose links go back to waiting.
    gated: bool,
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
        tracing::error!(error, "stage task ended early");
        if self.gated {
            self.engine
                .gate_failed_blocking(self.chain, self.stage, self.run_id);
        }
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

/// Removes a stage's copy of the config however the stage ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use runner_api::{RunStatus, StageRun, Trigger};

    use super::*;
    use crate::engine::submit::write_run_dir;
    use crate::process::tests::{alive, read_pid};
    use crate::settings::RunnerSettings;

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
            stages: vec![StageRun::queued("sleep")],
            error: None,
            idempotency_key: None,
            params: BTreeMap::new(),
            run_dir,
            force: false,
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
}
