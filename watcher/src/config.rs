//! config.rs: the `watcher.toml` file: typed settings, defaults, and validation that names the
//! file, the key and what was expected. Nothing here touches the network.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatcherSettings {
    /// Directory of the sled store (and its lock file).
    pub state_dir: PathBuf,
    /// Where generated pipeline configs are written.
    pub output_dir: PathBuf,
    /// Default poll interval for every source.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// New items of one author found within this window form one batch (daemon only).
    #[serde(with = "humantime_serde")]
    pub batch_window: Duration,
    /// Loopback address of the daemon's status endpoint.
    pub listen: SocketAddr,
    /// Start a run when a known article's content changes, not only for new articles.
    pub trigger_on_update: bool,
    /// Extra query parameters stripped from links (besides utm_*, fbclid, gclid, mc_cid, mc_eid).
    pub tracking_params: Vec<String>,
    /// Query parameters stripped only on one host: `{ "substack.com" = ["r"] }`. A host entry
    /// applies to its subdomains too.
    pub tracking_params_by_host: std::collections::BTreeMap<String, Vec<String>>,
    /// Sources polled at once.
    pub concurrency: usize,
    /// Requests in flight to one host at once.
    pub per_host: usize,
    /// Lower bound for any poll interval (configured, adaptive, cron, TTL).
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Upper bound for any wait (TTL, Retry-After, error backoff): a source is never dropped.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Random spread of each wait, as a fraction (0.1 = ±10%).
    pub jitter: f64,
    /// Consecutive failures after which a source is shown as failing (and a warning logged).
    pub failing_after: u32,
    /// Poll authors who publish often more often (within min_interval..max_interval).
    pub adaptive: bool,
    /// Done deliveries (whose run ended) are removed from the store after this long.
    #[serde(with = "humantime_serde")]
    pub keep_deliveries: Duration,
}

impl Default for WatcherSettings {
    fn default() -> Self {
        WatcherSettings {
            state_dir: PathBuf::from("state"),
            output_dir: PathBuf::from("configs/generated"),
            interval: Duration::from_secs(30 * 60),
            batch_window: Duration::from_secs(120),
            listen: SocketAddr::from(([127, 0, 0, 1], 9860)),
            trigger_on_update: false,
            tracking_params: Vec::new(),
            tracking_params_by_host: Default::default(),
            concurrency: 32,
            per_host: 2,
            min_interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(12 * 3600),
            jitter: 0.1,
            failing_after: 5,
            adaptive: false,
            keep_deliveries: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchSettings {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Largest response body accepted, after decompression.
    pub max_body_bytes: u64,
    pub max_redirects: usize,
    /// Overrides the default User-Agent.
    pub user_agent: Option<String>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 10 * 1024 * 1024,
            max_redirects: 10,
            user_agent: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// One config per author: `parameters: {user_full_name, links}`.
    #[default]
    DigitalDataEtl,
    /// One config for every author with news: `parameters: {author_links: [...]}`.
    EndToEndData,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::DigitalDataEtl => "digital_data_etl",
            OutputFormat::EndToEndData => "end_to_end_data",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSettings {
    pub format: OutputFormat,
}

/// The `[trigger]` table: the watcher's own keys plus the trigger client's target definition
/// (kind, url, secrets...), which the trigger client validates.
#[derive(Debug, Clone)]
pub struct TriggerSettings {
    /// What to start, in the engine's terms (chain, DAG id, deployment...).
    pub pipeline: String,
    /// Deliveries that failed this many times move to `failed` (see `watcher retry`).
    pub max_attempts: u32,
    /// First delay between delivery attempts; doubles per attempt up to `retry_max_delay`.
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    /// Cost guard: new batches wait until this long after the previous run started, and what
    /// arrives meanwhile joins them.
    pub min_interval: Duration,
    /// How long `watcher once` waits for the runs it started (embedded runner), and how often the
    /// daemon asks an engine about runs it follows.
    pub wait_timeout: Duration,
    pub follow_interval: Duration,
    /// `kind = "embedded"`: the runner inside the watcher.
    pub embedded: Option<EmbeddedSettings>,
    /// The whole table, handed to the trigger client.
    pub table: toml::Table,
}

/// `[trigger] kind = "embedded"`: run the pipelines runner inside the watcher.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    /// Directory of chain files (absolute).
    pub chains_dir: PathBuf,
    /// How long running stages may finish when the watcher stops.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct RawTrigger {
    pipeline: String,
    max_attempts: u32,
    #[serde(with = "humantime_serde")]
    retry_base_delay: Duration,
    #[serde(with = "humantime_serde")]
    retry_max_delay: Duration,
    #[serde(with = "humantime_serde")]
    min_interval: Duration,
    #[serde(with = "humantime_serde")]
    wait_timeout: Duration,
    #[serde(with = "humantime_serde")]
    follow_interval: Duration,
    chains_dir: PathBuf,
    #[serde(with = "humantime_serde")]
    shutdown_grace: Duration,
    kind: String,
}

impl Default for RawTrigger {
    fn default() -> Self {
        RawTrigger {
            pipeline: "digital_data_etl".into(),
            max_attempts: 10,
            retry_base_delay: Duration::from_secs(30),
            retry_max_delay: Duration::from_secs(3600),
            min_interval: Duration::ZERO,
            wait_timeout: Duration::from_secs(30 * 60),
            follow_interval: Duration::from_secs(30),
            chains_dir: PathBuf::from("pipelines/chains"),
            shutdown_grace: Duration::from_secs(300),
            kind: String::new(),
        }
    }
}

/// Keys of `[trigger]` that belong to the watcher, not to the trigger client.
pub const WATCHER_TRIGGER_KEYS: &[&str] = &[
    "max_attempts",
    "retry_base_delay",
    "retry_max_delay",
    "min_interval",
    "wait_timeout",
    "follow_interval",
    "chains_dir",
    "shutdown_grace",
];

/// The trigger kind that runs the pipelines runner inside the watcher.
pub const EMBEDDED: &str = "embedded";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    /// RSS / Atom / JSON Feed URLs, or tables `{ url, interval, cron }`.
    #[serde(default)]
    pub feeds: Vec<FeedSpec>,
    /// Pages without a feed: `{ url, selector }` picks article links by CSS selector; a bare URL
    /// (or a table without selector) discovers the site's feed.
    #[serde(default)]
    pub sites: Vec<SiteSpec>,
    /// Sitemaps (or sitemap indexes, `.xml.gz` too): `"url"` or `{ url, include }`.
    #[serde(default)]
    pub sitemaps: Vec<SitemapSpec>,
    /// Medium handles: `"@user"` → `https://medium.com/feed/@user`.
    #[serde(default)]
    pub medium: OneOrMany,
    /// Substack names: `"name"` → `https://name.substack.com/feed`.
    #[serde(default)]
    pub substack: OneOrMany,
    /// Treat what the first poll finds as new instead of recording a baseline.
    #[serde(default)]
    pub backfill: bool,
    /// Poll interval for this author's sources (default: `[watcher] interval`).
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Poll on a 5-field cron expression (UTC) instead of an interval.
    #[serde(default)]
    pub cron: Option<String>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Default)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::None => vec![],
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A source given as a table: its URL, schedule overrides, and the keys of its kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    pub url: String,
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(default)]
    pub cron: Option<String>,
    /// `sites`: the CSS selector of article links (none: discover the site's feed).
    #[serde(default)]
    pub selector: Option<String>,
    /// `sitemaps`: keep only URLs whose path contains this.
    #[serde(default)]
    pub include: Option<String>,
}

/// A source: a URL, or a table `{ url, ... }`.
#[derive(Debug, Clone)]
pub enum Spec {
    Url(String),
    Table(SourceTable),
}

// Hand-written instead of `#[serde(untagged)]`, whose only error is "did not match any variant":
// a typo inside a source table must be named.
impl<'de> Deserialize<'de> for Spec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(url) => Ok(Spec::Url(url)),
            toml::Value::Table(t) => SourceTable::deserialize(toml::Value::Table(t))
                .map(Spec::Table)
                .map_err(|e| D::Error::custom(e.message().trim())),
            other => Err(D::Error::custom(format!(
                "expected a URL string or a table {{ url = \"...\" }}, got {}",
                other.type_str()
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(one) => Ok(OneOrMany::One(one)),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    other => Err(D::Error::custom(format!(
                        "expected a list of strings, found {}",
                        other.type_str()
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(OneOrMany::Many),
            other => Err(D::Error::custom(format!(
                "expected a string or a list of strings, got {}",
                other.type_str()
            ))),
        }
    }
}

pub type FeedSpec = Spec;
pub type SiteSpec = Spec;
pub type SitemapSpec = Spec;

impl Spec {
    pub fn table(&self) -> SourceTable {
        match self {
            Spec::Url(url) => SourceTable {
                url: url.clone(),
                ..SourceTable::default()
            },
            Spec::Table(t) => t.clone(),
        }
    }
}

/// What kind of source a URL is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Feed,
    /// An HTML page; article links picked by a CSS selector.
    Page {
        selector: String,
    },
    /// A site whose feed is found by autodiscovery.
    Discover,
    Sitemap {
        include: Option<String>,
    },
}

/// One source, resolved from the config (shortcuts expanded, schedule overrides applied).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub author: String,
    /// The URL as configured (after shortcut expansion): the source's key in the store.
    pub url: String,
    pub kind: SourceKind,
    pub backfill: bool,
    pub interval: Duration,
    pub cron: Option<String>,
}

impl Config {
    /// Every source of every author, in config order.
    pub fn sources(&self) -> Vec<SourceConfig> {
        let mut out = Vec::new();
        for a in &self.authors {
            let mut push = |url: String,
                            kind: SourceKind,
                            interval: Option<Duration>,
                            cron: Option<String>| {
                out.push(SourceConfig {
                    author: a.name.clone(),
                    url,
                    kind,
                    backfill: a.backfill,
                    interval: interval.or(a.interval).unwrap_or(self.watcher.interval),
                    cron: cron.or_else(|| a.cron.clone()),
                });
            };
            for f in &a.feeds {
                let t = f.table();
                push(t.url, SourceKind::Feed, t.interval, t.cron);
            }
            for m in a.medium.items() {
                push(medium_feed(m), SourceKind::Feed, None, None);
            }
            for s in a.substack.items() {
                push(substack_feed(s), SourceKind::Feed, None, None);
            }
            for site in &a.sites {
                let t = site.table();
                let kind = match t.selector {
                    Some(selector) => SourceKind::Page { selector },
                    None => SourceKind::Discover,
                };
                push(t.url, kind, t.interval, t.cron);
            }
            for sm in &a.sitemaps {
                let t = sm.table();
                push(
                    t.url,
                    SourceKind::Sitemap { include: t.include },
                    t.interval,
                    t.cron,
                );
            }
        }
        out
    }
}

impl SourceConfig {
    /// The source's key in the store.
    pub fn key(&self) -> String {
        crate::store::source_key(&self.author, &self.url)
    }

    /// The host polled (for the per-host limit).
    pub fn host(&self) -> String {
        Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default()
    }

    /// The scheduling policy of this source.
    pub fn policy(&self, w: &WatcherSettings) -> crate::schedule::Policy {
        crate::schedule::Policy {
            interval: self.interval,
            min_interval: w.min_interval,
            max_interval: w.max_interval,
            jitter: w.jitter,
            cron: self
                .cron
                .as_deref()
                .and_then(|c| crate::schedule::parse_cron(c).ok()),
            adaptive: w.adaptive,
        }
    }
}

/// `@user` (or `user`) → `https://medium.com/feed/@user`.
pub fn medium_feed(handle: &str) -> String {
    format!(
        "https://medium.com/feed/@{}",
        handle.trim().trim_start_matches('@')
    )
}

/// `name` → `https://name.substack.com/feed`.
pub fn substack_feed(name: &str) -> String {
    format!("https://{}.substack.com/feed", name.trim())
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
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read config `{path}`: {source}; hint: pass --config PATH or set WATCHER_CONFIG"
    )]
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
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
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
        let trigger = validate_trigger(raw.trigger, &base, &mut problems);
        let mut watcher = raw.watcher;
        let probe = Config {
            path: path.to_path_buf(),
            watcher: watcher.clone(),
            fetch: raw.fetch.clone(),
            output: raw.output.clone(),
            trigger: TriggerSettings {
                pipeline: String::new(),
                max_attempts: 1,
                retry_base_delay: Duration::ZERO,
                retry_max_delay: Duration::ZERO,
                min_interval: Duration::ZERO,
                wait_timeout: Duration::ZERO,
                follow_interval: Duration::ZERO,
                embedded: None,
                table: toml::Table::new(),
            },
            authors: raw.authors.clone(),
        };
        validate_authors(&probe.sources(), &raw.authors, &mut problems);
        if watcher.min_interval > watcher.max_interval {
            problems.push(problem(
                "watcher.min_interval",
                "expected min_interval <= max_interval",
            ));
        }
        for s in probe.sources() {
            if s.cron.is_none()
                && (s.interval < watcher.min_interval || s.interval > watcher.max_interval)
            {
                problems.push(problem(
                    format!("interval of `{}`", s.url),
                    format!(
                        "{} is outside min_interval..max_interval ({}..{}); change the interval or the bounds",
                        humantime::format_duration(s.interval),
                        humantime::format_duration(watcher.min_interval),
                        humantime::format_duration(watcher.max_interval)
                    ),
                ));
                break;
            }
        }
        if !(0.0..=0.5).contains(&watcher.jitter) {
            problems.push(problem(
                "watcher.jitter",
                "expected a fraction from 0.0 to 0.5",
            ));
        }
        if watcher.per_host == 0 {
            problems.push(problem("watcher.per_host", "expected at least 1"));
        }
        if watcher.failing_after == 0 {
            problems.push(problem("watcher.failing_after", "expected at least 1"));
        }
        if watcher.max_interval > Duration::from_secs(7 * 24 * 3600) {
            problems.push(problem(
                "watcher.max_interval",
                "expected at most 7d, so that no source is silently disabled",
            ));
        }
        if !watcher.listen.ip().is_loopback() {
            problems.push(problem(
                "watcher.listen",
                format!(
                    "`{}` is not a loopback address; the status endpoint has no authentication, so it only listens on 127.0.0.1 or ::1",
                    watcher.listen
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for src in probe.sources() {
            if !seen.insert((
                src.author.clone(),
                src.url.trim_end_matches('/').to_string(),
            )) {
                problems.push(problem(
                    format!("authors `{}`", src.author),
                    format!("`{}` is listed twice (a shortcut and a URL can name the same feed); keep one", src.url),
                ));
            }
        }
        if watcher.interval.is_zero() {
            problems.push(problem(
                "watcher.interval",
                "expected a duration above zero, such as \"30m\"",
            ));
        }
        if watcher.concurrency == 0 {
            problems.push(problem("watcher.concurrency", "expected at least 1"));
        }
        if raw.fetch.max_body_bytes == 0 {
            problems.push(problem("fetch.max_body_bytes", "expected at least 1"));
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        watcher.state_dir = base.join(&watcher.state_dir);
        watcher.output_dir = base.join(&watcher.output_dir);
        Ok(Config {
            path: path.to_path_buf(),
            watcher,
            fetch: raw.fetch,
            output: raw.output,
            trigger: trigger.expect("validated above"),
            authors: raw.authors,
        })
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        key: key.into(),
        message: message.into(),
    }
}

fn validate_trigger(
    table: Option<toml::Table>,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<TriggerSettings> {
    let Some(table) = table else {
        problems.push(problem(
            "trigger",
            "missing table; expected for example [trigger] kind = \"webhook\" url = \"http://127.0.0.1:9000/hook\"",
        ));
        return None;
    };
    let raw: RawTrigger = match toml::Value::Table(table.clone()).try_into() {
        Ok(raw) => raw,
        Err(e) => {
            problems.push(problem("trigger", e.to_string().trim().to_string()));
            return None;
        }
    };
    if raw.max_attempts == 0 {
        problems.push(problem("trigger.max_attempts", "expected at least 1"));
    }
    let embedded = (raw.kind == EMBEDDED).then(|| EmbeddedSettings {
        chains_dir: base.join(&raw.chains_dir),
        shutdown_grace: raw.shutdown_grace,
    });
    if let Some(e) = &embedded {
        if let Err(message) = crate::embedded::validate(&e.chains_dir, &raw.pipeline) {
            problems.push(problem("trigger.chains_dir", message));
        }
        for key in table.keys() {
            if key != "kind" && key != "pipeline" && !WATCHER_TRIGGER_KEYS.contains(&key.as_str()) {
                problems.push(problem(
                    format!("trigger.{key}"),
                    "not a key of kind = \"embedded\" (the runner runs inside the watcher: no url or token)",
                ));
            }
        }
    } else if let Err(message) = crate::deliver::validate_target(&table) {
        problems.push(problem("trigger", message));
    }
    Some(TriggerSettings {
        pipeline: raw.pipeline,
        max_attempts: raw.max_attempts,
        retry_base_delay: raw.retry_base_delay,
        retry_max_delay: raw.retry_max_delay,
        min_interval: raw.min_interval,
        wait_timeout: raw.wait_timeout,
        follow_interval: raw.follow_interval,
        embedded,
        table,
    })
}

/// `selector` belongs to `sites`, `include` to `sitemaps`.
fn misplaced(problems: &mut Vec<ConfigProblem>, key: String, t: &SourceTable, list: &str) {
    if t.selector.is_some() && list != "sites" {
        problems.push(problem(
            format!("{key}.selector"),
            format!("`selector` is a key of `sites`, not of `{list}`"),
        ));
    }
    if t.include.is_some() && list != "sitemaps" {
        problems.push(problem(
            format!("{key}.include"),
            format!("`include` is a key of `sitemaps`, not of `{list}`"),
        ));
    }
}

fn validate_authors(
    config_sources: &[SourceConfig],
    authors: &[Author],
    problems: &mut Vec<ConfigProblem>,
) {
    if authors.is_empty() {
        problems.push(problem(
            "authors",
            "no [[authors]] table; expected at least one author with feeds to watch",
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, author) in authors.iter().enumerate() {
        if author.name.trim().is_empty() {
            problems.push(problem(
                format!("authors[{i}].name"),
                "expected a non-empty name",
            ));
        } else if !names.insert(author.name.trim().to_lowercase()) {
            problems.push(problem(
                format!("authors[{i}].name"),
                format!("`{}` is listed twice; merge the two tables", author.name),
            ));
        }
        let n = config_sources
            .iter()
            .filter(|s| s.author == author.name)
            .count();
        if n == 0 {
            problems.push(problem(
                format!("authors[{i}]"),
                format!(
                    "author `{}` has no sources; add feeds = [\"https://...\"] (or sites, sitemaps, medium, substack)",
                    author.name
                ),
            ));
        }
        fn check(problems: &mut Vec<ConfigProblem>, key: String, url: &str, cron: Option<&String>) {
            if let Err(message) = parse_source_url(url) {
                problems.push(problem(key.clone(), message));
            }
            if let Some(cron) = cron
                && let Err(message) = crate::schedule::parse_cron(cron)
            {
                problems.push(problem(format!("{key}.cron"), message));
            }
        }
        if let Some(cron) = &author.cron
            && let Err(message) = crate::schedule::parse_cron(cron)
        {
            problems.push(problem(format!("authors[{i}].cron"), message));
        }
        for (j, f) in author.feeds.iter().enumerate() {
            let t = f.table();
            check(
                problems,
                format!("authors[{i}].feeds[{j}]"),
                &t.url,
                t.cron.as_ref(),
            );
            misplaced(problems, format!("authors[{i}].feeds[{j}]"), &t, "feeds");
        }
        for (j, f) in author.sites.iter().enumerate() {
            let t = f.table();
            misplaced(problems, format!("authors[{i}].sites[{j}]"), &t, "sites");
            check(
                problems,
                format!("authors[{i}].sites[{j}]"),
                &t.url,
                t.cron.as_ref(),
            );
            if let Some(sel) = &t.selector
                && let Err(message) = crate::sites::validate_selector(sel)
            {
                problems.push(problem(
                    format!("authors[{i}].sites[{j}].selector"),
                    message,
                ));
            }
        }
        for (j, f) in author.sitemaps.iter().enumerate() {
            let t = f.table();
            misplaced(
                problems,
                format!("authors[{i}].sitemaps[{j}]"),
                &t,
                "sitemaps",
            );
            check(
                problems,
                format!("authors[{i}].sitemaps[{j}]"),
                &t.url,
                t.cron.as_ref(),
            );
        }
        for (j, m) in author.medium.items().iter().enumerate() {
            check(
                problems,
                format!("authors[{i}].medium[{j}]"),
                &medium_feed(m),
                None,
            );
        }
        for (j, m) in author.substack.items().iter().enumerate() {
            check(
                problems,
                format!("authors[{i}].substack[{j}]"),
                &substack_feed(m),
                None,
            );
        }
    }
}

/// Parses a configured source URL: absolute http(s) only.
pub fn parse_source_url(text: &str) -> Result<Url, String> {
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        Ok(url) => Err(format!(
            "expected an http(s) URL, got scheme `{}` in `{text}`",
            url.scheme()
        )),
        Err(url::ParseError::RelativeUrlWithoutBase)
            if Url::parse(&format!("https://{}", text.trim())).is_ok() =>
        {
            Err(format!(
                "expected an absolute http(s) URL, got `{text}`; did you mean `https://{}`?",
                text.trim()
            ))
        }
        Err(e) => Err(format!(
            "expected an absolute http(s) URL, got `{text}` ({e})"
        )),
    }
}

/// The candidate closest to `word` (a likely typo), if any is close enough.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bad_duration_is_a_syntax_error_with_position() {
        let text = GOOD.replace("\"10m\"", "\"ten minutes\"");
        let err = Config::parse(Path::new("w.toml"), &text).unwrap_err();
        assert!(err.to_string().contains("line 4"), "{err}");
    }
}
