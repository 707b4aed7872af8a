//! The `pipelines` backend: the embedded runner's REST API (`pipelines serve`), whose bodies,
//! paths and token variable are the `runner_api` crate's.
//!
//! Creating a run answers 201 with a new run or 200 with the run that key already started (409:
//! same key, other body); a run is read and cancelled by id. Bearer token on every call.
//!
//! Runs are read leniently: only the fields used, with stage statuses and triggers as plain
//! names, so a newer runner's new stage status (or trigger) is shown rather than an error.

use runner_api::{RunRequest as RunnerRequest, paths};
use serde::Deserialize;
use url::Url;

use super::Backend;
use crate::auth::Auth;
use crate::error::Error;
use crate::http::{Body, Call, Http};
use crate::target::{Secret, TargetConfig};
use crate::{RunRequest, RunState, RunStatus, StageState};

/// What is read of a created run.
#[derive(Deserialize)]
struct Created {
    id: String,
}

/// What is read of a run: its status, its error and its stages, statuses as names.
#[derive(Deserialize)]
struct RunView {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    stages: Vec<StageView>,
}

#[derive(Deserialize)]
struct StageView {
    name: String,
    status: String,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    error: Option<String>,
}

pub(crate) struct Pipelines {
    base: Url,
    auth: Auth,
}

impl Pipelines {
    pub(crate) fn new(target: &TargetConfig) -> Result<Self, Error> {
        // The runner's own token variable, used when the target names no token.
        let env = runner_api::TOKEN_ENV;
        let token = match target.token()? {
            Some(token) => Some(token),
            None => std::env::var(env)
                .ok()
                .filter(|value| !value.is_empty())
                .map(|value| Secret::new(value, format!("env var `{env}`"))),
        };
        Ok(Pipelines {
            base: target.require_url()?,
            auth: token.map_or(Auth::None, Auth::Bearer),
        })
    }
}

/// The runner's request for `req`. No config at all (an empty mapping) lets the chain's
/// `default_config` apply; anything but a mapping is refused here, as the runner would.
fn runner_request(req: &RunRequest) -> Result<RunnerRequest, Error> {
    let config = match &req.config {
        serde_json::Value::Null => None,
        serde_json::Value::Object(map) if map.is_empty() => None,
        serde_json::Value::Object(map) => Some(map.clone()),
        _ => {
            return Err(Error::Request {
                problem: "the pipelines runner takes a JSON object as the config".to_owned(),
            });
        }
    };
    Ok(RunnerRequest {
        config,
        idempotency_key: Some(req.idempotency_key.clone()),
        params: req.params.clone(),
        force: false,
    })
}

impl Pipelines {
    /// The runner's whole record of run `id`: its stages, for a per-stage view.
    pub(crate) async fn run(&self, http: &Http, id: &str) -> Result<runner_api::Run, Error> {
        let url = paths::run(&self.base, id);
        http.send(&Call::get(url), &self.auth)
            .await?
            .success(&self.auth)?
            .json()
    }
}

impl Backend for Pipelines {
    async fn trigger(&self, http: &Http, chain: &str, req: &RunRequest) -> Result<String, Error> {
        let url = paths::chain_runs(&self.base, chain);
        let body = Body::json(&runner_request(req)?);
        let reply = http.send(&Call::post(url, body), &self.auth).await?;
        if reply.status == 409 {
            return Err(Error::Request {
                problem: format!(
                    "the runner refused idempotency key `{}`, already used with another config or params: {}",
                    req.idempotency_key,
                    reply.engine_message()
                ),
            });
        }
        let run: Created = reply.success(&self.auth)?.json()?;
        Ok(run.id)
    }

    async fn status(&self, http: &Http, id: &str) -> Result<RunStatus, Error> {
        let url = paths::run(&self.base, id);
        let reply = http
            .send(&Call::get(url), &self.auth)
            .await?
            .success(&self.auth)?;
        let run: RunView = reply.json()?;
        let status: runner_api::RunStatus = run
            .status
            .parse()
            .map_err(|err: runner_api::UnknownStatus| reply.protocol(err.to_string()))?;
        let message = run
            .error
            .clone()
            .or_else(|| failed_stage(&run.stages))
            .or_else(|| deferred_stages(&run.stages));
        Ok(RunStatus {
            state: state(status),
            raw_state: status.as_str().to_owned(),
            message,
            stages: run
                .stages
                .into_iter()
                .map(|stage| StageState {
                    name: stage.name,
                    state: stage.status,
                    message: stage.error,
                })
                .collect(),
        })
    }

    async fn cancel(&self, http: &Http, id: &str) -> Result<(), Error> {
        let url = paths::run_cancel(&self.base, id);
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
fn failed_stage(stages: &[StageView]) -> Option<String> {
    let stage = stages.iter().find(|stage| stage.status == "failed")?;
    Some(match stage.exit_code {
        Some(code) => format!("stage `{}` failed (exit code {code})", stage.name),
        None => format!("stage `{}` failed", stage.name),
    })
}

/// "deferred: x (7 of 20 new links; or on ...); y (waits for deferred stage `x`)" for a run whose
/// gates or budget held stages back.
fn deferred_stages(stages: &[StageView]) -> Option<String> {
    let deferred: Vec<String> = stages
        .iter()
        .filter(|stage| stage.status == "deferred")
        .map(|stage| match &stage.error {
            Some(why) => format!("{} ({why})", stage.name),
            None => stage.name.clone(),
        })
        .collect();
    (!deferred.is_empty()).then(|| format!("deferred: {}", deferred.join("; ")))
}

fn state(status: runner_api::RunStatus) -> RunState {
    match status {
        runner_api::RunStatus::Queued => RunState::Queued,
        runner_api::RunStatus::Running => RunState::Running,
        runner_api::RunStatus::Succeeded => RunState::Succeeded,
        runner_api::RunStatus::Failed => RunState::Failed,
        runner_api::RunStatus::Cancelled => RunState::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, status: &str, exit_code: Option<i32>) -> StageView {
        StageView {
            name: name.into(),
            status: status.into(),
            exit_code,
            error: None,
        }
    }

    #[test]
    fn a_run_without_an_error_is_explained_by_its_first_failed_stage() {
        let stages = [
            stage("etl", "succeeded", Some(0)),
            stage("features", "failed", Some(3)),
            stage("train", "failed", None),
        ];
        assert_eq!(
            failed_stage(&stages).as_deref(),
            Some("stage `features` failed (exit code 3)")
        );
        assert_eq!(
            failed_stage(&stages[2..]).as_deref(),
            Some("stage `train` failed")
        );
        assert_eq!(failed_stage(&stages[..1]), None);
    }

    #[test]
    fn deferred_stages_are_named_with_their_reasons_and_unknown_statuses_read() {
        let body = r#"{"id": "r", "status": "succeeded", "trigger": "some-new-trigger", "error": null,
            "stages": [
                {"name": "etl", "status": "succeeded", "exit_code": 0},
                {"name": "datasets", "status": "deferred", "error": "7 of 20 new links"},
                {"name": "train", "status": "deferred", "error": "waits for deferred stage `datasets`"},
                {"name": "eval", "status": "paused-by-a-newer-runner"}
            ]}"#;
        let run: RunView = serde_json::from_str(body).unwrap();
        assert_eq!(failed_stage(&run.stages), None);
        assert_eq!(
            deferred_stages(&run.stages).as_deref(),
            Some(
                "deferred: datasets (7 of 20 new links); train (waits for deferred stage `datasets`)"
            )
        );
        assert_eq!(run.stages[3].status, "paused-by-a-newer-runner");
        assert_eq!(deferred_stages(&run.stages[..1]), None);
    }

    #[test]
    fn an_empty_config_is_left_out_and_a_non_mapping_refused() {
        let mut req = RunRequest::new("demo", "k");
        req.config = serde_json::json!({});
        let sent = serde_json::to_value(runner_request(&req).unwrap()).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"idempotency_key": "k", "params": {}})
        );
        req.config = serde_json::json!([1]);
        assert!(matches!(runner_request(&req), Err(Error::Request { .. })));
    }
}
