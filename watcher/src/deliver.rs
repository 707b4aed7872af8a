//! deliver.rs: the bridge from a batch to the trigger client: builds the run request (the config,
//! and for webhooks the JSON payload describing the batch) and starts the run with the batch id
//! as idempotency key; asks about runs. The trigger client owns HTTP, auth, signing and
//! per-request retries; the outbox's own retry policy (across passes) is kept here too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use trigger_client::{Client, RetryPolicy, RunHandle, RunRequest, RunStatus, TargetConfig};

use crate::config::{TriggerSettings, WATCHER_TRIGGER_KEYS};
use crate::delivery::Delivery;
use crate::emit::{RenderedConfig, Templates};

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
#[error("cannot set up the trigger")]
pub struct DeliverError(#[from] pub trigger_client::Error);

/// Why sending a batch failed (the outbox retries it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error(
        "cannot write config `{}`; hint: check output_dir permissions and free disk space",
        path.display()
    )]
    WriteConfig {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("cannot render the config from template `{}`", path.display())]
    Template {
        path: PathBuf,
        #[source]
        source: Arc<crate::emit::TemplateError>,
    },
    #[error("trigger failed")]
    Trigger(#[source] Arc<trigger_client::Error>),
}

/// Starts runs for batches.
pub struct Deliverer {
    client: Client,
    pipeline: String,
    /// Across passes: attempts before a delivery fails for good, and the backoff between them.
    outbox_policy: RetryPolicy,
    /// The config templates batches are rendered from (none: the plain config).
    templates: Templates,
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
            outbox_policy: RetryPolicy {
                max_attempts: settings.max_attempts,
                base_delay: settings.retry_base_delay,
                max_delay: settings.retry_max_delay,
            },
            templates: Templates::default(),
        })
    }

    /// Renders batches from `templates` (`[output] template`, the authors' own).
    pub fn with_templates(mut self, templates: Templates) -> Deliverer {
        self.templates = templates;
        self
    }

    /// The batch's config, rendered once per delivery attempt (from its template, if any).
    pub fn render(&self, d: &Delivery) -> Result<RenderedConfig, SendError> {
        let template = self.templates.pick(d.format, &d.authors);
        crate::emit::render(d.format, template, &d.batch_id, &d.items).map_err(|source| {
            SendError::Template {
                path: template.map(|t| t.path().to_path_buf()).unwrap_or_default(),
                source: Arc::new(source),
            }
        })
    }

    /// The outbox's policy: attempts per delivery and the backoff between passes.
    pub fn outbox_policy(&self) -> RetryPolicy {
        self.outbox_policy
    }

    /// Starts the batch's run with its rendered `config`.
    pub async fn trigger(
        &self,
        d: &Delivery,
        config: serde_json::Value,
    ) -> Result<RunHandle, SendError> {
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
            .map_err(|e| SendError::Trigger(Arc::new(e)))
    }

    /// Starts the configured pipeline by hand (the dashboard's "Run now") with `config` (an
    /// empty mapping lets the chain's `default_config` apply on the pipelines runner) and `key` as
    /// idempotency key, so the same key never starts a second run.
    pub async fn start(
        &self,
        key: &str,
        config: serde_json::Value,
    ) -> Result<RunHandle, trigger_client::Error> {
        let mut req = RunRequest::new(self.pipeline.clone(), key);
        req.config = config;
        self.client.trigger(&req).await
    }

    /// What is started: the chain, DAG, deployment... (`[trigger] pipeline`).
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The engine the runs go to.
    pub fn kind(&self) -> trigger_client::Kind {
        self.client.kind()
    }

    /// The pipelines runner's record of `run`, stages included; `None` for other engines.
    pub async fn runner_run(
        &self,
        run: &RunHandle,
    ) -> Result<Option<pipelines::Run>, trigger_client::Error> {
        self.client.runner_run(run).await
    }

    /// The run's status; `None` when the engine cannot report it (a webhook without status URL).
    pub async fn status(
        &self,
        run: &RunHandle,
    ) -> Result<Option<RunStatus>, trigger_client::Error> {
        match self.client.status(run).await {
            Ok(status) => Ok(Some(status)),
            Err(trigger_client::Error::Unsupported { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Follows a run until it ends or `timeout`, calling `on_change` on each new state.
    pub async fn wait(
        &self,
        run: &RunHandle,
        timeout: Duration,
        on_change: impl FnMut(&RunStatus),
    ) -> Result<RunStatus, trigger_client::Error> {
        self.client.wait(run, timeout, on_change).await
    }
}
