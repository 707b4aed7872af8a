//! The `airflow` backend: Airflow 3 (`/api/v2`, JWT from `POST /auth/token`, refreshed on 401)
//! and Airflow 2 (`/api/v1`, basic auth), detected from the public health endpoints unless
//! `airflow_version` says which.
//!
//! The idempotency key becomes the `dag_run_id` (restricted to `[A-Za-z0-9_.~:+-]`); a 409 for
//! that id means the run exists, so it is fetched and returned as success. `conf` is the config's
//! `parameters`. Handles are `airflow:<dag_id>/<dag_run_id>`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;
use url::Url;

use super::{Backend, endpoint, safe_identifier};
use crate::auth::{Auth, Login, LoginField};
use crate::error::Error;
use crate::http::{Body, Call, Http};
use crate::target::{AirflowApi, Secret, TargetConfig};
use crate::{RunRequest, RunState, RunStatus};

/// How many times `cancel` marks a run failed while the scheduler keeps starting it.
const CANCEL_MARKS: u32 = 4;
/// How long `cancel` lets a queued run start before marking it (a scheduler that is down leaves
/// it queued: it is marked anyway).
const CANCEL_QUEUED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How far apart `cancel` reads the state back.
const CANCEL_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// The health endpoint of each Airflow major version, newest first (asked without auth).
const HEALTH: [(&[&str], AirflowApi); 2] = [
    (&["api", "v2", "monitor", "health"], AirflowApi::Airflow3),
    (&["api", "v1", "health"], AirflowApi::Airflow2),
];

pub(crate) struct Airflow {
    base: Url,
    wanted: AirflowApi,
    token: Option<Secret>,
    credentials: Option<(String, Secret)>,
    /// The detected API and the credentials that fit it.
    server: OnceCell<Server>,
}

struct Server {
    /// `v2` (Airflow 3) or `v1` (Airflow 2).
    prefix: &'static str,
    auth: Auth,
}

impl Airflow {
    pub(crate) fn new(target: &TargetConfig) -> Result<Self, Error> {
        let token = target.token()?;
        let credentials = if target.auth_string_env.is_some() {
            return Err(Error::Config {
                key: "auth_string_env".into(),
                problem: "is for prefect; airflow takes `username` and `password_env`".into(),
            });
        } else {
            target.basic_credentials()?
        };
        if token.is_some() && credentials.is_some() {
            return Err(Error::Config {
                key: "token_env".into(),
                problem: "and `username` are both set; keep one".into(),
            });
        }
        Ok(Airflow {
            base: target.require_url()?,
            wanted: target.airflow_version,
            token,
            credentials,
            server: OnceCell::new(),
        })
    }

    async fn server(&self, http: &Http) -> Result<&Server, Error> {
        self.server
            .get_or_try_init(|| async {
                let api = match self.wanted {
                    AirflowApi::Auto => self.detect(http).await?,
                    fixed => fixed,
                };
                Ok(self.server_for(api))
            })
            .await
    }

    /// Airflow 3 and 2 each serve a health endpoint ([`HEALTH`]) without auth.
    async fn detect(&self, http: &Http) -> Result<AirflowApi, Error> {
        for (path, api) in HEALTH {
            let reply = http
                .send(&Call::get(endpoint(&self.base, path)), &Auth::None)
                .await?;
            if reply.is_success() {
                tracing::debug!(?api, "detected airflow");
                return Ok(api);
            }
        }
        let tried: Vec<String> = HEALTH
            .iter()
            .map(|(path, _)| format!("/{}", path.join("/")))
            .collect();
        Err(Error::Unsupported {
            kind: "airflow",
            message: format!(
                "no Airflow 2 or 3 REST API answers at `{}` (neither {}) (hint: check `url`, or set `airflow_version`)",
                crate::target::redact(&self.base),
                tried.join(" nor ")
            ),
        })
    }

    fn server_for(&self, api: AirflowApi) -> Server {
        let auth = match (&self.token, &self.credentials, api) {
            (Some(token), _, _) => Auth::Bearer(token.clone()),
            (None, Some((user, password)), AirflowApi::Airflow2) => Auth::Basic {
                user: user.clone(),
                password: password.clone(),
            },
            (None, Some((user, password)), _) => Auth::Login(Login::new(
                endpoint(&self.base, &["auth", "token"]),
                false,
                vec![
                    ("username", LoginField::Plain(user.clone())),
                    ("password", LoginField::Secret(password.clone())),
                ],
                format!("user `{user}` with the password from {}", password.origin()),
            )),
            (None, None, _) => Auth::None,
        };
        let prefix = if api == AirflowApi::Airflow2 {
            "v1"
        } else {
            "v2"
        };
        Server { prefix, auth }
    }

    fn run_url(&self, server: &Server, dag: &str, run_id: &str) -> Url {
        endpoint(
            &self.base,
            &["api", server.prefix, "dags", dag, "dagRuns", run_id],
        )
    }
}

/// A DAG run (only what we read).
#[derive(Deserialize)]
struct DagRun {
    dag_run_id: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

impl Backend for Airflow {
    async fn trigger(&self, http: &Http, dag: &str, req: &RunRequest) -> Result<String, Error> {
        let server = self.server(http).await?;
        let run_id = safe_identifier(&req.idempotency_key);
        let mut body = json!({
            "dag_run_id": run_id,
            "conf": req.parameters(),
            "note": "triggered by trigger-client",
        });
        if server.prefix == "v2" {
            // Required by Airflow 3 (no default), and null means "now".
            body["logical_date"] = serde_json::Value::Null;
        }
        let url = endpoint(&self.base, &["api", server.prefix, "dags", dag, "dagRuns"]);
        let reply = http
            .send(&Call::post(url, Body::json(&body)), &server.auth)
            .await?;
        let run: DagRun = if reply.status == 409 {
            // Our run id exists: an earlier attempt (or an earlier process) created it.
            tracing::info!(dag_run_id = %run_id, "dag run already exists; returning it");
            let existing = http
                .send(&Call::get(self.run_url(server, dag, &run_id)), &server.auth)
                .await?;
            if !existing.is_success() {
                return Err(reply.error(&server.auth));
            }
            existing.json()?
        } else {
            reply.success(&server.auth)?.json()?
        };
        Ok(format!("{dag}/{}", run.dag_run_id))
    }

    async fn status(&self, http: &Http, id: &str) -> Result<RunStatus, Error> {
        let (dag, run_id) = split_id(id)?;
        let server = self.server(http).await?;
        let run: DagRun = http
            .send(&Call::get(self.run_url(server, dag, run_id)), &server.auth)
            .await?
            .success(&server.auth)?
            .json()?;
        let raw_state = run.state.unwrap_or_else(|| "none".to_owned());
        let state = normalize(&raw_state);
        let message = if state == RunState::Failed {
            self.failed_tasks(http, server, dag, run_id)
                .await
                .or(run.note)
        } else {
            None
        };
        Ok(RunStatus {
            state,
            raw_state,
            message,
            stages: Vec::new(),
        })
    }

    async fn cancel(&self, http: &Http, id: &str) -> Result<(), Error> {
        // Airflow has no "cancelled": marking the run failed stops its tasks. A run the scheduler
        // is starting just then can be set back to running by it (its update of the queued run
        // lands after ours, even after we read "failed" back), so a queued run is first given a
        // moment to start, and the mark is read back twice, CANCEL_SETTLE apart, and repeated
        // a few times.
        let (dag, run_id) = split_id(id)?;
        let server = self.server(http).await?;
        let read = || async {
            let run: DagRun = http
                .send(&Call::get(self.run_url(server, dag, run_id)), &server.auth)
                .await?
                .success(&server.auth)?
                .json()?;
            Ok::<_, Error>(normalize(run.state.as_deref().unwrap_or("none")))
        };
        let queued_until = tokio::time::Instant::now() + CANCEL_QUEUED_WAIT;
        while read().await? == RunState::Queued && tokio::time::Instant::now() < queued_until {
            tokio::time::sleep(CANCEL_SETTLE).await;
        }
        for attempt in 1..=CANCEL_MARKS {
            let mut call = Call::new(Method::PATCH, self.run_url(server, dag, run_id));
            call.body = Body::json(&json!({"state": "failed"}));
            http.send(&call, &server.auth)
                .await?
                .success(&server.auth)?;
            let mut state = read().await?;
            if state.is_terminal() {
                tokio::time::sleep(CANCEL_SETTLE).await;
                state = read().await?;
                if state.is_terminal() {
                    return Ok(());
                }
            }
            tracing::warn!(run_id = %id, attempt, %state, "the run is not failed after the mark (the scheduler started it meanwhile); marking it again");
            tokio::time::sleep(std::time::Duration::from_millis(250 * u64::from(attempt))).await;
        }
        Ok(())
    }
}

impl Airflow {
    /// "failed tasks: a, b" (best effort: `None` if the list cannot be read).
    async fn failed_tasks(
        &self,
        http: &Http,
        server: &Server,
        dag: &str,
        run_id: &str,
    ) -> Option<String> {
        let url = endpoint(
            &self.base,
            &[
                "api",
                server.prefix,
                "dags",
                dag,
                "dagRuns",
                run_id,
                "taskInstances",
            ],
        );
        #[derive(Deserialize)]
        struct TaskInstances {
            task_instances: Vec<TaskInstance>,
        }
        #[derive(Deserialize)]
        struct TaskInstance {
            task_id: String,
            #[serde(default)]
            state: Option<String>,
        }
        let reply = http.send(&Call::get(url), &server.auth).await.ok()?;
        let list: TaskInstances = reply.success(&server.auth).ok()?.json().ok()?;
        let failed: Vec<String> = list
            .task_instances
            .into_iter()
            .filter(|task| matches!(task.state.as_deref(), Some("failed" | "upstream_failed")))
            .map(|task| task.task_id)
            .collect();
        (!failed.is_empty()).then(|| format!("failed tasks: {}", failed.join(", ")))
    }
}

fn split_id(id: &str) -> Result<(&str, &str), Error> {
    id.split_once('/')
        .filter(|(dag, run)| !dag.is_empty() && !run.is_empty())
        .ok_or_else(|| Error::BadHandle {
            handle: format!("airflow:{id}"),
            problem: "an airflow run id is `<dag_id>/<dag_run_id>`".into(),
        })
}

fn normalize(raw: &str) -> RunState {
    match raw {
        "queued" | "none" | "scheduled" => RunState::Queued,
        "success" => RunState::Succeeded,
        "failed" => RunState::Failed,
        _ => RunState::Running,
    }
}
