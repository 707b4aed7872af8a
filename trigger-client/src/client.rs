//! The public [`Client`]: start, follow and cancel runs on one target. It picks the target's
//! backend and sends everything through the one transport (`http`), which retries.

use std::time::Duration;

use tracing::Instrument;

use crate::backend::AnyBackend;
use crate::error::Error;
use crate::http::Http;
use crate::retry::RetryPolicy;
use crate::target::{Kind, TargetConfig};
use crate::{RunHandle, RunRequest, RunStatus};

/// Starts, follows and cancels runs on one target, retrying transient failures.
///
/// Cheap to share: wrap it in an `Arc` to use it from several tasks.
pub struct Client {
    http: Http,
    backend: AnyBackend,
    default_pipeline: Option<String>,
    poll_interval: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("kind", &self.http.kind)
            .field("policy", &self.http.policy())
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Validates `target` and reads its secrets (env vars or files). No network I/O.
    pub fn new(target: &TargetConfig) -> Result<Client, Error> {
        Ok(Client {
            http: Http::new(target)?,
            backend: AnyBackend::new(target)?,
            default_pipeline: target.pipeline.clone(),
            poll_interval: target.poll_interval(),
        })
    }

    /// Replaces the retry policy (default: [`RetryPolicy::default`]).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.http.set_policy(policy);
        self
    }

    /// Replaces how often [`Client::wait`] polls (default: the target's `poll_interval`, 2s).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The engine this client talks to.
    pub fn kind(&self) -> Kind {
        self.http.kind
    }

    /// Starts one run. Retried requests carry the same idempotency key, so the engine starts
    /// at most one run per key; asking again with the same key returns the same run.
    pub async fn trigger(&self, req: &RunRequest) -> Result<RunHandle, Error> {
        let pipeline = self.pipeline_for(req)?;
        if req.idempotency_key.trim().is_empty() {
            return Err(Error::Request {
                problem: "the idempotency key is empty (hint: pass the batch id, or let the CLI derive one)".into(),
            });
        }
        let span = tracing::info_span!("trigger", kind = %self.kind(), pipeline = %pipeline, idempotency_key = %req.idempotency_key);
        async {
            let id = self.backend.trigger(&self.http, &pipeline, req).await?;
            let handle = RunHandle::new(self.kind(), id);
            tracing::info!(run_id = %handle, "run started");
            Ok(handle)
        }
        .instrument(span)
        .await
    }

    /// The run's current state.
    pub async fn status(&self, run: &RunHandle) -> Result<RunStatus, Error> {
        self.check_handle(run)?;
        let span = tracing::debug_span!("status", run_id = %run);
        self.backend
            .status(&self.http, &run.id)
            .instrument(span)
            .await
    }

    /// The pipelines runner's whole record of the run, stages included (for a per-stage view);
    /// `None` when the target is another engine, which reports only [`Client::status`].
    pub async fn runner_run(&self, run: &RunHandle) -> Result<Option<runner_api::Run>, Error> {
        self.check_handle(run)?;
        let span = tracing::debug_span!("runner_run", run_id = %run);
        self.backend
            .runner_run(&self.http, &run.id)
            .instrument(span)
            .await
    }

    /// Polls until the run is terminal or `timeout` passes, calling `on_change` with the first
    /// status and with every change. A run that ends failed or cancelled is `Ok` here: look at
    /// the returned state. An engine that stops answering for a while (each poll already
    /// retried) is waited out until the deadline; other errors end the wait at once.
    pub async fn wait(
        &self,
        run: &RunHandle,
        timeout: Duration,
        mut on_change: impl FnMut(&RunStatus),
    ) -> Result<RunStatus, Error> {
        self.check_handle(run)?;
        let span = tracing::info_span!("wait", run_id = %run);
        async {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut last: Option<RunStatus> = None;
            loop {
                let status = match self.backend.status(&self.http, &run.id).await {
                    Ok(status) => status,
                    Err(err) if outage(&err) && tokio::time::Instant::now() < deadline => {
                        tracing::warn!(error = %err, "cannot read the run's state; still waiting");
                        tokio::time::sleep(
                            self.poll_interval
                                .min(deadline - tokio::time::Instant::now()),
                        )
                        .await;
                        continue;
                    }
                    Err(err) => return Err(err),
                };
                // A change is one of state, raw state or message; stage progress alone is not.
                let seen = |s: &RunStatus| (s.state, s.raw_state.clone(), s.message.clone());
                if last.as_ref().map(seen) != Some(seen(&status)) {
                    tracing::info!(state = %status.state, raw_state = %status.raw_state, "run state");
                    on_change(&status);
                    last = Some(status.clone());
                }
                if status.state.is_terminal() {
                    return Ok(status);
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(Error::WaitTimeout {
                        run: run.to_string(),
                        state: status.state.to_string(),
                        timeout,
                    });
                }
                tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
            }
        }
        .instrument(span)
        .await
    }

    /// Asks the engine to cancel the run (not every engine can: webhook cannot).
    pub async fn cancel(&self, run: &RunHandle) -> Result<(), Error> {
        self.check_handle(run)?;
        let span = tracing::info_span!("cancel", run_id = %run);
        self.backend
            .cancel(&self.http, &run.id)
            .instrument(span)
            .await
    }

    fn pipeline_for(&self, req: &RunRequest) -> Result<String, Error> {
        if !req.pipeline.trim().is_empty() {
            return Ok(req.pipeline.clone());
        }
        self.default_pipeline.clone().ok_or_else(|| Error::Request {
            problem: format!(
                "no pipeline named (hint: pass one, or set `pipeline` in the {} target)",
                self.kind()
            ),
        })
    }

    fn check_handle(&self, run: &RunHandle) -> Result<(), Error> {
        if run.kind == self.kind().as_str() {
            return Ok(());
        }
        Err(Error::BadHandle {
            handle: run.to_string(),
            problem: format!(
                "it is a `{}` run but the target is `{}`",
                run.kind,
                self.kind()
            ),
        })
    }
}

/// True for errors that mean "the engine is unreachable for now", not "the answer is no".
fn outage(err: &Error) -> bool {
    err.is_transient() || matches!(err, Error::Exhausted { .. })
}
