//! settings.rs: the tables of `watcher.toml` that are plain settings (`[watcher]`, `[fetch]`,
//! `[output]`, `[trigger]`), their defaults, and the keys of `[trigger]` that are the watcher's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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
    /// Hold floods (see `config::hold`): new items of a poll that look like a flood are recorded
    /// and held until `watcher release` instead of starting a run.
    pub hold: bool,
    /// A poll with more new items than this is a flood.
    pub hold_above: usize,
    /// A poll whose new items make up this share of what the source returned (and are at least
    /// `hold_share_min`) is a flood.
    pub hold_share: f64,
    pub hold_share_min: usize,
    /// `/healthz` answers 503 when no poll has succeeded for longer than this.
    #[serde(with = "humantime_serde")]
    pub health_poll_age: Duration,
    /// `/healthz` answers 503 when the oldest pending delivery is older than this.
    #[serde(with = "humantime_serde")]
    pub health_delivery_age: Duration,
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
            hold: true,
            hold_above: 20,
            hold_share: 0.8,
            hold_share_min: 5,
            health_poll_age: Duration::from_secs(24 * 3600),
            health_delivery_age: Duration::from_secs(24 * 3600),
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
    /// Largest sitemap file accepted (the index and each child), after decompression: sitemaps
    /// get their own cap, larger than `max_body_bytes` (the protocol allows 50 MB).
    pub max_sitemap_bytes: u64,
    /// Most entries one sitemap file may list (the protocol's 50,000).
    pub max_sitemap_urls: usize,
    /// Most items one poll may read in all (a sitemap index and its children together); over
    /// it the poll fails and records nothing.
    pub max_poll_items: usize,
    /// Most bytes one poll may fetch in all (index plus children, discovery probes); over it the
    /// poll fails and records nothing.
    pub max_poll_bytes: u64,
    /// Longest GUID kept; a longer one is cut.
    pub max_guid_bytes: usize,
    /// Longest title kept; a longer one is cut.
    pub max_title_bytes: usize,
    /// Longest article URL accepted; an item with a longer one is skipped.
    pub max_url_bytes: usize,
    /// How long one poll may take in all (every request and parse of it); past it the poll fails
    /// and the source backs off.
    #[serde(with = "humantime_serde")]
    pub poll_deadline: Duration,
    /// Work units one poll's parsing may spend (about one per byte read per pass, one per
    /// element visited); past it the poll fails.
    pub parse_budget: u64,
    /// Let requests and item links reach non-public addresses (loopback, private, link-local,
    /// metadata...). Off: see `allow_networks` and the README's "Security" section.
    pub allow_private_networks: bool,
    /// Non-public networks that may be reached all the same, as CIDRs (`"10.1.0.0/16"`) or
    /// single addresses.
    pub allow_networks: Vec<String>,
    /// The HTTP proxy every request goes through (`"http://proxy.lan:3128"`). Environment
    /// proxies (`HTTP_PROXY`, ...) are ignored: only this setting enables one. Names are then
    /// resolved by the proxy, so only IP literals are checked against the address rule.
    pub proxy: Option<String>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 10 * 1024 * 1024,
            max_redirects: 10,
            user_agent: None,
            max_sitemap_bytes: 50 * 1024 * 1024,
            max_sitemap_urls: 50_000,
            max_poll_items: 100_000,
            max_poll_bytes: 64 * 1024 * 1024,
            max_guid_bytes: 2 * 1024,
            max_title_bytes: 1024,
            max_url_bytes: 8 * 1024,
            poll_deadline: Duration::from_secs(5 * 60),
            parse_budget: crate::work::DEFAULT_PARSE_BUDGET,
            allow_private_networks: false,
            allow_networks: Vec::new(),
            proxy: None,
        }
    }
}

/// Parses one `[fetch] allow_networks` entry: a CIDR (`10.0.0.0/8`) or a single address.
pub fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    (text.parse::<ipnet::IpNet>().ok()).or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

impl FetchSettings {
    /// The `allow_networks` entries that are neither a CIDR nor an address.
    pub fn invalid_networks(&self) -> Vec<&str> {
        (self.allow_networks.iter())
            .filter(|n| parse_network(n).is_none())
            .map(String::as_str)
            .collect()
    }

    /// The keys of the size and count limits that are zero (each must be at least 1).
    pub fn zero_limits(&self) -> Vec<&'static str> {
        let zero = [
            ("max_sitemap_bytes", self.max_sitemap_bytes == 0),
            ("max_sitemap_urls", self.max_sitemap_urls == 0),
            ("max_poll_items", self.max_poll_items == 0),
            ("max_poll_bytes", self.max_poll_bytes == 0),
            ("max_guid_bytes", self.max_guid_bytes == 0),
            ("max_title_bytes", self.max_title_bytes == 0),
            ("max_url_bytes", self.max_url_bytes == 0),
            ("parse_budget", self.parse_budget == 0),
        ];
        zero.into_iter()
            .filter(|(_, is_zero)| *is_zero)
            .map(|(key, _)| key)
            .collect()
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
    /// The user's own pipeline config (YAML) to splice the new links into: everything but the
    /// author's name and links is kept byte for byte (`emit::template`). Absolute after loading.
    pub template: Option<PathBuf>,
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
    /// How long a followed run's status may stay unavailable before the run counts as lost (and
    /// `redeliver --force` may start it again).
    pub run_lost_after: Duration,
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
pub(super) struct RawTrigger {
    pub(super) pipeline: String,
    pub(super) max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub(super) retry_base_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) retry_max_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) min_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) wait_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) follow_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) run_lost_after: Duration,
    pub(super) chains_dir: PathBuf,
    #[serde(with = "humantime_serde")]
    pub(super) shutdown_grace: Duration,
    pub(super) kind: String,
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
            run_lost_after: Duration::from_secs(24 * 3600),
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
    "run_lost_after",
    "chains_dir",
    "shutdown_grace",
];

/// The trigger kind that runs the pipelines runner inside the watcher.
pub const EMBEDDED: &str = "embedded";
