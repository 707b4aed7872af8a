//! The trigger client: start a pipeline run on an engine exactly once, follow it, cancel it.
//!
//! This file owns the public vocabulary shared by every backend: what to start ([`RunRequest`]),
//! how to name a started run ([`RunHandle`]) and what state it is in ([`RunState`],
//! [`RunStatus`]). The public client is in `client`; the transport in `http` (with `auth`
//! for credentials and `reply` for reading answers) and its retries in `retry`/`retry_after`;
//! target configuration in `target`, errors in `error`, each engine's request shapes in `backend`.

mod auth;
mod backend;
mod client;
mod error;
mod http;
mod reply;
mod retry;
pub mod retry_after;
mod target;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use backend::webhook::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, webhook_signature};
pub use client::Client;
pub use error::{Error, exit};
pub use reply::{escape_controls, push_escaped, reorders};
pub use retry::{RetryPolicy, is_transient};
pub use target::{AirflowApi, Kind, Secret, TargetConfig};

/// What to start: one trigger of one pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// What to start, in the engine's own terms: a chain (`pipelines`), a snapshot or template
    /// name (`zenml`), a DAG id (`airflow`), `flow/deployment` (`prefect`), anything (`webhook`).
    /// Empty means "the target's `pipeline` key".
    pub pipeline: String,
    /// Stable across retries and crashes (the watcher passes its batch id); each backend maps it
    /// to the engine's own deduplication so a retried request never starts two runs.
    pub idempotency_key: String,
    /// The generated pipeline config, e.g. `{"parameters": {"user_full_name": "...", "links": [...]}}`.
    pub config: serde_json::Value,
    /// Free-form string parameters (`--param key=value`); merged into the engine's parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Webhook only: an opaque body POSTed as-is. `None` makes the webhook backend send
    /// `{"pipeline", "idempotency_key", "config", "params"}`.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

impl RunRequest {
    /// A request with an empty config, no params and no payload.
    pub fn new(pipeline: impl Into<String>, idempotency_key: impl Into<String>) -> Self {
        RunRequest {
            pipeline: pipeline.into(),
            idempotency_key: idempotency_key.into(),
            config: serde_json::Value::Object(serde_json::Map::new()),
            params: BTreeMap::new(),
            payload: None,
        }
    }

    /// Reads a pipeline config (YAML, which includes JSON) such as the watcher's generated
    /// `digital_data_etl_*.yaml`.
    pub fn config_from_file(path: &std::path::Path) -> Result<serde_json::Value, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::PipelineConfig {
            path: path.to_owned(),
            problem: "cannot be read".into(),
            source: Some(Box::new(source)),
        })?;
        let value: serde_json::Value =
            serde_yaml_ng::from_str(&text).map_err(|source| Error::PipelineConfig {
                path: path.to_owned(),
                problem: "is not valid YAML".into(),
                source: Some(Box::new(source)),
            })?;
        if !value.is_object() {
            return Err(Error::PipelineConfig {
                path: path.to_owned(),
                problem: "is not a mapping".into(),
                source: None,
            });
        }
        Ok(value)
    }

    /// The config's `parameters` mapping with `params` merged on top (strings win), which is
    /// what Prefect `parameters` and Airflow `conf` receive.
    pub fn parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = match self.config.get("parameters") {
            Some(serde_json::Value::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        for (key, value) in &self.params {
            out.insert(key.clone(), serde_json::Value::String(value.clone()));
        }
        out
    }
}

/// A started run, printed as `<kind>:<id>` (e.g. `prefect:0b7c…`, `airflow:dag_id/run_id`) and
/// parsed back from that form by [`FromStr`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunHandle {
    pub kind: String,
    pub id: String,
}

impl RunHandle {
    pub fn new(kind: Kind, id: impl Into<String>) -> Self {
        RunHandle {
            kind: kind.as_str().to_owned(),
            id: id.into(),
        }
    }
}

impl fmt::Display for RunHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

impl FromStr for RunHandle {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |problem: &str| Error::BadHandle {
            handle: s.to_owned(),
            problem: problem.to_owned(),
        };
        let (kind, id) = s
            .split_once(':')
            .ok_or_else(|| bad("there is no `:` between kind and id"))?;
        let kind: Kind = kind.parse().map_err(|_| bad("the kind is unknown"))?;
        if id.is_empty() {
            return Err(bad("the id is empty"));
        }
        Ok(RunHandle::new(kind, id))
    }
}

/// A run's state, normalized across engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    /// True once the run can no longer change: succeeded, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run's normalized state plus what the engine itself said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    pub state: RunState,
    /// The engine's own state name (`COMPLETED`, `success`, `initializing`, ...).
    pub raw_state: String,
    /// The engine's message, e.g. Prefect's `state.message` or the runner's `error` (for a
    /// runner's run that succeeded with deferred stages: which and why).
    pub message: Option<String>,
    /// The run's stages, for engines that report them (the pipelines runner); empty otherwise.
    #[serde(default)]
    pub stages: Vec<StageState>,
}

/// One stage of a run as the engine reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageState {
    pub name: String,
    /// The engine's own status name, kept as sent: a status this build does not know (from a
    /// newer runner) is shown, never an error.
    pub state: String,
    /// Why it failed, was skipped or was deferred.
    pub message: Option<String>,
}

impl StageState {
    /// Whether a gate or a budget kept the stage from running (pipelines runner).
    pub fn is_deferred(&self) -> bool {
        self.state == "deferred"
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.state)?;
        if !self.raw_state.eq_ignore_ascii_case(self.state.as_str()) {
            write!(f, " ({})", self.raw_state)?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_round_trips_through_display() {
        let handle = RunHandle::new(Kind::Airflow, "hello_dag/watcher-abc");
        assert_eq!(handle.to_string(), "airflow:hello_dag/watcher-abc");
        assert_eq!(handle.to_string().parse::<RunHandle>().unwrap(), handle);
    }

    #[test]
    fn handle_keeps_colons_in_the_id() {
        let handle: RunHandle = "webhook:batch:1".parse().unwrap();
        assert_eq!(handle.kind, "webhook");
        assert_eq!(handle.id, "batch:1");
    }

    #[test]
    fn bad_handles_are_rejected_with_a_hint() {
        for bad in ["nocolon", "nope:1", "prefect:"] {
            let err = bad.parse::<RunHandle>().unwrap_err();
            assert!(err.to_string().contains("<kind>:<id>"), "{err}");
        }
    }

    #[test]
    fn config_files_are_yaml_mappings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digital_data_etl_paul_iusztin.yaml");
        std::fs::write(
            &path,
            "parameters:\n  user_full_name: Paul Iusztin\n  links:\n    - https://decodingml.substack.com/p/a\n",
        )
        .unwrap();
        let config = RunRequest::config_from_file(&path).unwrap();
        assert_eq!(
            config["parameters"]["links"][0],
            "https://decodingml.substack.com/p/a"
        );
        std::fs::write(&path, "- just\n- a list\n").unwrap();
        let err = RunRequest::config_from_file(&path).unwrap_err().to_string();
        assert!(err.contains("is not a mapping"), "{err}");
    }

    #[test]
    fn parameters_merge_params_over_config() {
        let mut req = RunRequest::new("p", "k");
        req.config = serde_json::json!({"parameters": {"user_full_name": "A", "links": ["x"]}});
        req.params.insert("user_full_name".into(), "B".into());
        let params = req.parameters();
        assert_eq!(params["user_full_name"], "B");
        assert_eq!(params["links"], serde_json::json!(["x"]));
    }
}
