//! The `prefect` backend: Prefect 3, self-hosted (optional basic auth) or Cloud (bearer key).
//!
//! `GET deployments/name/{flow}/{deployment}` finds the deployment; `POST
//! deployments/{id}/create_flow_run` with `parameters` and `idempotency_key` answers 201 with a
//! new flow run or 200 with the run that key already created; `GET flow_runs/{id}` gives
//! `state_type` and `state.message`; cancel sets a CANCELLING state. Paths are relative to the
//! API base (`http://127.0.0.1:4200/api`, or Cloud's `.../accounts/{a}/workspaces/{w}`).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use url::Url;

use super::{Backend, endpoint};
use crate::auth::Auth;
use crate::error::Error;
use crate::http::{Body, Call, Http};
use crate::target::TargetConfig;
use crate::{RunRequest, RunState, RunStatus};

pub(crate) struct Prefect {
    base: Url,
    auth: Auth,
    /// Deployment ids by `flow/deployment` name.
    deployments: Mutex<HashMap<String, String>>,
}

impl Prefect {
    pub(crate) fn new(target: &TargetConfig) -> Result<Self, Error> {
        let auth = match (target.token()?, target.basic_credentials()?) {
            (Some(_), Some(_)) => {
                return Err(Error::Config {
                    key: "token_env".into(),
                    problem: "and basic credentials are both set; Prefect Cloud takes a bearer API key, a self-hosted server basic auth: keep one".into(),
                });
            }
            (Some(token), None) => Auth::Bearer(token),
            (None, Some((user, password))) => Auth::Basic { user, password },
            (None, None) => Auth::None,
        };
        Ok(Prefect {
            base: target.require_url()?,
            auth,
            deployments: Mutex::new(HashMap::new()),
        })
    }

    /// The deployment id for `flow/deployment`, looked up once.
    async fn deployment_id(&self, http: &Http, pipeline: &str) -> Result<String, Error> {
        let (flow, deployment) = pipeline
            .split_once('/')
            .filter(|(flow, deployment)| !flow.is_empty() && !deployment.is_empty())
            .ok_or_else(|| Error::Request {
                problem: format!(
                    "prefect pipeline `{pipeline}` must be `flow-name/deployment-name` (e.g. `digital_data_etl/ci`)"
                ),
            })?;
        let mut cache = self.deployments.lock().await;
        if let Some(id) = cache.get(pipeline) {
            return Ok(id.clone());
        }
        let url = endpoint(&self.base, &["deployments", "name", flow, deployment]);
        let reply = http.send(&Call::get(url), &self.auth).await?;
        if reply.status == 404 {
            return Err(Error::Request {
                problem: format!(
                    "prefect has no deployment `{deployment}` of flow `{flow}` ({}) (hint: `prefect deployment ls` lists them; is the serve()/worker process running?)",
                    reply.engine_message()
                ),
            });
        }
        #[derive(Deserialize)]
        struct Deployment {
            id: String,
        }
        let found: Deployment = reply.success(&self.auth)?.json()?;
        cache.insert(pipeline.to_owned(), found.id.clone());
        Ok(found.id)
    }
}

/// A flow run (only what we read).
#[derive(Deserialize)]
struct FlowRun {
    id: String,
    #[serde(default)]
    state_type: Option<String>,
    #[serde(default)]
    state_name: Option<String>,
    #[serde(default)]
    state: Option<State>,
}

#[derive(Deserialize)]
struct State {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl Backend for Prefect {
    async fn trigger(
        &self,
        http: &Http,
        pipeline: &str,
        req: &RunRequest,
    ) -> Result<String, Error> {
        let deployment = self.deployment_id(http, pipeline).await?;
        let url = endpoint(&self.base, &["deployments", &deployment, "create_flow_run"]);
        let body = json!({
            "parameters": req.parameters(),
            "idempotency_key": req.idempotency_key,
            "tags": ["trigger-client"],
        });
        let reply = http
            .send(&Call::post(url, Body::json(&body)), &self.auth)
            .await?;
        if reply.status == 404 {
            // The deployment was deleted (and maybe recreated under a new id): look it up again
            // on the next attempt.
            self.deployments.lock().await.remove(pipeline);
        }
        if reply.status == 200 {
            tracing::info!("prefect already had a run for this idempotency key");
        }
        let run: FlowRun = reply.success(&self.auth)?.json()?;
        Ok(run.id)
    }

    async fn status(&self, http: &Http, id: &str) -> Result<RunStatus, Error> {
        let url = endpoint(&self.base, &["flow_runs", id]);
        let run: FlowRun = http
            .send(&Call::get(url), &self.auth)
            .await?
            .success(&self.auth)?
            .json()?;
        let state_type = run
            .state_type
            .clone()
            .or_else(|| run.state.as_ref().and_then(|state| state.kind.clone()))
            .unwrap_or_else(|| "UNKNOWN".to_owned());
        let message = run
            .state
            .and_then(|state| state.message)
            .filter(|message| !message.is_empty());
        let raw_state = match run.state_name {
            Some(name) if !name.eq_ignore_ascii_case(&state_type) => {
                format!("{state_type} ({name})")
            }
            _ => state_type.clone(),
        };
        Ok(RunStatus {
            state: normalize(&state_type),
            raw_state,
            message,
            stages: Vec::new(),
        })
    }

    async fn cancel(&self, http: &Http, id: &str) -> Result<(), Error> {
        let url = endpoint(&self.base, &["flow_runs", id, "set_state"]);
        let body = json!({
            "state": {"type": "CANCELLING", "message": "cancelled by trigger-client"},
            "force": true,
        });
        let reply = http
            .send(&Call::post(url, Body::json(&body)), &self.auth)
            .await?
            .success(&self.auth)?;
        #[derive(Deserialize)]
        struct Orchestration {
            status: String,
            #[serde(default)]
            details: serde_json::Value,
            #[serde(default)]
            state: Option<State>,
        }
        let result: Orchestration = reply.json()?;
        // A scheduled run has nothing to terminate: Prefect REJECTs CANCELLING but moves the
        // run straight to CANCELLED, which is what we asked for.
        let cancelled = result
            .state
            .as_ref()
            .and_then(|state| state.kind.as_deref())
            .is_some_and(|kind| matches!(kind, "CANCELLED" | "CANCELLING"));
        if result.status != "ACCEPT" && !cancelled {
            let reason = result
                .details
                .get("reason")
                .and_then(|reason| reason.as_str())
                .unwrap_or("no reason given");
            return Err(Error::Request {
                problem: format!(
                    "prefect did not accept the cancel of flow run `{id}` ({}: {reason})",
                    result.status
                ),
            });
        }
        Ok(())
    }
}

/// Prefect's `StateType`; terminal are COMPLETED, FAILED, CRASHED and CANCELLED.
fn normalize(state_type: &str) -> RunState {
    match state_type {
        "SCHEDULED" | "PENDING" => RunState::Queued,
        "COMPLETED" => RunState::Succeeded,
        "FAILED" | "CRASHED" => RunState::Failed,
        "CANCELLED" => RunState::Cancelled,
        // RUNNING, CANCELLING, PAUSED and anything new: not finished yet.
        _ => RunState::Running,
    }
}
