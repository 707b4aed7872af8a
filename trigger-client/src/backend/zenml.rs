//! The `zenml` backend: ZenML Pro / remote-stack servers.
//!
//! `GET /api/v1/info` gives the version: 0.90+ runs pipeline snapshots (`POST
//! /api/v1/pipeline_snapshots/{id}/runs`, body wrapped in `run_configuration`), 0.63–0.85 run
//! templates (`POST /api/v1/run_templates/{id}/runs`, bare body); either is looked up by name.
//! The config's parameters become **step** parameters (pipeline-level ones are rejected over
//! REST) through `step_params`. The run name is derived from the idempotency key, so a repeat
//! gets "already exists" and the existing run is returned. Auth: a server's API key
//! (`ZENKEY_...`) exchanged once at `POST /api/v1/login` for a token (~20x cheaper per call than
//! sending the key, which 0.92+ also accepts), a password login, or a ready token (a ZenML Pro
//! `ZENPROKEY_...` is sent as is from 0.92). A 405 on the trigger means an open-source server
//! that cannot start runs at all; a 429 (two snapshot runs already starting) is retried by the
//! transport; a 403 on stop is checked against the run's state (ZenML answers 403 both for a run
//! that already ended and for missing rights).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use url::Url;

use super::{Backend, IdValue, endpoint, safe_identifier};
use crate::auth::{Auth, Login, LoginField};
use crate::error::Error;
use crate::http::{Body, Call, Http};
use crate::target::{Secret, TargetConfig};
use crate::{RunRequest, RunState, RunStatus};

/// The message for a server without a workload manager (open-source ZenML).
pub(crate) const NO_REST_TRIGGER: &str = "this ZenML server cannot start runs over REST (ZenML Pro feature, needs a remote stack); use kind = \"pipelines\" or run the pipeline from a chain stage";

/// The LLM Twin's `digital_data_etl` steps.
const DEFAULT_STEP_PARAMS: [(&str, &str); 2] = [
    ("user_full_name", "get_or_create_user.user_full_name"),
    ("links", "crawl_links.links"),
];

pub(crate) struct Zenml {
    base: Url,
    token: Option<Secret>,
    credentials: Option<(String, Secret)>,
    project: String,
    pipeline_filter: Option<String>,
    /// Config parameter -> (step invocation id, step parameter).
    step_params: BTreeMap<String, (String, String)>,
    server: OnceCell<Server>,
}

/// What `/api/v1/info` told us, and the auth that fits that version.
struct Server {
    version: (u32, u32),
    snapshots: bool,
    auth: Auth,
}

impl Server {
    /// Servers from 0.80 scope list calls by project.
    fn scoped(&self) -> bool {
        self.version >= (0, 80)
    }
}

impl Zenml {
    pub(crate) fn new(target: &TargetConfig) -> Result<Self, Error> {
        let mapping: BTreeMap<String, String> = match &target.step_params {
            Some(map) => map.clone(),
            None => DEFAULT_STEP_PARAMS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let mut step_params = BTreeMap::new();
        for (param, target_path) in mapping {
            let (step, name) = target_path
                .split_once('.')
                .filter(|(step, name)| !step.is_empty() && !name.is_empty())
                .ok_or_else(|| Error::Config {
                    key: format!("step_params.{param}"),
                    problem: format!("`{target_path}` must be `step_invocation_id.parameter`"),
                })?;
            step_params.insert(param, (step.to_owned(), name.to_owned()));
        }
        let token = target.token()?;
        let credentials = target.basic_credentials()?;
        if token.is_some() && credentials.is_some() {
            return Err(Error::Config {
                key: "token_env".into(),
                problem: "and `username` are both set; keep one".into(),
            });
        }
        Ok(Zenml {
            base: target.require_url()?,
            token,
            credentials,
            project: target.project.clone().unwrap_or_else(|| "default".into()),
            pipeline_filter: target.zenml_pipeline.clone(),
            step_params,
            server: OnceCell::new(),
        })
    }

    async fn server(&self, http: &Http) -> Result<&Server, Error> {
        self.server
            .get_or_try_init(|| async {
                #[derive(Deserialize)]
                struct Info {
                    version: String,
                }
                let url = endpoint(&self.base, &["api", "v1", "info"]);
                let reply = http.send(&Call::get(url), &Auth::None).await?.success(&Auth::None)?;
                let info: Info = reply.json()?;
                let version = parse_version(&info.version).ok_or_else(|| {
                    reply.protocol(format!("`{}` is not a ZenML version", info.version))
                })?;
                if version < (0, 63) {
                    return Err(Error::Unsupported {
                        kind: "zenml",
                        message: format!(
                            "ZenML {} has no run templates (0.63+) nor snapshots (0.90+) to start over REST; use kind = \"pipelines\"",
                            info.version
                        ),
                    });
                }
                tracing::debug!(version = %info.version, "zenml server");
                Ok(Server {
                    version,
                    snapshots: version >= (0, 90),
                    auth: self.auth_for(version),
                })
            })
            .await
    }

    fn auth_for(&self, version: (u32, u32)) -> Auth {
        let login = |fields: Vec<(&'static str, LoginField)>, describe: String| {
            Auth::Login(Login::new(
                endpoint(&self.base, &["api", "v1", "login"]),
                true,
                fields,
                describe,
            ))
        };
        match (&self.token, &self.credentials) {
            (Some(key), _) if exchanged(key, version) => login(
                vec![
                    ("grant_type", LoginField::Plain("zenml-api-key".into())),
                    ("password", LoginField::Secret(key.clone())),
                ],
                format!("the API key from {}", key.origin()),
            ),
            (Some(token), _) => Auth::Bearer(token.clone()),
            (None, Some((user, password))) => login(
                vec![
                    ("grant_type", LoginField::Plain("password".into())),
                    ("username", LoginField::Plain(user.clone())),
                    ("password", LoginField::Secret(password.clone())),
                ],
                format!("user `{user}` with the password from {}", password.origin()),
            ),
            (None, None) => Auth::None,
        }
    }

    /// The id of the newest snapshot (0.90+) or run template named `name`. Looked up on every
    /// trigger (triggers are rare): a snapshot re-created under the same name is the one that runs.
    async fn source_id(&self, http: &Http, server: &Server, name: &str) -> Result<String, Error> {
        let (collection, what) = if server.snapshots {
            ("pipeline_snapshots", "snapshot")
        } else {
            ("run_templates", "run template")
        };
        let mut url = endpoint(&self.base, &["api", "v1", collection]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("name", name);
            if server.snapshots {
                query.append_pair("named_only", "true");
            }
            if let Some(pipeline) = &self.pipeline_filter {
                query.append_pair("pipeline", pipeline);
            }
            if server.scoped() {
                query.append_pair("project", &self.project);
            }
            query
                .append_pair("sort_by", "desc:created")
                .append_pair("size", "2")
                .append_pair("hydrate", "false");
        }
        let page: Page = http
            .send(&Call::get(url), &server.auth)
            .await?
            .success(&server.auth)?
            .json()?;
        let id = match page.items.as_slice() {
            [] => {
                return Err(Error::Request {
                    problem: format!(
                        "zenml has no {what} named `{name}`{} (hint: list them in the dashboard, or check `project`)",
                        self.pipeline_filter
                            .as_ref()
                            .map(|p| format!(" for pipeline `{p}`"))
                            .unwrap_or_default()
                    ),
                });
            }
            [only] => only.id.clone().into_string(),
            [first, ..] if self.pipeline_filter.is_none() && server.snapshots => {
                let _ = first;
                return Err(Error::Request {
                    problem: format!(
                        "several pipelines have a snapshot named `{name}` (hint: name the pipeline with `zenml_pipeline`, or `--zenml-pipeline`)"
                    ),
                });
            }
            [first, ..] => first.id.clone().into_string(),
        };
        Ok(id)
    }

    /// `{"step": {"parameters": {...}}}` from the request's parameters.
    fn steps(&self, req: &RunRequest) -> Result<Value, Error> {
        let parameters = req.parameters();
        if parameters.contains_key("author_links") && !self.step_params.contains_key("author_links")
        {
            return Err(Error::Request {
                problem: "an `end_to_end_data` config (`author_links`) cannot start a ZenML snapshot: the snapshot fixes how many authors the pipeline has (`crawl_links_2`, ...), so only the `digital_data_etl` shape maps to its steps (hint: set `format = \"digital_data_etl\"` in the watcher's [output], one run per author)".into(),
            });
        }
        let mut steps: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for (param, value) in parameters {
            let (step, name) = self.step_params.get(&param).ok_or_else(|| Error::Request {
                problem: format!(
                    "config parameter `{param}` has no ZenML step to go to (pipeline-level parameters are rejected over REST) (hint: add `{param} = \"<step>.<parameter>\"` to `step_params`)"
                ),
            })?;
            steps
                .entry(step.clone())
                .or_default()
                .insert(name.clone(), value);
        }
        Ok(Value::Object(
            steps
                .into_iter()
                .map(|(step, parameters)| (step, json!({"parameters": parameters})))
                .collect(),
        ))
    }

    /// The run named `run_name`, if it exists.
    async fn run_named(
        &self,
        http: &Http,
        server: &Server,
        run_name: &str,
    ) -> Result<Option<String>, Error> {
        let mut url = endpoint(&self.base, &["api", "v1", "runs"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("name", run_name);
            if server.scoped() {
                query.append_pair("project", &self.project);
            }
            query
                .append_pair("size", "1")
                .append_pair("hydrate", "false");
        }
        let page: Page = http
            .send(&Call::get(url), &server.auth)
            .await?
            .success(&server.auth)?
            .json()?;
        Ok(page
            .items
            .into_iter()
            .next()
            .map(|run| run.id.into_string()))
    }
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    id: IdValue,
}

/// `PipelineRunResponse` (only what we read).
#[derive(Deserialize)]
struct PipelineRun {
    id: IdValue,
    #[serde(default)]
    body: Option<RunBody>,
}

#[derive(Deserialize)]
struct RunBody {
    status: String,
    #[serde(default)]
    status_reason: Option<String>,
}

impl Backend for Zenml {
    async fn trigger(&self, http: &Http, name: &str, req: &RunRequest) -> Result<String, Error> {
        // Before any request: the server accepts wrong shapes silently, so this is the check.
        let steps = self.steps(req)?;
        let server = self.server(http).await?;
        let source = self.source_id(http, server, name).await?;
        let run_name = safe_identifier(&format!("{name}-{}", req.idempotency_key));
        let run_configuration = json!({"run_name": run_name, "steps": steps});
        let (url, body) = if server.snapshots {
            (
                endpoint(
                    &self.base,
                    &["api", "v1", "pipeline_snapshots", &source, "runs"],
                ),
                json!({"run_configuration": run_configuration, "step_run": null}),
            )
        } else {
            (
                endpoint(&self.base, &["api", "v1", "run_templates", &source, "runs"]),
                run_configuration,
            )
        };
        let reply = http
            .send(&Call::post(url, Body::json(&body)), &server.auth)
            .await?;
        if reply.status == 405 {
            return Err(Error::Unsupported {
                kind: "zenml",
                message: NO_REST_TRIGGER.into(),
            });
        }
        let exists = reply.status == 409
            || ((400..500).contains(&reply.status)
                && reply
                    .engine_message()
                    .to_ascii_lowercase()
                    .contains("already exists"));
        if exists {
            tracing::info!(run_name = %run_name, "zenml run already exists; returning it");
            return match self.run_named(http, server, &run_name).await? {
                Some(id) => Ok(id),
                None => Err(reply.error(&server.auth)),
            };
        }
        let run: PipelineRun = reply.success(&server.auth)?.json()?;
        Ok(run.id.into_string())
    }

    async fn status(&self, http: &Http, id: &str) -> Result<RunStatus, Error> {
        let server = self.server(http).await?;
        let mut url = endpoint(&self.base, &["api", "v1", "runs", id]);
        url.query_pairs_mut().append_pair("hydrate", "false");
        let reply = http
            .send(&Call::get(url), &server.auth)
            .await?
            .success(&server.auth)?;
        let run: PipelineRun = reply.json()?;
        let body = run
            .body
            .ok_or_else(|| reply.protocol("the run has no `body` (permission denied?)"))?;
        Ok(RunStatus {
            state: normalize(&body.status),
            raw_state: body.status,
            message: body.status_reason.filter(|reason| !reason.is_empty()),
            stages: Vec::new(),
        })
    }

    async fn cancel(&self, http: &Http, id: &str) -> Result<(), Error> {
        let server = self.server(http).await?;
        let mut url = endpoint(&self.base, &["api", "v1", "runs", id, "stop"]);
        url.query_pairs_mut().append_pair("graceful", "false");
        let reply = http
            .send(&Call::post(url, Body::Empty), &server.auth)
            .await?;
        if reply.status != 403 {
            reply.success(&server.auth)?;
            return Ok(());
        }
        // "Cannot stop a run that is already completed", "Run is already being stopped", or no
        // permission: the run's state tells which.
        let status = self.status(http, id).await?;
        if status.state.is_terminal() || status.raw_state == "stopping" {
            tracing::info!(run_id = %id, state = %status.raw_state, "the run has already ended or is stopping; nothing to cancel");
            return Ok(());
        }
        Err(reply.error(&server.auth))
    }
}

/// Whether `key` is an API key to exchange for a token: a server's `ZENKEY_` always (0.92+
/// also takes it as the bearer, but verifies it on every call, ~0.9 s each), a ZenML Pro
/// `ZENPROKEY_` only before 0.92.
fn exchanged(key: &Secret, version: (u32, u32)) -> bool {
    let value = key.expose();
    value.starts_with("ZENKEY_") || (value.starts_with("ZENPROKEY_") && version < (0, 92))
}

/// `0.98.0`, `0.74.0rc1`, `0.90.0.dev3` -> (0, 98), (0, 74), (0, 90).
fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor_text: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor_text.parse().ok()?))
}

/// ZenML `ExecutionStatus` (0.74 – 0.98).
fn normalize(raw: &str) -> RunState {
    match raw {
        "initializing" | "provisioning" | "queued" => RunState::Queued,
        "completed" | "cached" | "skipped" => RunState::Succeeded,
        "failed" | "retried" => RunState::Failed,
        "stopped" | "cancelled" => RunState::Cancelled,
        // running, retrying, stopping, cancelling, paused, resuming, anything new.
        _ => RunState::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.98.0"), Some((0, 98)));
        assert_eq!(parse_version("0.74.0rc1"), Some((0, 74)));
        assert_eq!(parse_version("1.2"), Some((1, 2)));
        assert_eq!(parse_version("dev"), None);
    }

    #[test]
    fn statuses() {
        assert_eq!(normalize("initializing"), RunState::Queued);
        assert_eq!(normalize("cached"), RunState::Succeeded);
        assert_eq!(normalize("stopped"), RunState::Cancelled);
        assert_eq!(normalize("paused"), RunState::Running);
    }
}
