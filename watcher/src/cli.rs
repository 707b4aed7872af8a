//! cli.rs: the command line (clap): commands, flags and their help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Watches authors' feeds and starts the LLM Twin's pipelines when they publish.
///
/// The watcher polls every source in the config, remembers every article it has seen in a sled
/// store, and when an author publishes something new it writes a fresh pipeline config listing
/// the new links (the `digital_data_etl` format: `parameters: {user_full_name, links}`) and
/// starts a pipeline run through the configured trigger. The first poll of a source records a
/// baseline and starts nothing; an article is never delivered twice. A flood of new items in
/// one poll is held, not triggered, until `watcher release` (or `watcher discard`).
#[derive(Debug, Parser)]
#[command(
    name = "watcher",
    version,
    about,
    long_about,
    after_help = EXIT_STATUS,
    after_long_help = AFTER_HELP
)]
pub struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        env = "WATCHER_CONFIG",
        default_value = crate::config::DEFAULT_CONFIG,
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log line format on stderr: `text`, or `json` (one JSON object a line, with the same span
    /// fields: `source`, `url`, `run_id`...).
    #[arg(
        long,
        global = true,
        env = "WATCHER_LOG_FORMAT",
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub log_format: pipelines::log_format::LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The exit-code contract (`watcher::error::exit`), shown by `-h` too.
const EXIT_STATUS: &str = "\
Exit status: 0 ok, 1 a run/source/delivery failed, 2 bad input or state dir in use,
3 engine unreachable, 4 the store failed (`--help` says more)";

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  a run, a source or a delivery failed
  2  bad input: the command line or the config is invalid, or the state dir is in use
  3  the engine (or the daemon holding the store) could not be reached
  4  the store failed (disk full, I/O error, permissions): `run` answers /healthz with 503 and
     the reason, stops polling, drains and exits 4, so systemd (Restart=on-failure) restarts it
     on a fresh store; nothing staged is lost. An unreadable record is skipped and logged.

Files:
  watcher.toml       the config (see README.md, \"Config reference\")
  <state_dir>/db     the sled store: sources, known articles, outbox
  <state_dir>/lock   holds the pid of the process using the store
  <output_dir>/*.yaml  one generated pipeline config per batch

Examples:
  watcher demo                       see it all work, offline
  watcher check                      validate watcher.toml, no network
  watcher check --explain-link URL   how a link is read: canonical link, identity key, rule
  watcher once --dry-run             show what a pass would deliver
  watcher once                       one pass (cron-friendly)
  watcher run                        the daemon
  watcher status                     works while the daemon runs, too
  watcher held                       list the items held as a flood
  watcher release URL                deliver a source's held items (--all: every source's)
  watcher retry                      re-queue failed deliveries
  watcher import-opml subs.opml      add a feed reader's subscriptions
  watcher export-opml > subs.opml    the reverse";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: poll every source on its interval until SIGINT or SIGTERM.
    ///
    /// Serves /healthz, /readyz, /metrics (Prometheus), /status and a dashboard page at / on
    /// [watcher] listen (loopback: reach the page through an SSH tunnel; it answers only requests
    /// whose Host is loopback, and POSTs only with the header `X-Watcher-Control: 1`, which the
    /// page sends). /healthz answers 503 with the reason when the store failed, no poll succeeded
    /// for [watcher] health_poll_age, or a delivery is pending for longer than
    /// health_delivery_age. Under systemd (Type=notify) it sends READY=1 and STOPPING=1, and
    /// pings the watchdog (WatchdogSec) only while its scheduler makes progress. Each poll is bounded by
    /// [fetch] poll_deadline and parse_budget, and by max_poll_items and max_poll_bytes (a sitemap
    /// index and its children together: over them the poll fails and records nothing). On a signal it stops starting polls, stops those
    /// in flight (they record nothing), flushes the store and exits 0. When the store fails
    /// (disk full, I/O error) /healthz answers 503 with the reason and it exits 4. Requests and
    /// article links that reach private networks (loopback, RFC 1918, link-local...) are refused
    /// unless [fetch] allow_networks or allow_private_networks allows them, or the host is a
    /// configured source's (README "Security"). With [websub], feeds that name a WebSub hub are
    /// subscribed to and a signed push polls the source at once; the callback server listens on
    /// [websub] listen, and polling stays the safety net (README "Push (WebSub)").
    Run,
    /// One pass over the sources that are due, then deliver what is pending, then exit.
    ///
    /// Only sources that are due are polled (all of them on a fresh store), so running it from
    /// cron every minute respects each source's interval, Retry-After and backoff (a poll killed
    /// midway counts as a failure, so its source backs off instead of crashing every run). Exits 0 when
    /// every polled source was fine and no delivery failed; otherwise 1, with one line per problem.
    /// Shows progress on a terminal. On SIGTERM or SIGINT it stops: polls in flight finish (each
    /// within [fetch] poll_deadline), nothing more is delivered, the embedded runner's stages get `shutdown_grace` to end
    /// before they are stopped, the store is flushed (exit 1: the pass was cut short).
    Once {
        /// Treat what a source's first poll finds as new (instead of recording a baseline).
        #[arg(long)]
        backfill: bool,
        /// Show what would be delivered; change nothing (no store writes, no configs, no triggers).
        #[arg(long)]
        dry_run: bool,
        /// Poll every source, also those not due yet (ignores intervals, Retry-After and backoff).
        #[arg(long)]
        all: bool,
    },
    /// Validate the config without touching the network.
    ///
    /// Every problem is one line with the file and the key (a duration above 100 years too);
    /// config templates (`[output] template`) are read and tried. Also warns when a run of the
    /// embedded chain may outlast `wait_timeout`, after which `once` stops the runner. With
    /// --explain-link, says instead how a link is read (README "Links and identity").
    Check {
        /// Explain a link: the canonical link a config would list, its identity key (what tells
        /// one article from another within an author) and the rule that decided them, with
        /// this config's tracking parameters. Given twice or more: also whether the links are
        /// one article.
        #[arg(long, value_name = "URL")]
        explain_link: Vec<url::Url>,
        /// With --explain-link: the item's title (the `/p/<slug>` rule compares titles).
        #[arg(long, requires = "explain_link", value_name = "TITLE")]
        title: Option<String>,
        /// With --explain-link: the `<generator>` of the feed the link came from (`Medium`,
        /// `Substack`: the marker that applies a platform's rule on its custom domains).
        #[arg(long, requires = "explain_link", value_name = "NAME")]
        generator: Option<String>,
    },
    /// Show each source's last poll, result, items known, failures and next poll, and the
    /// deliveries pending or failed. Asks the daemon when it holds the store.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the items held as a flood, per source.
    ///
    /// A poll whose new items look like a flood (more than `hold_above` = 20, or at least
    /// `hold_share_min` = 5 making up `hold_share` = 80% or more of what the source returned:
    /// rotating GUIDs, a token in every link, a CMS migration) records them as known but starts
    /// no run: they are held, and the source's later new items join them until you decide.
    /// A baseline, the first poll of a `backfill` author and sources with `hold = false` are
    /// never held. Asks the daemon when it holds the store.
    Held {
        /// Print JSON, every item, instead of a list (which shows 50 per source).
        #[arg(long)]
        json: bool,
    },
    /// Deliver held items: stage them, so the next pass (or the running daemon) delivers them,
    /// once. Asks the daemon when it holds the store.
    ///
    /// Each item leaves the hold in the store transaction that stages it, so a crash or a second
    /// `release` never delivers it twice. The items go out in their author's next batch: on the
    /// next `watcher once`, or within seconds when the daemon runs.
    Release {
        #[command(flatten)]
        which: Which,
    },
    /// Drop held items for good: they stay known and are never delivered. Asks the daemon when it
    /// holds the store.
    ///
    /// For a flood that is not news (a CMS migration, rotating links): the source then polls and
    /// delivers as before, and its next flood is held again.
    Discard {
        #[command(flatten)]
        which: Which,
    },
    /// Re-queue failed deliveries (all, or one batch).
    Retry {
        /// The batch id to re-queue (as shown by `watcher status`).
        batch: Option<String>,
    },
    /// Start a batch again whose run failed or was cancelled (or whose delivery failed).
    ///
    /// The batch gets a new idempotency key derived from its id (`<batch>-r<N>`), so the engine
    /// starts a new run instead of returning the failed one. A lost run (its status unavailable
    /// for `[trigger] run_lost_after`) may still be running on the engine: it needs --force.
    Redeliver {
        /// The batch id (as shown by `watcher status`).
        batch: String,
        /// Also start a batch whose run is lost (check the engine first: it may still run it).
        #[arg(long)]
        force: bool,
    },
    /// Show the whole system working, offline, in seconds (no config needed).
    ///
    /// Starts a loopback feed server with two real-world feeds and the embedded pipelines runner
    /// with the `demo` chain (a copy in DIR that fetches from this machine only), records the
    /// baseline, publishes two new articles to one feed (their pages served beside it), and shows
    /// detection → config written → run triggered → each stage finishing → the text the chain
    /// collected. Exits 0 only if the run succeeded.
    Demo {
        /// Where the demo keeps its state, configs and runs (default: a new temp directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The chains directory holding `demo.toml` (default: `pipelines/chains` in a checkout,
        /// else the installed `<prefix>/share/watcher/chains` beside the binary's `bin/`).
        #[arg(long, value_name = "DIR")]
        chains: Option<PathBuf>,
    },
    /// Add the feeds of an OPML file (a feed reader's export) to the config.
    ///
    /// Each OPML category becomes an author (or all feeds go to --author). Feeds an author
    /// already has are skipped; comments and layout of the config are kept.
    ImportOpml {
        /// The OPML file.
        file: PathBuf,
        /// Put every feed under this author (needed when the OPML has no categories).
        #[arg(long, value_name = "NAME")]
        author: Option<String>,
        /// Print the resulting config instead of writing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the configured feeds as OPML (one category per author).
    ExportOpml,
}

/// Which held items `release` and `discard` act on: one source's, or every source's.
#[derive(Debug, Args)]
pub struct Which {
    /// The source's URL as configured (as `watcher held` lists it).
    #[arg(value_name = "SOURCE", required_unless_present = "all")]
    pub source: Option<String>,
    /// Every source's held items.
    #[arg(long, conflicts_with = "source")]
    pub all: bool,
    /// Only this author's source (when several authors list the same URL).
    #[arg(long, value_name = "NAME", requires = "source")]
    pub author: Option<String>,
}
