//! dashboard/manual.rs: the manual trigger, the dashboard's "Run now": which configs the form
//! offers (the generated ones, newest first, and the chain's `default_config`), the one-time key
//! each rendered form carries, and starting the run through the trigger client with that key as
//! idempotency key. Starts are serialized and remembered by key, so a double click (two requests
//! with one key) starts one run even on an engine that does not deduplicate. The runs started
//! here are kept in the store (`store/manual.rs`), recorded before the trigger is sent, so a
//! restart forgets none and a form posted again after it starts nothing new.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::Rng;
use trigger_client::RunHandle;

use crate::deliver::Deliverer;
use crate::store::{ManualRecord, Store};

/// How many manual runs the page lists.
pub const KEEP: usize = 20;

/// How many generated configs the form offers.
const OFFERED: usize = 20;

/// The form's value for the chain's own default config (an empty config in the request).
pub const DEFAULT: &str = "default";

/// Which config a manual run gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChoice {
    /// No config in the request: the chain's `default_config` (the engine's defaults elsewhere).
    Default,
    /// A config the watcher generated, by file name in `output_dir`.
    Generated(String),
}

impl ConfigChoice {
    /// From the form's value: [`DEFAULT`] or a file name (no directory part).
    pub fn parse(value: &str) -> Result<ConfigChoice, RunNowError> {
        if value == DEFAULT {
            return Ok(ConfigChoice::Default);
        }
        let plain = !value.is_empty()
            && value.len() <= 255
            && !value.starts_with('.')
            && !value.contains(['/', '\\', '\0'])
            && (value.ends_with(".yaml") || value.ends_with(".yml") || value.ends_with(".json"));
        if !plain {
            return Err(RunNowError::BadChoice {
                value: crate::printable::printable(value),
            });
        }
        Ok(ConfigChoice::Generated(value.to_owned()))
    }

    /// As the page names it.
    pub fn label(&self) -> &str {
        match self {
            ConfigChoice::Default => "default_config",
            ConfigChoice::Generated(name) => name,
        }
    }
}

/// Why a manual run did not start.
#[derive(Debug, thiserror::Error)]
pub enum RunNowError {
    #[error(
        "bad run key; reload the page for a new form (a key is 16 to 64 letters, digits or `-`)"
    )]
    BadKey,
    #[error("bad config choice `{value}`; expected `default` or a generated config's file name")]
    BadChoice { value: String },
    #[error("cannot read config `{}`", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: Box<trigger_client::Error>,
    },
    #[error("the trigger failed")]
    Trigger(#[source] Box<trigger_client::Error>),
    #[error("cannot record the run in the store")]
    Store(#[source] crate::store::StoreError),
}

/// A run started from the dashboard.
#[derive(Debug, Clone)]
pub struct ManualRun {
    pub key: String,
    pub handle: RunHandle,
    pub config: String,
    pub started_at: DateTime<Utc>,
}

/// What the "Run now" form offers.
#[derive(Debug, Clone, Default)]
pub struct ConfigOptions {
    /// Generated configs' file names, newest first.
    pub generated: Vec<String>,
    /// How the chain's default reads on the form; `None` when there is none to offer.
    pub default: Option<String>,
}

/// The generated configs in `output_dir`, newest first (a directory read: call it on the
/// blocking pool). A missing directory offers none.
pub fn generated_configs(output_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(output_dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            ConfigChoice::parse(&name).ok()?;
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            Some((meta.modified().ok()?, name))
        })
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    found.into_iter().take(OFFERED).map(|(_, n)| n).collect()
}

/// A fresh one-time key for a rendered form.
pub fn new_key() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    format!("manual-{}", hex::encode(bytes))
}

fn key_is_valid(key: &str) -> bool {
    (16..=64).contains(&key.len()) && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The runs started from the dashboard; starts go one at a time.
pub struct Manual {
    store: Arc<Store>,
    starting: tokio::sync::Mutex<()>,
}

impl Manual {
    pub fn new(store: Arc<Store>) -> Manual {
        Manual {
            store,
            starting: tokio::sync::Mutex::new(()),
        }
    }

    /// Starts the pipeline with `choice` under `key`; a key already used answers its run (and
    /// `false`: nothing new started), also after a restart.
    pub async fn start(
        &self,
        deliverer: &Deliverer,
        output_dir: &Path,
        key: &str,
        choice: ConfigChoice,
    ) -> Result<(ManualRun, bool), RunNowError> {
        if !key_is_valid(key) {
            return Err(RunNowError::BadKey);
        }
        // Held across the trigger: the second request of a double click waits, then finds the
        // first one's run.
        let _one_at_a_time = self.starting.lock().await;
        let known = self.store.manual_run(key).map_err(RunNowError::Store)?;
        if let Some(run) = known.as_ref().and_then(ManualRun::from_record) {
            return Ok((run, false));
        }
        let config = match &choice {
            ConfigChoice::Default => serde_json::Value::Object(serde_json::Map::new()),
            ConfigChoice::Generated(name) => {
                let path = output_dir.join(name);
                let read = path.clone();
                tokio::task::spawn_blocking(move || {
                    trigger_client::RunRequest::config_from_file(&read)
                })
                .await
                .expect("reading a config does not panic")
                .map_err(|source| RunNowError::Config {
                    path,
                    source: Box::new(source),
                })?
            }
        };
        // Recorded before the trigger goes out (a record left without a run by a crash is sent
        // again, under the same key, when the form is posted again).
        let mut record = known.unwrap_or_else(|| ManualRecord {
            key: key.to_owned(),
            config: choice.label().to_owned(),
            started_at: Utc::now(),
            run: None,
        });
        self.store
            .put_manual_run(&record)
            .await
            .map_err(RunNowError::Store)?;
        let handle = match deliverer.start(key, config).await {
            Ok(handle) => handle,
            Err(e) => {
                if let Err(forget) = self.store.remove_manual_run(key).await {
                    tracing::warn!(error = %crate::causes::one_line(&forget), "cannot forget a manual run that did not start");
                }
                return Err(RunNowError::Trigger(Box::new(e)));
            }
        };
        tracing::info!(run_id = %handle, config = choice.label(), "manual run started from the dashboard");
        record.run = Some(handle.to_string());
        self.store
            .put_manual_run(&record)
            .await
            .map_err(RunNowError::Store)?;
        let run = ManualRun {
            key: record.key,
            handle,
            config: record.config,
            started_at: record.started_at,
        };
        Ok((run, true))
    }

    /// The runs started so far, newest first (the last [`KEEP`]).
    pub fn list(&self) -> Result<Vec<ManualRun>, crate::store::StoreError> {
        Ok(self
            .store
            .manual_runs()?
            .iter()
            .filter_map(ManualRun::from_record)
            .take(KEEP)
            .collect())
    }
}

impl ManualRun {
    /// A stored record that has its run (a record still waiting for one is not a run yet).
    fn from_record(record: &ManualRecord) -> Option<ManualRun> {
        Some(ManualRun {
            key: record.key.clone(),
            handle: record.run.as_deref()?.parse().ok()?,
            config: record.config.clone(),
            started_at: record.started_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_default_or_a_plain_file_name() {
        assert_eq!(
            ConfigChoice::parse("default").unwrap(),
            ConfigChoice::Default
        );
        assert_eq!(
            ConfigChoice::parse("digital_data_etl_x_1.yaml").unwrap(),
            ConfigChoice::Generated("digital_data_etl_x_1.yaml".into())
        );
        for bad in [
            "",
            "../secret.yaml",
            "/etc/passwd",
            "a/b.yaml",
            ".hidden.yaml",
            "notes.txt",
        ] {
            assert!(ConfigChoice::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_fresh_and_checked() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(key_is_valid(&a), "{a}");
        assert!(!key_is_valid("short"));
        assert!(!key_is_valid("manual-<script>alert(1)</script>"));
    }

    #[test]
    fn generated_configs_are_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in ["old.yaml", "new.yaml"].iter().enumerate() {
            let path = dir.path().join(name);
            std::fs::write(&path, "parameters: {}\n").unwrap();
            let t =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        std::fs::write(dir.path().join("skip.txt"), "").unwrap();
        assert_eq!(generated_configs(dir.path()), ["new.yaml", "old.yaml"]);
        assert!(generated_configs(&dir.path().join("missing")).is_empty());
    }
}
