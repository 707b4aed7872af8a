//! The command line: clap definitions with man-page style help (the exit-code contract
//! included) and validation of raw flags into settings. The commands themselves are in
//! `commands`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::settings::{self, RunnerSettings};
use runner_api::RunStatus;

const ABOUT: &str = "Run pipeline chains (DAGs of commands) with durable state and a REST API";

const LONG_ABOUT: &str = "\
Run pipeline chains (DAGs of commands) with durable state and a REST API.

A chain is a TOML file: named stages, each an argv array run as a child process in its own
process group (never through a shell), ordered by `after` lists. Independent stages run in
parallel; a failing stage fails the run and skips what has not started. Each run gets a
directory with the config its stages read (`config.yaml`), one log file per stage, and room
for outputs. Runs, their stages and the process groups are kept in a sled database, so a
restarted runner knows what happened.

The runner serves a bearer-token REST API (see pipelines/README.md) that the watcher and
`curl` use to start runs, follow them, read logs and cancel them. Chains can also run on a
cron schedule.";

const EXIT_STATUS: &str = "\
EXIT STATUS: 0 ok, 1 a run failed, 2 bad input or state dir in use, 3 runner unreachable,
4 store failed (details: --help)";

const AFTER_HELP: &str = "\
EXAMPLES:
    Check the shipped chains:
        pipelines check pipelines/chains

    Start the runner, then the demo chain through the API:
        pipelines serve --chains pipelines/chains --state-dir state/pipelines
        curl -s -X POST -H \"Authorization: Bearer $(cat state/pipelines/api-token)\" \\
             -d '{\"idempotency_key\": \"first\"}' \\
             http://127.0.0.1:8731{demo_runs}

    Run a chain once without a server (needs the state directory to be free):
        pipelines run demo --config pipelines/chains/demo/config.yaml

    The same through a running server, waiting for the end:
        pipelines run demo --config my.yaml --url http://127.0.0.1:8731 --wait

    Recent failed runs:
        pipelines runs --status failed

EXIT STATUS:
    0   success (for `run`: the run succeeded)
    1   a run failed or was cancelled
    2   bad input or usage: flags, chain files (`check`), config or token files, an unknown chain
        or run, a request the runner refused; or the state directory is in use
    3   the runner (--url) cannot be reached or answered with a server error
    4   the store failed: the run database or state directory cannot be read or written

ENVIRONMENT:
    PIPELINES_TOKEN      API bearer token; if unset, `serve` generates one into
                         <state-dir>/api-token (mode 0600) and prints its path
    PIPELINES_CHAINS     default for --chains
    PIPELINES_STATE_DIR  default for --state-dir
    PIPELINES_LISTEN     default for --listen
    PIPELINES_URL        default for --url
    PIPELINES_LOG        log filter (tracing syntax), e.g. `debug` or `pipelines=debug`
    PIPELINES_LOG_FORMAT default for --log-format (`text` or `json`)

FILES:
    <state-dir>/db/                   the run database (sled; one process at a time)
    <state-dir>/api-token             the generated API token
    <state-dir>/runs/<id>/config.yaml the config a run's stages read (JSON, valid YAML)
    <state-dir>/runs/<id>/logs/       one log file per stage (size-capped)

SEE ALSO:
    pipelines/README.md: chain file reference, REST API, restart semantics";

/// The `pipelines` command line.
#[derive(Debug, Parser)]
#[command(
    name = "pipelines",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXIT_STATUS,
    after_long_help = after_long_help(),
    max_term_width = 100,
    propagate_version = true
)]
pub struct Cli {
    /// Log filter in tracing's syntax (`info`, `debug`, `pipelines=debug,warn`); default `info`
    /// for `serve`, `warn` for the other commands
    #[arg(
        long,
        global = true,
        env = "PIPELINES_LOG",
        hide_env_values = true,
        value_name = "FILTER"
    )]
    pub log: Option<String>,

    /// Log line format: `text`, or `json` (one JSON object a line, with the span fields)
    #[arg(
        long,
        global = true,
        env = "PIPELINES_LOG_FORMAT",
        hide_env_values = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub log_format: crate::log_format::LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    Serve(ServeArgs),
    Run(RunArgs),
    Runs(RunsArgs),
    Gates(GatesArgs),
    Check(CheckArgs),
}

/// Which runner a client command talks to, instead of reading the state directory.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// URL of a running `pipelines serve`, e.g. http://127.0.0.1:8731
    #[arg(
        long,
        env = "PIPELINES_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub url: Option<url::Url>,

    /// With --url: file holding the API token (default: PIPELINES_TOKEN, then api-token in --state-dir)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Where the chains and the state are.
#[derive(Debug, Clone, Args)]
pub struct Dirs {
    /// Directory of chain files (`*.toml`), or a single chain file
    #[arg(
        long,
        env = "PIPELINES_CHAINS",
        hide_env_values = true,
        default_value = "pipelines/chains",
        value_name = "DIR"
    )]
    pub chains: PathBuf,

    /// Directory for the run database, the token file and run directories (created if missing)
    #[arg(
        long,
        env = "PIPELINES_STATE_DIR",
        hide_env_values = true,
        default_value = "state/pipelines",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
}

/// How stages are stopped.
#[derive(Debug, Clone, Args)]
pub struct Stopping {
    /// Grace between SIGTERM and SIGKILL when a stage is cancelled, times out or is stopped
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub kill_grace: Duration,

    /// At shutdown, how long running stages may go on before they are stopped
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Duration,

    /// Largest size of one stage's log file; output beyond it is dropped (e.g. 10MiB, 512KiB)
    #[arg(long, default_value = "10MiB", value_parser = parse_size, value_name = "SIZE")]
    pub log_cap: u64,
}

/// Serve the REST API and run chains (queued runs, schedules) until SIGINT or SIGTERM.
#[derive(Debug, Args)]
#[command(
    long_about = "\
Serve the REST API and run chains until SIGINT or SIGTERM.

At start the runner loads and validates every chain file (and refuses to start on any
problem), opens the state directory (one runner per directory), kills process groups a
crashed runner left, marks runs that were running as failed (\"interrupted by restart\") and
starts the queued ones in order. On SIGINT/SIGTERM it stops accepting connections, lets
running stages finish for --shutdown-grace, then stops them (SIGTERM, --kill-grace, SIGKILL);
queued runs stay queued for the next start.

Finished runs are deleted --keep-runs after they ended (record, run directory, idempotency
key), at start and then hourly; queued and running runs are never deleted.

The API listens on loopback unless --allow-remote is given with another address.

A web page at / lists the runs (each stage's status and log), cancels them and starts a
chain with a config; it asks for the API token once and keeps a session cookie (HttpOnly,
SameSite=Strict). From another machine, reach it through an SSH tunnel.",
    after_long_help = "\
EXAMPLES:
    pipelines serve
    PIPELINES_TOKEN=$(openssl rand -hex 32) pipelines serve --listen 127.0.0.1:9000
    pipelines serve --listen 0.0.0.0:8731 --allow-remote --shutdown-grace 10m
    pipelines serve --keep-runs 90d
    pipelines serve --secret-env ZENML_STORE_API_KEY --secret-env AIRFLOW_PASSWORD"
)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dirs: Dirs,

    /// Address for the REST API (not 8237, ZenML's local server port)
    #[arg(long, env = "PIPELINES_LISTEN", hide_env_values = true, default_value = settings::DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Allow a non-loopback --listen address (the API is then reachable from the network)
    #[arg(long)]
    pub allow_remote: bool,

    /// Delete finished runs (record, run directory with logs and outputs, idempotency key) this
    /// long after they ended; checked at start and hourly (e.g. 30d, 12h, 90d)
    #[arg(long, default_value = "30d", value_parser = parse_retention, value_name = "DURATION")]
    pub keep_runs: Duration,

    /// An environment variable no stage may see, on top of PIPELINES_TOKEN and
    /// WATCHER_WEBHOOK_SECRET (repeat it; e.g. engine credentials an environment file shares)
    #[arg(long = "secret-env", value_name = "VAR")]
    pub secret_env: Vec<String>,

    #[command(flatten)]
    pub stopping: Stopping,
}

/// Start one run of a chain, through a server (--url) or in this process.
#[derive(Debug, Args)]
#[command(
    long_about = "\
Start one run of CHAIN.

With --url the run is started through that runner's REST API (token from --token-file, else
PIPELINES_TOKEN); add --wait to follow it to its end. Without --url the run executes in this
process, which needs the state directory to be free (stop `pipelines serve` first, or use
--url); it always waits, and Ctrl-C cancels the run. Queued runs of the same chain that are
older run first.

The config (YAML or JSON) is what the stages read as {config}; without --config the chain's
`default_config` is used.",
    after_long_help = "\
EXAMPLES:
    pipelines run demo --config pipelines/chains/demo/config.yaml
    pipelines run llm-twin --config paul.yaml --url http://127.0.0.1:8731 --wait
    pipelines run demo --param note=hello --idempotency-key batch-42 --url http://127.0.0.1:8731"
)]
pub struct RunArgs {
    /// Name of the chain to run
    pub chain: String,

    /// Config file (YAML or JSON mapping) the stages read; default: the chain's default_config
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A value for {param.NAME} in the chain's stages (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,

    /// Idempotency key: the same key again gives the same run instead of a new one
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,

    /// With --url: wait for the run to end and exit 0 only if it succeeded
    #[arg(long)]
    pub wait: bool,

    /// Open every gate and budget for this run (recorded in the run; its costs are still
    /// charged). Part of what --idempotency-key names
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub remote: Remote,

    #[command(flatten)]
    pub dirs: Dirs,

    #[command(flatten)]
    pub stopping: Stopping,
}

/// List runs (newest first), or show one run with its stages.
#[derive(Debug, Args)]
#[command(
    long_about = "\
List runs, newest first, or show one run (ID) with its stages.

Reads the state directory directly, which must not be in use by a runner; with --url (or
PIPELINES_URL) it asks that runner instead.",
    after_long_help = "\
EXAMPLES:
    pipelines runs
    pipelines runs --chain demo --status failed --limit 5
    pipelines runs 0190b3c4-... --url http://127.0.0.1:8731
    pipelines runs --json | jq '.runs[].status'"
)]
pub struct RunsArgs {
    /// Show this run with its stages instead of a list
    pub id: Option<String>,

    /// Only runs of this chain
    #[arg(long, value_name = "CHAIN")]
    pub chain: Option<String>,

    /// Only runs with this status: queued, running, succeeded, failed, cancelled
    #[arg(long, value_name = "STATUS")]
    pub status: Option<RunStatus>,

    /// How many runs to list
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,

    /// Print JSON (the REST API's shapes) instead of a table
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub remote: Remote,

    /// Directory for the run database, the token file and run directories
    #[arg(
        long,
        env = "PIPELINES_STATE_DIR",
        hide_env_values = true,
        default_value = "state/pipelines",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
}

/// Show every gate with its counters and when it opens, and each chain's budget.
#[derive(Debug, Args)]
#[command(
    long_about = "\
Show the gates and budgets of every chain (or of CHAIN): for each gated stage the distinct new
links waiting, its last success and failure, whether it is open and when `or_after` opens it;
for each budget what was spent in its rolling window and what is left.

Reads the state directory (and the chain files) directly, which must not be in use by a
runner; with --url (or PIPELINES_URL) it asks that runner instead.",
    after_long_help = "\
EXAMPLES:
    pipelines gates
    pipelines gates llm-twin --url http://127.0.0.1:8731
    pipelines gates --json | jq '.chains[].budget.left'"
)]
pub struct GatesArgs {
    /// Only this chain
    pub chain: Option<String>,

    /// Print JSON (the REST API's shape) instead of text
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub remote: Remote,

    #[command(flatten)]
    pub dirs: Dirs,
}

/// Validate chain files and print what each chain would run.
#[derive(Debug, Args)]
#[command(
    long_about = "\
Validate every chain file in PATH (a directory of *.toml files, or one file) and print each
chain's stages in order. Reports every problem with the file, the key and what was expected.
Missing working directories and programs are warnings: they may exist where the runner runs.",
    after_long_help = "\
EXAMPLES:
    pipelines check pipelines/chains
    pipelines check pipelines/chains/llm-twin.toml"
)]
pub struct CheckArgs {
    /// A chains directory or a chain file
    #[arg(default_value = "pipelines/chains", value_name = "PATH")]
    pub path: PathBuf,
}

impl Cli {
    /// The log filter: `--log`, or `info` for `serve` and `warn` for the one-shot commands.
    pub fn log_filter(&self) -> &str {
        match (&self.log, &self.command) {
            (Some(filter), _) => filter,
            (None, Command::Serve(_)) => "info",
            (None, _) => "warn",
        }
    }
}

/// The top-level `--help` epilogue, with the API path spelled by `runner_api`.
fn after_long_help() -> String {
    AFTER_HELP.replace(
        "{demo_runs}",
        &runner_api::paths::CHAIN_RUNS.replace("{chain}", "demo"),
    )
}

impl Stopping {
    /// The runner settings for these flags and directories (`token`: PIPELINES_TOKEN).
    pub fn runner_settings(&self, dirs: &Dirs, token: Option<String>) -> RunnerSettings {
        let mut settings = RunnerSettings::new(&dirs.chains, &dirs.state_dir)
            .with_kill_grace(self.kill_grace)
            .with_shutdown_grace(self.shutdown_grace)
            .with_log_cap(self.log_cap);
        settings.token = token;
        settings
    }
}

/// Parses `90s`, `10m`, `1h 30m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|err| format!("{err}; expected e.g. 500ms, 10s, 5m"))
}

/// Parses the retention of finished runs: a positive duration such as `30d`.
fn parse_retention(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!(
            "bad retention `{text}`; expected a positive duration such as 30d or 12h"
        )),
        keep => Ok(keep),
    }
}

/// Parses a byte size: `1048576`, `512KiB`, `10MiB`, `1GiB` (K/M/G and KB/MB/GB mean the same).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("bad size `{text}`; expected e.g. 1048576, 512KiB, 10MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}`; expected KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(factor)
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| format!("bad size `{text}`; expected a positive size below 16 EiB"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("1 G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("ten").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn retention() {
        assert_eq!(
            parse_retention("30d"),
            Ok(Duration::from_secs(30 * 24 * 3600))
        );
        assert_eq!(parse_retention("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(parse_retention("0s").is_err());
        assert!(parse_retention("forever").is_err());
        let cli = Cli::try_parse_from(["pipelines", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.keep_runs, settings::DEFAULT_KEEP_RUNS);
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_snapshots() {
        let mut command = Cli::command().term_width(100);
        command.build();
        insta::assert_snapshot!("help", command.render_long_help().to_string());
        for name in ["serve", "run", "runs", "gates", "check"] {
            let sub = command.find_subcommand_mut(name).unwrap();
            let help = sub.render_long_help().to_string();
            insta::assert_snapshot!(format!("help_{name}"), help);
        }
    }
}
