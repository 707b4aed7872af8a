//! Target configuration: the `[trigger]` TOML table (shared by the watcher and the CLI), the
//! engine kinds, and secrets read from env vars or files and wrapped so they never print.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

use crate::error::Error;

/// Which engine a target speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A signed JSON POST to any receiver.
    Webhook,
    /// The embedded runner's REST API (`pipelines serve`).
    Pipelines,
    /// ZenML Pro / remote-stack servers (snapshots or run templates).
    Zenml,
    /// Apache Airflow 3 (`/api/v2`, JWT) or 2 (`/api/v1`, basic auth).
    Airflow,
    /// Prefect 3, self-hosted or Cloud.
    Prefect,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Webhook,
        Kind::Pipelines,
        Kind::Zenml,
        Kind::Airflow,
        Kind::Prefect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Pipelines => "pipelines",
            Kind::Zenml => "zenml",
            Kind::Airflow => "airflow",
            Kind::Prefect => "prefect",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| Error::Config {
                key: "kind".into(),
                problem: format!(
                    "`{s}` is not a known kind (expected one of webhook, pipelines, zenml, airflow, prefect)"
                ),
            })
    }
}

/// Which Airflow REST API to speak; `auto` asks the server (`/api/v2/version`, then `/api/v1/version`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AirflowApi {
    #[default]
    Auto,
    /// Airflow 2: `/api/v1`, HTTP basic auth.
    Airflow2,
    /// Airflow 3: `/api/v2`, a JWT from `POST /auth/token`.
    Airflow3,
}

impl<'de> Deserialize<'de> for AirflowApi {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(2) => Ok(AirflowApi::Airflow2),
            Raw::Int(3) => Ok(AirflowApi::Airflow3),
            Raw::Str(s) if s == "auto" => Ok(AirflowApi::Auto),
            Raw::Str(s) if s == "2" => Ok(AirflowApi::Airflow2),
            Raw::Str(s) if s == "3" => Ok(AirflowApi::Airflow3),
            _ => Err(serde::de::Error::custom(
                "expected \"auto\", 2 or 3 for `airflow_version`",
            )),
        }
    }
}

/// The `[trigger]` table. Unknown keys are ignored (the watcher keeps its own keys in the same
/// table and deserializes it with `#[serde(flatten)]`); [`TargetConfig::KEYS`] lists ours, and
/// [`TargetConfig::load_named`] warns about any other key.
#[derive(Clone, Deserialize)]
pub struct TargetConfig {
    /// Which engine: `webhook`, `pipelines`, `zenml`, `airflow` or `prefect`.
    pub kind: Kind,
    /// Webhook: the URL to POST to. Others: the server's base URL (`http://127.0.0.1:8731`,
    /// `http://127.0.0.1:8080`, `http://127.0.0.1:4200/api`, a ZenML workspace URL).
    #[serde(default)]
    pub url: Option<Url>,
    /// The default thing to start when a request names none (see [`crate::RunRequest::pipeline`]).
    #[serde(default)]
    pub pipeline: Option<String>,

    /// Webhook: env var holding the HMAC-SHA256 signing secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Webhook: file holding the signing secret (trailing newline ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Webhook: where to ask for a run's status when the receiver returned no `status_url`:
    /// a URL template in which `{id}` is replaced by the run id.
    #[serde(default)]
    pub status_url: Option<String>,

    /// Env var holding a bearer token: the runner's token (`pipelines`, default `PIPELINES_TOKEN`),
    /// a ZenML API key (`ZENKEY_...`) or token, an Airflow JWT, a Prefect Cloud API key.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding that token (e.g. the runner's generated token file).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Login user: Airflow (JWT or basic auth), ZenML password login, Prefect basic auth.
    #[serde(default)]
    pub username: Option<String>,
    /// Env var holding the password for `username`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password for `username`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Prefect: env var holding `user:password` for a self-hosted server's basic auth (the
    /// format of `PREFECT_API_AUTH_STRING`).
    #[serde(default)]
    pub auth_string_env: Option<String>,

    /// ZenML: the pipeline name that disambiguates snapshot names (snapshot names are unique
    /// per pipeline only).
    #[serde(default)]
    pub zenml_pipeline: Option<String>,
    /// ZenML: the project for list calls (servers >= 0.80); default `default`.
    #[serde(default)]
    pub project: Option<String>,
    /// ZenML: how config parameters map to step parameters, `parameter = "step.parameter"`.
    /// Default: `user_full_name = "get_or_create_user.user_full_name"`, `links = "crawl_links.links"`.
    #[serde(default)]
    pub step_params: Option<BTreeMap<String, String>>,

    /// Airflow: `"auto"` (default), `2` or `3`.
    #[serde(default)]
    pub airflow_version: AirflowApi,

    /// Per-request timeout (default 30s).
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// TCP connect timeout (default 10s).
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// How often `wait` polls the run's status (default 2s).
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,

    /// A bearer token held in memory by the embedding program (the watcher's embedded runner):
    /// wins over `token_env` and `token_file`; never read from a file.
    #[serde(skip)]
    pub token: Option<Secret>,
}

/// Default per-request timeout.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default connect timeout.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default status poll interval for `wait`.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Like a derived `Debug`, but a password inside `url` is redacted (the other secrets are only
/// ever names of env vars or files).
impl std::fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetConfig")
            .field("kind", &self.kind)
            .field("url", &self.url.as_ref().map(redact))
            .field("pipeline", &self.pipeline)
            .field("secret_env", &self.secret_env)
            .field("secret_file", &self.secret_file)
            .field("status_url", &self.status_url)
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("username", &self.username)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("auth_string_env", &self.auth_string_env)
            .field("zenml_pipeline", &self.zenml_pipeline)
            .field("project", &self.project)
            .field("step_params", &self.step_params)
            .field("airflow_version", &self.airflow_version)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("token", &self.token)
            .finish()
    }
}

impl TargetConfig {
    /// Every key this table understands (other keys are ignored).
    pub const KEYS: &'static [&'static str] = &[
        "kind",
        "url",
        "pipeline",
        "secret_env",
        "secret_file",
        "status_url",
        "token_env",
        "token_file",
        "username",
        "password_env",
        "password_file",
        "auth_string_env",
        "zenml_pipeline",
        "project",
        "step_params",
        "airflow_version",
        "request_timeout",
        "connect_timeout",
        "poll_interval",
    ];

    /// A target of `kind` at `url` with every other key unset.
    pub fn new(kind: Kind, url: Url) -> Self {
        TargetConfig {
            kind,
            url: Some(url),
            pipeline: None,
            secret_env: None,
            secret_file: None,
            status_url: None,
            token_env: None,
            token_file: None,
            username: None,
            password_env: None,
            password_file: None,
            auth_string_env: None,
            zenml_pipeline: None,
            project: None,
            step_params: None,
            airflow_version: AirflowApi::Auto,
            request_timeout: None,
            connect_timeout: None,
            poll_interval: None,
            token: None,
        }
    }

    /// Reads the table named `name` (dots walk into nested tables, so `trigger` reads a
    /// watcher.toml's `[trigger]` and `targets.prod` reads `[targets.prod]`) from a TOML file.
    /// Returns the target and the keys of that table this crate does not know.
    pub fn load_named(path: &Path, name: &str) -> Result<(TargetConfig, Vec<String>), Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
            path: path.to_owned(),
            problem: "cannot be read".into(),
            source: Some(Box::new(source)),
        })?;
        let root: toml::Table = toml::from_str(&text).map_err(|source| Error::ConfigFile {
            path: path.to_owned(),
            problem: "is not valid TOML".into(),
            source: Some(Box::new(source)),
        })?;
        let mut table = &root;
        for part in name.split('.') {
            table = match table.get(part) {
                Some(toml::Value::Table(inner)) => inner,
                _ => {
                    let known: Vec<&str> = root
                        .iter()
                        .filter(|(_, v)| v.is_table())
                        .map(|(k, _)| k.as_str())
                        .collect();
                    return Err(Error::ConfigFile {
                        path: path.to_owned(),
                        problem: format!(
                            "has no table `[{name}]` (tables at the top: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                        source: None,
                    });
                }
            };
        }
        let unknown = table
            .keys()
            .filter(|key| !Self::KEYS.contains(&key.as_str()))
            .cloned()
            .collect();
        let target =
            TargetConfig::deserialize(table.clone()).map_err(|source| Error::ConfigFile {
                path: path.to_owned(),
                problem: format!("table `[{name}]` is not a valid target"),
                source: Some(Box::new(source)),
            })?;
        Ok((target, unknown))
    }

    /// The base URL, required by every kind.
    pub(crate) fn require_url(&self) -> Result<Url, Error> {
        let url = self.url.clone().ok_or_else(|| Error::Config {
            key: "url".into(),
            problem: format!("is required for kind = \"{}\"", self.kind),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config {
                key: "url".into(),
                problem: format!("`{}` must be an http:// or https:// URL", redact(&url)),
            });
        }
        Ok(url)
    }

    /// The bearer token named by `token_env`/`token_file`, if any.
    pub(crate) fn token(&self) -> Result<Option<Secret>, Error> {
        if let Some(token) = &self.token {
            return Ok(Some(token.clone()));
        }
        Secret::resolve(
            "token",
            self.token_env.as_deref(),
            self.token_file.as_deref(),
        )
    }

    /// The password named by `password_env`/`password_file`, if any.
    pub(crate) fn password(&self) -> Result<Option<Secret>, Error> {
        Secret::resolve(
            "password",
            self.password_env.as_deref(),
            self.password_file.as_deref(),
        )
    }

    /// The webhook signing secret named by `secret_env`/`secret_file`, if any.
    pub(crate) fn signing_secret(&self) -> Result<Option<Secret>, Error> {
        Secret::resolve(
            "secret",
            self.secret_env.as_deref(),
            self.secret_file.as_deref(),
        )
    }

    /// Username and password from `username` + `password_*` or from `auth_string_env` (`user:pass`).
    pub(crate) fn basic_credentials(&self) -> Result<Option<(String, Secret)>, Error> {
        if let Some(var) = &self.auth_string_env {
            let secret = Secret::from_env("auth_string_env", var)?;
            let (user, pass) = secret
                .expose()
                .split_once(':')
                .ok_or_else(|| Error::Config {
                    key: "auth_string_env".into(),
                    problem: format!("env var `{var}` must hold `user:password`"),
                })?;
            return Ok(Some((
                user.to_owned(),
                Secret::new(pass, format!("env var `{var}`")),
            )));
        }
        match (&self.username, self.password()?) {
            (Some(user), Some(pass)) => Ok(Some((user.clone(), pass))),
            (Some(_), None) => Err(Error::Config {
                key: "password_env".into(),
                problem: "is required when `username` is set (or use `password_file`)".into(),
            }),
            (None, Some(_)) => Err(Error::Config {
                key: "username".into(),
                problem: "is required when `password_env`/`password_file` is set".into(),
            }),
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        self.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL)
    }
}

/// A secret value: `Debug` and `Display` print where it came from, never the value.
#[derive(Clone)]
pub struct Secret {
    value: String,
    origin: String,
}

impl Secret {
    /// Wraps `value`; `origin` describes where it came from (e.g. "env var `X`").
    pub fn new(value: impl Into<String>, origin: impl Into<String>) -> Self {
        Secret {
            value: value.into(),
            origin: origin.into(),
        }
    }

    /// The secret itself: only for building a request.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Where the secret came from, for hints in error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn from_env(key: &str, var: &str) -> Result<Secret, Error> {
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Secret::new(value, format!("env var `{var}`"))),
            Ok(_) => Err(Error::Config {
                key: key.into(),
                problem: format!("names env var `{var}`, which is empty (hint: export it)"),
            }),
            Err(_) => Err(Error::Config {
                key: key.into(),
                problem: format!("names env var `{var}`, which is not set (hint: export it)"),
            }),
        }
    }

    fn from_file(key: &str, path: &Path) -> Result<Secret, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::SecretFile {
            key: key.into(),
            path: path.to_owned(),
            source,
        })?;
        let value = text.trim_end_matches(['\r', '\n']);
        if value.is_empty() {
            return Err(Error::Config {
                key: key.into(),
                problem: format!("names `{}`, which is empty", path.display()),
            });
        }
        Ok(Secret::new(value, format!("file `{}`", path.display())))
    }

    /// `<what>_env` wins over `<what>_file`; neither set gives `None`.
    fn resolve(
        what: &str,
        env: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<Secret>, Error> {
        match (env, file) {
            (Some(var), _) => Secret::from_env(&format!("{what}_env"), var).map(Some),
            (None, Some(path)) => Secret::from_file(&format!("{what}_file"), path).map(Some),
            (None, None) => Ok(None),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted> from {})", self.origin)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret from {}>", self.origin)
    }
}

/// A URL for messages and logs: any password in it is replaced.
pub(crate) fn redact(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut clean = url.clone();
    // A URL with a password has a host, so it can always take another one.
    match clean.set_password(Some("redacted")) {
        Ok(()) => clean.to_string(),
        Err(()) => "<a URL with a password>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_url_passwords() {
        let url = Url::parse("http://admin:hunter2@127.0.0.1:4200/api").unwrap();
        assert!(!redact(&url).contains("hunter2"));
    }

    #[test]
    fn secret_debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2", "env var `X`");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
    }

    #[test]
    fn target_ignores_foreign_keys_and_parses_durations() {
        let toml = r#"
            kind = "webhook"
            url = "http://127.0.0.1:9000/hook"
            pipeline = "digital_data_etl"
            min_interval = "5m"
            poll_interval = "250ms"
            airflow_version = 3
        "#;
        let target: TargetConfig = toml::from_str(toml).unwrap();
        assert_eq!(target.kind, Kind::Webhook);
        assert_eq!(target.poll_interval(), Duration::from_millis(250));
        assert_eq!(target.airflow_version, AirflowApi::Airflow3);
    }

    #[test]
    fn target_works_flattened_into_another_table() {
        #[derive(Deserialize)]
        struct Watcher {
            #[serde(default)]
            #[allow(dead_code)]
            chain: Option<String>,
            #[serde(flatten)]
            target: TargetConfig,
        }
        let toml = r#"
            kind = "pipelines"
            url = "http://127.0.0.1:8731"
            chain = "llm-twin"
            request_timeout = "5s"
        "#;
        let watcher: Watcher = toml::from_str(toml).unwrap();
        assert_eq!(watcher.target.kind, Kind::Pipelines);
        assert_eq!(watcher.target.request_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn unknown_kind_lists_the_known_ones() {
        let err = "dagster".parse::<Kind>().unwrap_err().to_string();
        assert!(
            err.contains("webhook, pipelines, zenml, airflow, prefect"),
            "{err}"
        );
    }

    #[test]
    fn load_named_walks_dotted_names_and_reports_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.toml");
        std::fs::write(
            &path,
            r#"
            [trigger]
            kind = "webhook"
            url = "http://127.0.0.1:1/hook"
            chain = "x"
            [targets.prod]
            kind = "prefect"
            url = "http://127.0.0.1:4200/api"
            "#,
        )
        .unwrap();
        let (target, unknown) = TargetConfig::load_named(&path, "trigger").unwrap();
        assert_eq!(target.kind, Kind::Webhook);
        assert_eq!(unknown, vec!["chain".to_owned()]);
        let (target, _) = TargetConfig::load_named(&path, "targets.prod").unwrap();
        assert_eq!(target.kind, Kind::Prefect);
        let err = TargetConfig::load_named(&path, "nope")
            .unwrap_err()
            .to_string();
        assert!(err.contains("targets, trigger"), "{err}");
    }
}
