//! deliver.rs: the bridge from a batch to the trigger client: builds the run request (the config,
//! and for webhooks the JSON payload describing the batch) and starts the run with the batch id
//! as idempotency key. The trigger client owns HTTP, auth, signing and per-request retries.

use std::time::Duration;

use serde_json::json;
use trigger_client::{Client, RetryPolicy, RunHandle, RunRequest, RunStatus, TargetConfig};

use crate::config::{TriggerSettings, WATCHER_TRIGGER_KEYS};
use crate::emit;
use crate::store::Delivery;

/// Checks the `[trigger]` table's trigger-client part without touching the network.
pub fn validate_target(table: &toml::Table) -> Result<(), String> {
    let target: TargetConfig = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_string())?;
    let unknown: Vec<&String> = table
        .keys()
        .filter(|k| {
            !TargetConfig::KEYS.contains(&k.as_str()) && !WATCHER_TRIGGER_KEYS.contains(&k.as_str())
        })
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = TargetConfig::KEYS
            .iter()
            .chain(WATCHER_TRIGGER_KEYS)
            .copied()
            .collect();
        let described: Vec<String> = unknown
            .iter()
            .map(|k| match crate::config::closest(k, &known) {
                Some(close) => format!("`{k}` (did you mean `{close}`?)"),
                None => format!("`{k}`"),
            })
            .collect();
        return Err(format!(
            "unknown key(s) {}; expected one of {}",
            described.join(", "),
            known.join(", ")
        ));
    }
    if target.url.is_none() {
        return Err(format!("kind `{}` needs `url`", target.kind.as_str()));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the trigger: {0}")]
pub struct DeliverError(#[from] trigger_client::Error);

/// Starts runs for batches.
pub struct Deliverer {
    client: Client,
    pipeline: String,
    pub max_attempts: u32,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
}

impl Deliverer {
    pub fn new(settings: &TriggerSettings) -> Result<Deliverer, DeliverError> {
        let target: TargetConfig = toml::Value::Table(settings.table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| trigger_client::Error::Config {
                key: "trigger".into(),
                problem: e.message().trim().to_string(),
            })?;
        Self::with_target(settings, &target)
    }

    /// Builds a deliverer for an explicit target (the embedded runner's, for example).
    pub fn with_target(
        settings: &TriggerSettings,
        target: &TargetConfig,
    ) -> Result<Deliverer, DeliverError> {
        // A few quick in-request retries; the outbox's own backoff covers longer outages.
        let base = settings.retry_base_delay.min(Duration::from_millis(500));
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: base,
            max_delay: settings.retry_max_delay.min(Duration::from_secs(10)),
        };
        Ok(Deliverer {
            client: Client::new(target)?.with_retry(policy),
            pipeline: settings.pipeline.clone(),
            max_attempts: settings.max_attempts,
            retry_base_delay: settings.retry_base_delay,
            retry_max_delay: settings.retry_max_delay,
        })
    }

    /// Starts the batch's run; returns the run handle as `<kind>:<id>`.
    pub async fn trigger(&self, d: &Delivery) -> Result<String, String> {
        let config = emit::config_json(d.format, &d.items);
        let payload = json!({
            "batch_id": d.batch_id,
            "idempotency_key": d.idempotency_key(),
            "pipeline": self.pipeline,
            "format": d.format.as_str(),
            "author": d.authors.first(),
            "authors": d.authors,
            "config_path": d.config_path,
            "config": config,
            "items": d.items.iter().map(|i| json!({
                "author": i.author,
                "url": i.url,
                "title": i.title,
                "published": i.published,
                "source": i.source,
            })).collect::<Vec<_>>(),
        });
        let mut req = RunRequest::new(self.pipeline.clone(), d.idempotency_key());
        req.config = config;
        req.payload = Some(payload);
        self.client
            .trigger(&req)
            .await
            .map(|h| h.to_string())
            .map_err(|e| crate::error::one_line(&e))
    }

    /// The run's status; `None` when the engine cannot report it (a webhook without status URL).
    pub async fn status(&self, run: &str) -> Result<Option<RunStatus>, String> {
        let handle: RunHandle = run.parse().map_err(|e| crate::error::one_line(&e))?;
        match self.client.status(&handle).await {
            Ok(status) => Ok(Some(status)),
            Err(trigger_client::Error::Unsupported { .. }) => Ok(None),
            Err(e) => Err(crate::error::one_line(&e)),
        }
    }

    /// Follows a run until it ends or `timeout`, calling `on_change` on each new state.
    pub async fn wait(
        &self,
        run: &str,
        timeout: Duration,
        on_change: impl FnMut(&RunStatus),
    ) -> Result<RunStatus, String> {
        let handle: RunHandle = run.parse().map_err(|e| crate::error::one_line(&e))?;
        self.client
            .wait(&handle, timeout, on_change)
            .await
            .map_err(|e| crate::error::one_line(&e))
    }
}
