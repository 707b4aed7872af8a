//! dashboard/manual.rs: the manual trigger, the dashboard's "Run now": which configs the form
//! offers (the generated ones, newest first, and the chain's `default_config`), the one-time key
//! each rendered form carries, and starting the run through the trigger client with that key as
//! idempotency key. Starts are serialized and remembered by key, so a double click (two requests
//! with one key) starts one run even on an engine that does not deduplicate. The runs started
//! here are kept in memory (the last [`KEEP`]) for the page.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rand::Rng;
use trigger_client::RunHandle;

use crate::deliver::Deliverer;

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

/// The runs started from the dashboard, newest first; starts go one at a time.
#[derive(Default)]
pub struct Manual {
    runs: tokio::sync::Mutex<VecDeque<ManualRun>>,
}

impl Manual {
    /// Starts the pipeline with `choice` under `key`; a key already used answers its run (and
    /// `false`: nothing new started).
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
        let mut runs = self.runs.lock().await;
        if let Some(run) = runs.iter().find(|r| r.key == key) {
            return Ok((run.clone(), false));
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
        let handle = deliverer
            .start(key, config)
            .await
            .map_err(|e| RunNowError::Trigger(Box::new(e)))?;
        tracing::info!(run_id = %handle, config = choice.label(), "manual run started from the dashboard");
        let run = ManualRun {
            key: key.to_owned(),
            handle,
            config: choice.label().to_owned(),
            started_at: Utc::now(),
        };
        runs.push_front(run.clone());
        runs.truncate(KEEP);
        Ok((run, true))
    }

    /// The runs started so far, newest first.
    pub async fn list(&self) -> Vec<ManualRun> {
        self.runs.lock().await.iter().cloned().collect()
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
