//! The `pipelines` backend: the embedded runner's REST API (`pipelines serve`).
//!
//! `POST /api/v1/chains/{chain}/runs` with `{"config", "idempotency_key", "params"}` answers 201
//! with a new run or 200 with the run that key already started (409: same key, other body);
//! `GET /api/v1/runs/{id}`; `POST /api/v1/runs/{id}/cancel`. Bearer token on every call.

use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::{Backend, IdValue, endpoint};
use crate::auth::Auth;
use crate::error::Error;
use crate::http::{Body, Call, Http};
use crate::target::{Secret, TargetConfig};
use crate::{RunRequest, RunState, RunStatus};

/// The runner's own token variable, used when the target names no token.
const DEFAULT_TOKEN_ENV: &str = "PIPELINES_TOKEN";

pub(crate) struct Pipelines {
    base: Url,
    auth: Auth,
}

impl Pipelines {
    pub(crate) fn new(target: &TargetConfig) -> Result<Self, Error> {
        let token = match target.token()? {
            Some(token) => Some(token),
            None => std::env::var(DEFAULT_TOKEN_ENV)
                .ok()
                .filter(|value| !value.is_empty())
                .map(|value| Secret::new(value, format!("env var `{DEFAULT_TOKEN_ENV}`"))),
        };
        Ok(Pipelines {
            base: target.require_url()?,
            auth: token.map_or(Auth::None, Auth::Bearer),
        })
    }
}

/// The run as the runner returns it (only what we read).
#[derive(Deserialize)]
struct Run {
    id: IdValue,
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    stages: Vec<Stage>,
}

#[derive(Deserialize)]
struct Stage {
    name: String,
    status: String,
    #[serde(default)]
    exit_code: Option<i64>,
}

impl Backend for Pipelines {
    async fn trigger(&self, http: &Http, chain: &str, req: &RunRequest) -> Result<String, Error> {
        let url = endpoint(&self.base, &["api", "v1", "chains", chain, "runs"]);
        // No config at all (an empty mapping) lets the chain's `default_config` apply.
        let mut body = json!({
            "idempotency_key": req.idempotency_key,
            "params": req.params,
        });
        if req.config.as_object().is_none_or(|m| !m.is_empty()) {
            body["config"] = req.config.clone();
        }
        let reply = http
            .send(&Call::post(url, Body::json(&body)), &self.auth)
            .await?;
        if reply.status == 409 {
            return Err(Error::Request {
                problem: format!(
                    "the runner refused idempotency key `{}`, already used with another config or params: {}",
                    req.idempotency_key,
                    reply.engine_message()
                ),
            });
        }
        let run: Run = reply.success(&self.auth)?.json()?;
        Ok(run.id.into_string())
    }

    async fn status(&self, http: &Http, id: &str) -> Result<RunStatus, Error> {
        let url = endpoint(&self.base, &["api", "v1", "runs", id]);
        let run: Run = http
            .send(&Call::get(url), &self.auth)
            .await?
            .success(&self.auth)?
            .json()?;
        let message = run.error.clone().or_else(|| failed_stage(&run.stages));
        Ok(RunStatus {
            state: normalize(&run.status),
            raw_state: run.status,
            message,
        })
    }

    async fn cancel(&self, http: &Http, id: &str) -> Result<(), Error> {
        let url = endpoint(&self.base, &["api", "v1", "runs", id, "cancel"]);
        let reply = http.send(&Call::post(url, Body::Empty), &self.auth).await?;
        // A retried cancel whose first attempt already worked finds the run cancelled: success.
        if reply.status == 409 && self.status(http, id).await?.state == RunState::Cancelled {
            return Ok(());
        }
        reply.success(&self.auth)?;
        Ok(())
    }
}

/// "stage `x` failed (exit code 3)" for the first failed stage.
fn failed_stage(stages: &[Stage]) -> Option<String> {
    let stage = stages.iter().find(|stage| stage.status == "failed")?;
    Some(match stage.exit_code {
        Some(code) => format!("stage `{}` failed (exit code {code})", stage.name),
        None => format!("stage `{}` failed", stage.name),
    })
}

fn normalize(raw: &str) -> RunState {
    match raw {
        "queued" => RunState::Queued,
        "succeeded" => RunState::Succeeded,
        "failed" => RunState::Failed,
        "cancelled" => RunState::Cancelled,
        _ => RunState::Running,
    }
}
