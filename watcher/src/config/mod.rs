//! config: the `watcher.toml` file: typed settings, defaults, and validation that names the
//! file, the key and what was expected. A leaf: nothing here touches the network or the runtime
//! modules; the checks that need chain files or the trigger client are the preflight step's.
//!
//! - [`settings`]: `[watcher]`, `[fetch]`, `[output]`, `[trigger]`;
//! - [`hold`]: the flood guard's thresholds, per source;
//! - [`sources`]: `[[authors]]` and the sources they resolve to (cron and selectors parsed);
//! - [`validate`]: from raw tables to checked values, every problem with its key;
//! - [`durations`]: the upper bound of every duration key;
//! - [`websub`]: `[websub]`, push through WebSub hubs (off without it).

pub mod durations;
pub mod hold;
pub mod settings;
pub mod sources;
pub mod validate;
pub mod websub;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::hold::HoldRule;
pub use self::settings::{
    EMBEDDED, EmbeddedSettings, FetchSettings, OutputFormat, OutputSettings, TriggerSettings,
    WATCHER_TRIGGER_KEYS, WatcherSettings, parse_network,
};
pub use self::sources::{
    Author, CssSelector, FeedSpec, OneOrMany, SelectorError, SiteSpec, SitemapSpec, SourceConfig,
    SourceKind, SourceTable, Spec, medium_feed, parse_cron, substack_feed,
};
pub use self::validate::{FileOnly, TriggerCheck, closest, parse_source_url};
pub use self::websub::WebsubSettings;

/// Default config file name, looked up in the current directory.
pub const DEFAULT_CONFIG: &str = "watcher.toml";

/// A loaded, validated configuration. Paths are absolute (relative ones are resolved against the
/// directory of the config file).
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub watcher: WatcherSettings,
    pub fetch: FetchSettings,
    pub output: OutputSettings,
    pub trigger: TriggerSettings,
    pub authors: Vec<Author>,
    /// `[websub]`: push on (`None`: off).
    pub websub: Option<WebsubSettings>,
    /// Every source, resolved once.
    sources: Vec<SourceConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    watcher: WatcherSettings,
    #[serde(default)]
    fetch: FetchSettings,
    #[serde(default)]
    output: OutputSettings,
    trigger: Option<toml::Table>,
    #[serde(default)]
    authors: Vec<Author>,
    websub: Option<WebsubSettings>,
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`; hint: pass --config PATH or set WATCHER_CONFIG")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config `{path}` is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config `{}` has {} problem(s):\n{}", path.display(), problems.len(), render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

fn render_problems(path: &Path, problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {}: {}: {}", path.display(), p.key, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads and validates the file at `path`, checking only what the file itself tells (see
    /// `preflight` for the whole check).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &FileOnly)
    }

    /// Reads the file at `path` and validates it, with `checks` for the `[trigger]` table.
    pub fn load_with(path: &Path, checks: &dyn TriggerCheck) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse_with(path, &text, checks)
    }

    /// Parses and validates `text` as if read from `path` (file checks only).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(path, text, &FileOnly)
    }

    /// Parses and validates `text` as if read from `path`, with `checks` for `[trigger]`.
    pub fn parse_with(
        path: &Path,
        text: &str,
        checks: &dyn TriggerCheck,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let mut problems = Vec::new();
        let trigger = validate::trigger(raw.trigger, &base, checks, &mut problems);
        let mut watcher = raw.watcher;
        let sources = validate::sources(&raw.authors, &watcher, &mut problems);
        validate::settings(&watcher, &raw.fetch, &sources, &mut problems);
        validate::templates(&raw.output, &raw.authors, &mut problems);
        if let Some(websub) = &raw.websub {
            websub.check(&mut problems);
        }
        let trigger = match trigger {
            Some(trigger) if problems.is_empty() => trigger,
            _ => {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    problems,
                });
            }
        };
        watcher.state_dir = base.join(&watcher.state_dir);
        watcher.output_dir = base.join(&watcher.output_dir);
        let mut output = raw.output;
        output.template = output.template.map(|t| base.join(t));
        let mut authors = raw.authors;
        for author in &mut authors {
            author.template = author.template.take().map(|t| base.join(t));
        }
        Ok(Config {
            path: path.to_path_buf(),
            watcher,
            fetch: raw.fetch,
            output,
            trigger,
            authors,
            websub: raw.websub,
            sources,
        })
    }

    /// Every source of every author, in config order.
    pub fn sources(&self) -> Vec<SourceConfig> {
        self.sources.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = r#"
[watcher]
state_dir = "st"
interval = "10m"

[trigger]
kind = "webhook"
url = "http://127.0.0.1:9000/hook"

[[authors]]
name = "Paul Iusztin"
feeds = ["https://decodingml.substack.com/feed"]
"#;

    #[test]
    fn good_config_resolves_paths_against_the_file() {
        let config = Config::parse(Path::new("/etc/w/watcher.toml"), GOOD).unwrap();
        assert_eq!(config.watcher.state_dir, PathBuf::from("/etc/w/st"));
        assert_eq!(
            config.watcher.output_dir,
            PathBuf::from("/etc/w/configs/generated")
        );
        assert_eq!(config.watcher.interval, Duration::from_secs(600));
        assert_eq!(config.trigger.pipeline, "digital_data_etl");
        assert_eq!(config.authors[0].feeds.len(), 1);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = r#"
[trigger]
kind = "webhook"
url = "http://127.0.0.1:9000/hook"

[[authors]]
name = "A"
feeds = ["ftp://x/feed", "not a url"]

[[authors]]
name = "a"
"#;
        let err = Config::parse(Path::new("w.toml"), text).unwrap_err();
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("{err}")
        };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "authors[0].feeds[0]",
                "authors[0].feeds[1]",
                "authors[1].name",
                "authors[1]"
            ]
        );
        assert!(
            err.to_string()
                .contains("w.toml: authors[0].feeds[0]: expected an http(s) URL")
        );
    }

    #[test]
    fn typos_inside_source_tables_are_named() {
        let text = GOOD.replace(
            "feeds = [\"https://decodingml.substack.com/feed\"]",
            "feeds = [{ url = \"https://a.example/feed\", intervall = \"1h\" }]",
        );
        let err = Config::parse(Path::new("w.toml"), &text).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `intervall`"),
            "{err}"
        );
        let text = GOOD.replace(
            "feeds = [\"https://decodingml.substack.com/feed\"]",
            "feeds = [{ url = \"https://a.example/feed\", selector = \"a\" }]\nsubstack = \"decodingml\"",
        );
        let err = Config::parse(Path::new("w.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`selector` is a key of `sites`"), "{err}");
    }

    #[test]
    fn the_same_feed_twice_is_refused() {
        let text = GOOD.replace(
            "feeds = [\"https://decodingml.substack.com/feed\"]",
            "feeds = [\"https://decodingml.substack.com/feed\"]\nsubstack = \"decodingml\"",
        );
        let err = Config::parse(Path::new("w.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is listed twice"), "{err}");
    }

    #[test]
    fn unknown_keys_name_the_key() {
        let text = GOOD.replace("interval = \"10m\"", "intervall = \"10m\"");
        let err = Config::parse(Path::new("w.toml"), &text).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `intervall`"),
            "{err}"
        );
    }

    #[test]
    fn cron_expressions_need_five_fields() {
        assert!(parse_cron("0 3 * * *").is_ok());
        assert!(
            parse_cron("0 0 3 * * *")
                .unwrap_err()
                .contains("5 cron fields")
        );
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn bad_duration_is_a_syntax_error_with_position() {
        let text = GOOD.replace("\"10m\"", "\"ten minutes\"");
        let err = Config::parse(Path::new("w.toml"), &text).unwrap_err();
        assert!(err.to_string().contains("line 4"), "{err}");
    }
}
