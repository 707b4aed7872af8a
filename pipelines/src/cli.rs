//! The command line: clap definitions with man-page style help, validation of raw flags into
//! settings, and the four commands (`serve`, `run`, `runs`, `check`) with their output.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Runner;
use crate::chain::{self, Chain};
use crate::client::Client;
use crate::error::Error;
use crate::runner::Engine;
use crate::settings::{self, RunnerSettings};
use crate::state::{RunFilter, State};
use crate::token::{ApiToken, TOKEN_FILE, TokenSource};
use runner_api::{Run, RunRequest, RunStatus, StageStatus, Trigger, paths};

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

const AFTER_HELP: &str = "\
EXAMPLES:
    Check the shipped chains:
        pipelines check pipelines/chains

    Start the runner, then the demo chain through the API:
        pipelines serve --chains pipelines/chains --state-dir state/pipelines
        curl -s -X POST -H \"Authorization: Bearer $(cat state/pipelines/api-token)\" \\
             -d '{\"idempotency_key\": \"first\"}' \\
             http://127.0.0.1:8731/api/v1/chains/demo/runs

    Run a chain once without a server (needs the state directory to be free):
        pipelines run demo --config pipelines/chains/demo/config.yaml

    The same through a running server, waiting for the end:
        pipelines run demo --config my.yaml --url http://127.0.0.1:8731 --wait

    Recent failed runs:
        pipelines runs --status failed

EXIT STATUS:
    0   success (for `run`: the run succeeded)
    1   the run failed or was cancelled, or `check` found problems in chain files
    2   any other error: bad flags, unreadable files, state directory in use, runner unreachable

ENVIRONMENT:
    PIPELINES_TOKEN      API bearer token; if unset, `serve` generates one into
                         <state-dir>/api-token (mode 0600) and prints its path
    PIPELINES_CHAINS     default for --chains
    PIPELINES_STATE_DIR  default for --state-dir
    PIPELINES_LISTEN     default for --listen
    PIPELINES_URL        default for --url
    PIPELINES_LOG        log filter (tracing syntax), e.g. `debug` or `pipelines=debug`

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
    after_long_help = AFTER_HELP,
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

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    Serve(ServeArgs),
    Run(RunArgs),
    Runs(RunsArgs),
    Check(CheckArgs),
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

The API listens on loopback unless --allow-remote is given with another address.",
    after_long_help = "\
EXAMPLES:
    pipelines serve
    PIPELINES_TOKEN=$(openssl rand -hex 32) pipelines serve --listen 127.0.0.1:9000
    pipelines serve --listen 0.0.0.0:8731 --allow-remote --shutdown-grace 10m
    pipelines serve --keep-runs 90d"
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

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// A run ended failed or cancelled.
    RunFailed,
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

/// Runs the parsed command until it ends or `cancel` fires.
pub async fn execute(command: Command, cancel: CancellationToken) -> Result<Status, Error> {
    let token = std::env::var(runner_api::TOKEN_ENV).ok();
    match command {
        Command::Serve(args) => serve(args, token, cancel).await,
        Command::Run(args) => run(args, token, cancel).await,
        Command::Runs(args) => runs(args, token).await,
        Command::Check(args) => check(&args.path),
    }
}

fn runner_settings(dirs: &Dirs, stopping: &Stopping, token: Option<String>) -> RunnerSettings {
    let mut settings = RunnerSettings::new(&dirs.chains, &dirs.state_dir)
        .with_kill_grace(stopping.kill_grace)
        .with_shutdown_grace(stopping.shutdown_grace)
        .with_log_cap(stopping.log_cap);
    settings.token = token;
    settings
}

async fn serve(
    args: ServeArgs,
    token: Option<String>,
    cancel: CancellationToken,
) -> Result<Status, Error> {
    if settings::is_remote(args.listen) {
        if !args.allow_remote {
            return Err(Error::RemoteListen { addr: args.listen });
        }
        tracing::warn!(addr = %args.listen, "listening beyond loopback: anyone who can reach this address and has the token can run chains");
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: args.listen,
            source,
        })?;
    let settings =
        runner_settings(&args.dirs, &args.stopping, token).with_keep_runs(args.keep_runs);
    let runner = Runner::build(listener, settings)?;
    println!("pipelines runner listening on {}", runner.url());
    println!(
        "chains: {} from {}",
        runner
            .engine()
            .chains()
            .iter()
            .map(|chain| chain.name())
            .collect::<Vec<_>>()
            .join(", "),
        args.dirs.chains.display()
    );
    match runner.token().source() {
        TokenSource::Given => println!("token: from PIPELINES_TOKEN"),
        TokenSource::File { path, created } => {
            let note = if *created {
                " (generated now, mode 0600)"
            } else {
                ""
            };
            println!("token: {}{note}", path.display());
            println!(
                "try: curl -H \"Authorization: Bearer $(cat {})\" {}{}",
                path.display(),
                runner.url(),
                paths::CHAINS
            );
        }
    }
    runner.run(cancel).await?;
    Ok(Status::Success)
}

async fn run(
    args: RunArgs,
    token: Option<String>,
    cancel: CancellationToken,
) -> Result<Status, Error> {
    let request = RunRequest {
        config: args.config.as_deref().map(read_config).transpose()?,
        idempotency_key: args.idempotency_key.clone(),
        params: parse_params(&args.params)?,
    };
    if let Some(url) = &args.url {
        let token = client_token(token, args.token_file.as_deref(), &args.dirs.state_dir)?;
        let client = Client::new(url.clone(), &token);
        let (run, created) = client.create_run(&args.chain, &request).await?;
        let verb = if created {
            "started"
        } else {
            "already exists (same idempotency key)"
        };
        println!("run {} of chain `{}` {verb}", run.id, run.chain);
        if !args.wait {
            println!("follow it: pipelines runs {} --url {url}", run.id);
            return Ok(Status::Success);
        }
        let mut progress = Progress::default();
        let mut run = run;
        loop {
            progress.show(&run);
            if run.status.is_finished() {
                return Ok(finish(&run));
            }
            tokio::select! {
                () = cancel.cancelled() => {
                    println!("stopped waiting; run {} goes on in the runner", run.id);
                    return Ok(Status::RunFailed);
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            run = client.run(&run.id).await?;
        }
    }

    let engine = Engine::open(&runner_settings(&args.dirs, &args.stopping, None))?;
    let submitted = engine.submit(&args.chain, request, Trigger::Cli).await;
    let run = match submitted {
        Ok(submitted) => submitted.run().clone(),
        Err(err) => {
            engine.shutdown().await;
            return Err(err.into());
        }
    };
    println!(
        "run {} of chain `{}` started in this process",
        run.id, run.chain
    );
    let mut progress = Progress::default();
    let mut cancelled = false;
    let run = loop {
        let changed = engine.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let current = engine.run(&run.id)?.unwrap_or_else(|| run.clone());
        progress.show(&current);
        if current.status.is_finished() {
            break current;
        }
        tokio::select! {
            () = &mut changed => {}
            () = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                println!("cancelling run {} ...", run.id);
                let engine = engine.clone();
                let id = run.id.clone();
                tokio::spawn(async move { engine.cancel(&id).await });
            }
        }
    };
    engine.shutdown().await;
    Ok(finish(&run))
}

fn finish(run: &Run) -> Status {
    let took = match (run.started_at, run.finished_at) {
        (Some(start), Some(end)) => format!(" in {}", format_duration(end - start)),
        _ => String::new(),
    };
    println!("run {} {}{took}", run.id, run.status);
    if let Some(error) = &run.error {
        println!("error: {error}");
    }
    println!(
        "run directory (config, logs, outputs): {}",
        run.run_dir.display()
    );
    if run.status == RunStatus::Succeeded {
        Status::Success
    } else {
        Status::RunFailed
    }
}

/// Prints stage status changes between snapshots of a run.
#[derive(Debug, Default)]
struct Progress {
    seen: BTreeMap<String, StageStatus>,
}

impl Progress {
    fn show(&mut self, run: &Run) {
        for stage in &run.stages {
            if self.seen.get(&stage.name) == Some(&stage.status) {
                continue;
            }
            self.seen.insert(stage.name.clone(), stage.status);
            if stage.status == StageStatus::Queued {
                continue;
            }
            let detail = match (stage.status, stage.exit_code, &stage.error) {
                (StageStatus::Running, _, _) if stage.attempts > 1 => {
                    format!(" (attempt {})", stage.attempts)
                }
                (_, _, Some(error)) => format!(" ({error})"),
                (_, Some(code), None) => format!(" (exit {code})"),
                _ => String::new(),
            };
            let status = stage.status;
            println!(
                "  {} {:<32} {status}{detail}",
                chrono::Local::now().format("%H:%M:%S"),
                stage.name
            );
        }
    }
}

async fn runs(args: RunsArgs, token: Option<String>) -> Result<Status, Error> {
    let filter = RunFilter {
        chain: args.chain.clone(),
        status: args.status,
        limit: args.limit.max(1),
        cursor: None,
    };
    let (one, page) = if let Some(url) = &args.url {
        let token = client_token(token, args.token_file.as_deref(), &args.state_dir)?;
        let client = Client::new(url.clone(), &token);
        match &args.id {
            Some(id) => (Some(client.run(id).await?), None),
            None => (None, Some(client.runs(&filter).await?)),
        }
    } else {
        let state = State::open(&settings::db_dir(&args.state_dir))?;
        match &args.id {
            Some(id) => {
                let run = state
                    .get_run(id)?
                    .ok_or_else(|| crate::state::StateError::RunNotFound { id: id.clone() })?;
                (Some(run), None)
            }
            None => (None, Some(state.list_runs_blocking(&filter)?)),
        }
    };
    if args.json {
        let value = match (one, page) {
            (Some(run), _) => serde_json::to_value(run),
            (None, page) => serde_json::to_value(page),
        }
        .expect("runs serialise to JSON");
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON prints")
        );
        return Ok(Status::Success);
    }
    if let Some(run) = one {
        print_run(&run);
    } else if let Some(page) = page {
        if page.runs.is_empty() {
            println!("no runs");
        }
        println!(
            "{:<36}  {:<16} {:<10} {:<20} {:>9}  ERROR",
            "ID", "CHAIN", "STATUS", "CREATED", "TOOK"
        );
        for run in &page.runs {
            let took = match (run.started_at, run.finished_at) {
                (Some(start), Some(end)) => format_duration(end - start),
                _ => "-".into(),
            };
            println!(
                "{:<36}  {:<16} {:<10} {:<20} {:>9}  {}",
                run.id,
                run.chain,
                run.status,
                run.created_at.format("%Y-%m-%d %H:%M:%S"),
                took,
                run.error.as_deref().unwrap_or("")
            );
        }
        if page.next.is_some() {
            println!("(more runs: raise --limit)");
        }
    }
    Ok(Status::Success)
}

fn print_run(run: &Run) {
    println!("run        {}", run.id);
    println!("chain      {}", run.chain);
    println!("status     {}", run.status);
    println!("trigger    {}", run.trigger);
    println!("created    {}", run.created_at.to_rfc3339());
    if let Some(at) = run.cancel_requested_at {
        println!("cancel     requested {}", at.to_rfc3339());
    }
    if let Some(error) = &run.error {
        println!("error      {error}");
    }
    println!("run dir    {}", run.run_dir.display());
    println!("stages:");
    for stage in &run.stages {
        let status = stage.status;
        let exit = stage
            .exit_code
            .map(|c| format!("exit {c}"))
            .unwrap_or_default();
        println!(
            "  {:<32} {:<10} {:<8} {}",
            stage.name,
            status,
            exit,
            stage.error.as_deref().unwrap_or("")
        );
    }
}

fn check(path: &Path) -> Result<Status, Error> {
    let chains = chain::load(path)?;
    for chain in chains.iter() {
        print_chain(chain);
    }
    println!("{} chain file(s) OK", chains.len());
    Ok(Status::Success)
}

fn print_chain(chain: &Chain) {
    println!("chain `{}` ({})", chain.name(), chain.file().display());
    for line in chain.description().lines() {
        println!("  {line}");
    }
    if let Some(schedule) = chain.schedule() {
        let next = schedule
            .next_after(chrono::Utc::now())
            .map(|at| at.with_timezone(&schedule.timezone()).to_rfc3339())
            .unwrap_or_else(|| "never".into());
        println!(
            "  schedule `{}` ({}), next {next}",
            schedule.expr(),
            schedule.timezone()
        );
    }
    let mut warnings = std::collections::BTreeSet::new();
    let order = chain::topological_order(chain.stages()).unwrap_or_default();
    for index in order {
        let stage = &chain.stages()[index];
        let after = if stage.after().is_empty() {
            String::new()
        } else {
            format!(" (after {})", stage.after().join(", "))
        };
        let argv: Vec<&str> = stage.run().iter().map(|arg| arg.source()).collect();
        println!("  - {}{after}: {}", stage.name(), argv.join(" "));
        if !stage.workdir().is_dir() {
            warnings.insert(format!(
                "workdir `{}` does not exist here",
                stage.workdir().display()
            ));
        }
        if let Some(dir) = stage.config_dir()
            && !dir.is_dir()
        {
            warnings.insert(format!(
                "config_dir `{}` does not exist here",
                dir.display()
            ));
        }
        if let Some(program) = argv.first()
            && !program.contains('{')
            && !program_exists(program, stage.workdir())
        {
            warnings.insert(format!("program `{program}` is not on PATH here"));
        }
    }
    if let Some(config) = chain.default_config()
        && !config.is_file()
    {
        warnings.insert(format!(
            "default_config `{}` does not exist here",
            config.display()
        ));
    }
    for warning in warnings {
        println!("  warning: {warning}");
    }
}

fn program_exists(program: &str, workdir: &Path) -> bool {
    if program.contains('/') {
        return workdir.join(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Reads a YAML or JSON config file into a JSON object.
fn read_config(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
        path: path.to_owned(),
        source,
    })?;
    let value: serde_json::Value =
        serde_yaml_ng::from_str(&text).map_err(|source| Error::ConfigParse {
            path: path.to_owned(),
            source,
        })?;
    match value {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(Error::ConfigNotMapping {
            path: path.to_owned(),
        }),
    }
}

/// Parses `NAME=VALUE` pairs.
pub fn parse_params(given: &[String]) -> Result<BTreeMap<String, String>, Error> {
    given
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if crate::placeholder::is_param_name(name) => {
                Ok((name.to_owned(), value.to_owned()))
            }
            _ => Err(Error::BadParam {
                given: pair.clone(),
            }),
        })
        .collect()
}

/// The token for `--url`: an explicit `--token-file` (the flag wins over the environment), then
/// PIPELINES_TOKEN, then the state dir's token file.
fn client_token(
    env: Option<String>,
    file: Option<&Path>,
    state_dir: &Path,
) -> Result<String, Error> {
    let path = match file {
        Some(path) => path.to_owned(),
        None => {
            if let Some(token) = env.filter(|token| !token.trim().is_empty()) {
                return Ok(token.trim().to_owned());
            }
            let default = state_dir.join(TOKEN_FILE);
            if !default.exists() {
                return Err(Error::NoToken);
            }
            default
        }
    };
    let text =
        std::fs::read_to_string(&path).map_err(|source| Error::TokenFile { path, source })?;
    let token = ApiToken::new(text.trim());
    if token.expose().is_empty() {
        return Err(Error::NoToken);
    }
    Ok(token.expose().to_owned())
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

fn format_duration(delta: chrono::TimeDelta) -> String {
    let millis = delta.num_milliseconds().max(0);
    if millis < 60_000 {
        format!("{:.1}s", millis as f64 / 1000.0)
    } else {
        humantime::format_duration(Duration::from_secs((millis / 1000) as u64)).to_string()
    }
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
    fn params() {
        let parsed = parse_params(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(parsed["a"], "1");
        assert_eq!(parsed["b"], "x=y");
        assert_eq!(parsed["c"], "");
        assert!(parse_params(&["novalue".into()]).is_err());
        assert!(parse_params(&["bad name=1".into()]).is_err());
    }

    #[test]
    fn an_explicit_token_file_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my-token");
        std::fs::write(&file, "from-file\n").unwrap();
        std::fs::write(dir.path().join(TOKEN_FILE), "from-state-dir\n").unwrap();
        let env = || Some("from-env".to_owned());

        let token = client_token(env(), Some(&file), dir.path()).unwrap();
        assert_eq!(token, "from-file");
        assert_eq!(client_token(env(), None, dir.path()).unwrap(), "from-env");
        assert_eq!(
            client_token(Some("  ".into()), None, dir.path()).unwrap(),
            "from-state-dir"
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            client_token(None, None, empty.path()),
            Err(Error::NoToken)
        ));
        let missing = client_token(env(), Some(&dir.path().join("nope")), dir.path());
        assert!(
            matches!(missing, Err(Error::TokenFile { .. })),
            "{missing:?}"
        );
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
        for name in ["serve", "run", "runs", "check"] {
            let sub = command.find_subcommand_mut(name).unwrap();
            let help = sub.render_long_help().to_string();
            insta::assert_snapshot!(format!("help_{name}"), help);
        }
    }
}
