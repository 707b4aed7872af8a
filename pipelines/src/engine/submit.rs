//! Accepting a run: the idempotency check (a key names one request; the same key with another
//! request is a conflict), the params and the config, the run directory, the durable record,
//! then the chain's queue.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::Utc;
use runner_api::{Run, RunRequest, RunStatus, StageRun, StageStatus, Trigger};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Engine;
use crate::causes::list;
use crate::chain::Chain;
use crate::state::{Inserted, StateError};

/// What [`Engine::submit`] did.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// A new run was queued.
    Created(Run),
    /// The idempotency key named this run already.
    Existing(Run),
}

impl Submitted {
    pub fn run(&self) -> &Run {
        match self {
            Self::Created(run) | Self::Existing(run) => run,
        }
    }
}

/// Why a run was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("unknown chain `{name}`; known chains: {known}")]
    UnknownChain { name: String, known: String },
    #[error(
        "idempotency key `{key}` was already used for run `{run_id}` with a different request; use a new key for a different request"
    )]
    Conflict { key: String, run_id: String },
    #[error(
        "chain `{chain}` needs params {names}; send them in `params` or add defaults under `[params]` in its chain file"
    )]
    MissingParams { chain: String, names: String },
    #[error("chain `{chain}` has no `default_config`, so the request must carry a `config` object")]
    NoConfig { chain: String },
    #[error(
        "cannot use the default config `{path}` of chain `{chain}`; send a `config` in the request or fix `default_config`"
    )]
    DefaultConfig {
        chain: String,
        path: PathBuf,
        #[source]
        source: DefaultConfigError,
    },
    #[error("the runner is shutting down; retry once it is back")]
    ShuttingDown,
    #[error("cannot prepare the run directory `{path}`")]
    RunDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

/// What is wrong with a chain's `default_config` file.
#[derive(Debug, thiserror::Error)]
pub enum DefaultConfigError {
    #[error("cannot read it")]
    Read(#[source] std::io::Error),
    #[error("it is not valid YAML or JSON")]
    Parse(#[source] serde_yaml_ng::Error),
    #[error("expected a mapping at the top level")]
    NotMapping,
}

impl Engine {
    /// Accepts a run: idempotency check, params, config file, then the chain's queue.
    pub async fn submit(
        &self,
        chain_name: &str,
        request: RunRequest,
        trigger: Trigger,
    ) -> Result<Submitted, SubmitError> {
        self.submit_scoped(chain_name, request, trigger, None).await
    }

    /// [`submit`](Self::submit) of a run that executes only the stages in `scope` (by index);
    /// the others are `skipped` from the start with the scope's reason.
    pub(super) async fn submit_scoped(
        &self,
        chain_name: &str,
        request: RunRequest,
        trigger: Trigger,
        scope: Option<(BTreeSet<usize>, String)>,
    ) -> Result<Submitted, SubmitError> {
        let inner = &self.inner;
        let chain = inner
            .chains
            .get(chain_name)
            .ok_or_else(|| SubmitError::UnknownChain {
                name: chain_name.to_owned(),
                known: list(inner.chains.iter().map(|c| c.name())),
            })?
            .clone();
        let fingerprint = fingerprint(chain_name, &request);
        let key = request.idempotency_key.clone();
        if let Some(key) = &key
            && let Some(found) = self.existing(key, &fingerprint)?
        {
            return Ok(found);
        }
        if inner.stopping.is_cancelled() {
            return Err(SubmitError::ShuttingDown);
        }

        let mut params = chain.params().clone();
        params.extend(request.params.clone());
        let missing: Vec<&str> = chain
            .required_params()
            .into_iter()
            .filter(|name| !params.contains_key(*name))
            .collect();
        if !missing.is_empty() {
            return Err(SubmitError::MissingParams {
                chain: chain_name.to_owned(),
                names: list(missing.into_iter()),
            });
        }
        let config = match request.config {
            Some(config) => Value::Object(config),
            None => read_default_config(&chain).await?,
        };

        let id = uuid::Uuid::now_v7().to_string();
        let run_dir = inner.runs_dir.join(&id);
        let prepared = {
            let run_dir = run_dir.clone();
            tokio::task::spawn_blocking(move || write_run_dir(&run_dir, &config))
                .await
                .unwrap_or_else(|join| Err(std::io::Error::other(join)))
        };
        prepared.map_err(|source| SubmitError::RunDir {
            path: run_dir.clone(),
            source,
        })?;
        let now = Utc::now();
        let run = Run {
            id: id.clone(),
            chain: chain_name.to_owned(),
            status: RunStatus::Queued,
            trigger,
            created_at: now,
            started_at: None,
            finished_at: None,
            cancel_requested_at: None,
            stages: chain
                .stages()
                .iter()
                .enumerate()
                .map(|(index, stage)| {
                    let mut record = StageRun::queued(stage.name());
                    if let Some((scope, reason)) = &scope
                        && !scope.contains(&index)
                    {
                        record.status = StageStatus::Skipped;
                        record.error = Some(reason.clone());
                    }
                    record
                })
                .collect(),
            error: None,
            idempotency_key: key.clone(),
            params,
            run_dir: run_dir.clone(),
            force: request.force,
        };
        let idempotency = key.clone().map(|key| (key, fingerprint.clone()));
        match inner.state.insert_run(run.clone(), idempotency).await? {
            Inserted::New => {}
            Inserted::Existing { run, same_request } => {
                // Lost a race with the same key: drop what this request prepared.
                let _ = tokio::fs::remove_dir_all(&run_dir).await;
                return if same_request {
                    Ok(Submitted::Existing(*run))
                } else {
                    Err(SubmitError::Conflict {
                        key: key.unwrap_or_default(),
                        run_id: run.id,
                    })
                };
            }
        }
        inner.state.flush().await?;
        tracing::info!(chain = chain_name, run_id = %id, %trigger, "run queued");
        self.lock_queues()
            .entry(chain_name.to_owned())
            .or_default()
            .waiting
            .push_back(id);
        inner.changed.notify_waiters();
        self.dispatch(chain_name);
        Ok(Submitted::Created(run))
    }

    fn existing(&self, key: &str, fingerprint: &str) -> Result<Option<Submitted>, SubmitError> {
        // A probe insert with an impossible run would be wasteful; read the index directly.
        match self.inner.state.idempotent_run(key)? {
            None => Ok(None),
            Some((run, stored)) if stored == fingerprint => Ok(Some(Submitted::Existing(run))),
            Some((run, _)) => Err(SubmitError::Conflict {
                key: key.to_owned(),
                run_id: run.id,
            }),
        }
    }
}

/// A stable digest of what was asked: chain, config, params and `force` (keys sorted at every
/// level). `force` enters only when set, so keys stored before it existed keep their digests.
fn fingerprint(chain: &str, request: &RunRequest) -> String {
    let mut canonical = String::new();
    let mut asked = serde_json::json!({
        "chain": chain,
        "config": request.config,
        "params": request.params,
    });
    if request.force {
        asked["force"] = Value::Bool(true);
    }
    write_canonical(&asked, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

async fn read_default_config(chain: &Chain) -> Result<Value, SubmitError> {
    let path = chain
        .default_config()
        .ok_or_else(|| SubmitError::NoConfig {
            chain: chain.name().to_owned(),
        })?;
    let error = |source| SubmitError::DefaultConfig {
        chain: chain.name().to_owned(),
        path: path.to_owned(),
        source,
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|err| error(DefaultConfigError::Read(err)))?;
    let value: Value =
        serde_yaml_ng::from_str(&text).map_err(|err| error(DefaultConfigError::Parse(err)))?;
    if !value.is_object() {
        return Err(error(DefaultConfigError::NotMapping));
    }
    Ok(value)
}

/// Creates the run directory with `config.yaml` (JSON, which every YAML parser reads too) and
/// `logs/`.
pub(super) fn write_run_dir(run_dir: &Path, config: &Value) -> std::io::Result<()> {
    std::fs::create_dir_all(run_dir.join("logs"))?;
    let mut text = serde_json::to_string_pretty(config).expect("JSON values serialise");
    text.push('\n');
    std::fs::write(run_dir.join("config.yaml"), text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn fingerprint_ignores_key_order_but_not_values() {
        let request = |json: &str| RunRequest {
            config: serde_json::from_str(json).unwrap(),
            idempotency_key: Some("k".into()),
            params: BTreeMap::new(),
            force: false,
        };
        let a = fingerprint("c", &request(r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#));
        let b = fingerprint("c", &request(r#"{"b": {"y": null, "x": [1, 2]}, "a": 1}"#));
        let c = fingerprint("c", &request(r#"{"b": {"y": null, "x": [2, 1]}, "a": 1}"#));
        let d = fingerprint(
            "other",
            &request(r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let mut with_param = request(r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#);
        with_param.params.insert("p".into(), "v".into());
        assert_ne!(a, fingerprint("c", &with_param));
        let mut forced = request(r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#);
        forced.force = true;
        assert_ne!(
            a,
            fingerprint("c", &forced),
            "force is part of what a key names"
        );
    }

    #[test]
    fn config_yaml_is_json_that_yaml_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"parameters": {"user_full_name": "Paul: \"P\" #1", "links": ["https://x/a?b=c"]}});
        write_run_dir(dir.path(), &config).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.yaml")).unwrap();
        let from_yaml: Value = serde_yaml_ng::from_str(&text).unwrap();
        let from_json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(from_yaml, config);
        assert_eq!(from_json, config);
        assert!(dir.path().join("logs").is_dir());
    }
}
