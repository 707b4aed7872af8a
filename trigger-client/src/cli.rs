//! The `trigger-client` command line, clap only: flags, their value parsers and the help text
//! (which states the exit-code contract). What the commands do is in `commands`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use trigger_client::{AirflowApi, Error, Kind, RunHandle};
use url::Url;

const ABOUT: &str = "Start a pipeline run on the embedded runner, ZenML, Airflow, Prefect or a webhook, exactly once, and follow it";

const LONG_ABOUT: &str = "\
Start a pipeline run on the engine you use, exactly once, and follow it.

trigger-client speaks to five kinds of target: `pipelines` (the embedded runner, `pipelines \
serve`), `zenml` (ZenML Pro / remote-stack servers), `airflow` (Airflow 3 or 2), `prefect` \
(Prefect 3, self-hosted or Cloud) and `webhook` (a signed JSON POST to any receiver).

Every run carries an idempotency key, mapped to the engine's own mechanism, so a retried \
request never starts two runs: repeating a command with the same --idempotency-key returns \
the run the key already started. Transient failures (connection errors, timeouts, 408, 425, \
429, 5xx) are retried with capped exponential backoff, honouring Retry-After; other 4xx \
answers fail at once with the engine's own message.

A target is named either with --kind and --url (plus credential flags), or with --target \
NAME, which reads the table NAME from a TOML file (--targets-file): the same keys as the \
watcher's [trigger] table, so `--targets-file watcher.toml --target trigger` uses the \
watcher's own target. Flags given alongside --target override the file.";

/// The exit-code contract shared by the workspace's binaries (`-h` and `--help` both show it).
macro_rules! exit_status {
    () => {
        "    0   success (with `run --wait`: the run succeeded)
    1   the run failed or was cancelled, or did not finish within --timeout
    2   bad input: usage or configuration error, or the engine rejected the request (4xx)
    3   the engine could not be reached, or kept failing, after retries
    4   the store failed (not used: trigger-client keeps no store)
"
    };
}

const AFTER_HELP: &str = concat!("EXIT STATUS:\n", exit_status!());

const AFTER_LONG_HELP: &str = concat!(
    "\
TARGETS FILE:
    A TOML file of named tables, each shaped like the watcher's [trigger] table:

        [local]
        kind = \"pipelines\"
        url = \"http://127.0.0.1:8731\"
        pipeline = \"demo\"
        token_file = \"state/token\"

        [prefect]
        kind = \"prefect\"
        url = \"http://127.0.0.1:4200/api\"
        pipeline = \"digital_data_etl/ci\"
        auth_string_env = \"PREFECT_API_AUTH_STRING\"

    Dotted names walk into nested tables (`--target targets.prod`). Secrets are never written
    in the file: `*_env` keys name environment variables, `*_file` keys name files.
    trigger-client/README.md lists every key per kind.

EXIT STATUS:
",
    exit_status!(),
    "
ENVIRONMENT:
    TRIGGER_TARGETS_FILE   default for --targets-file
    TRIGGER_TARGET         default for --target
    PIPELINES_TOKEN        the runner's token, used by kind `pipelines` when no token_env is set
    RUST_LOG               log filter (e.g. `trigger_client=debug`); -v and -vv also raise it

EXAMPLES:
    Start the demo chain on the embedded runner and wait for it:
        trigger-client run --kind pipelines --url http://127.0.0.1:8731 demo \\
            --config configs/digital_data_etl_paul_iusztin.yaml --wait

    Start a Prefect deployment with an explicit key, machine-readable:
        trigger-client run --target prefect digital_data_etl/ci \\
            --config cfg.yaml --idempotency-key batch-3f2a --json

    Follow or cancel a run later:
        trigger-client status prefect:0b7c4a52-9f1e-4c59-8d36-0f5c3b1a2e77 --target prefect
        trigger-client cancel airflow:hello_dag/batch-3f2a --target airflow"
);

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "trigger-client",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    after_long_help = AFTER_LONG_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub target: TargetArgs,

    /// More logs on stderr: -v for progress, -vv for every request.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Which target to talk to.
#[derive(Debug, Args)]
#[command(next_help_heading = "Target")]
pub struct TargetArgs {
    /// Read the target from table NAME of the targets file.
    #[arg(long, global = true, value_name = "NAME", env = "TRIGGER_TARGET")]
    pub target: Option<String>,

    /// The TOML file --target reads.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "TRIGGER_TARGETS_FILE",
        default_value = "targets.toml"
    )]
    pub targets_file: PathBuf,

    /// Engine kind: pipelines, zenml, airflow, prefect or webhook.
    #[arg(long, global = true, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<Kind>,

    /// The engine's base URL (webhook: the URL to POST to).
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<Url>,

    /// Env var holding a bearer token (runner token, ZenML API key, Airflow JWT, Prefect Cloud key).
    #[arg(long, global = true, value_name = "VAR")]
    pub token_env: Option<String>,

    /// File holding that bearer token.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Login user (Airflow, ZenML password login, Prefect basic auth).
    #[arg(long, global = true, value_name = "USER")]
    pub username: Option<String>,

    /// Env var holding the password for --username.
    #[arg(long, global = true, value_name = "VAR")]
    pub password_env: Option<String>,

    /// Prefect: env var holding `user:password` (like PREFECT_API_AUTH_STRING).
    #[arg(long, global = true, value_name = "VAR")]
    pub auth_string_env: Option<String>,

    /// Webhook: env var holding the HMAC signing secret.
    #[arg(long, global = true, value_name = "VAR")]
    pub secret_env: Option<String>,

    /// ZenML: the pipeline whose snapshot or template PIPELINE names (when names repeat).
    #[arg(long, global = true, value_name = "NAME")]
    pub zenml_pipeline: Option<String>,

    /// ZenML: the project for look-ups (default `default`).
    #[arg(long, global = true, value_name = "NAME")]
    pub project: Option<String>,

    /// Airflow: 2, 3 or auto (default: ask the server).
    #[arg(long, global = true, value_name = "VERSION", value_parser = parse_airflow_version)]
    pub airflow_version: Option<AirflowApi>,

    /// Tries per request, the first included (transient failures only).
    #[arg(long, global = true, value_name = "N", default_value_t = 4)]
    pub max_attempts: u32,

    /// How often --wait polls the run (default: the target's poll_interval, else 2s).
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a run and print its id.
    #[command(long_about = "\
Start a run and print its id (`<kind>:<id>`) on stdout.

PIPELINE names what to start, in the engine's own terms: the chain name (pipelines), the \
snapshot or template name (zenml; add --zenml-pipeline when names repeat), the DAG id \
(airflow), `flow-name/deployment-name` (prefect), anything (webhook). Without PIPELINE the \
target's `pipeline` key is used.

What the engine receives: the runner gets the whole config plus --param values; Prefect \
`parameters` and Airflow `conf` get the config's `parameters` mapping with --param values \
merged over it; ZenML gets them as step parameters (the target's `step_params`); a webhook \
gets {pipeline, idempotency_key, config, params}.

With --wait, state changes are printed on stderr as they happen and the exit status tells \
how the run ended: 0 succeeded, 1 failed or cancelled (the engine's message is printed), 1 \
also when --timeout passes first (the run keeps going).")]
    Run(RunArgs),

    /// Print a run's state.
    #[command(long_about = "\
Print a run's state: the normalized state (queued, running, succeeded, failed, cancelled), \
the engine's own state name and its message. RUN is what `run` printed, `<kind>:<id>`; its \
kind is used when neither --kind nor --target is given. Exits 0 whenever the state could be \
read, whatever it is.")]
    Status(HandleArgs),

    /// Ask the engine to cancel a run.
    #[command(long_about = "\
Ask the engine to cancel a run. RUN is what `run` printed, `<kind>:<id>`. Prefect runs go to \
CANCELLING, ZenML runs are stopped, the runner kills the stage's process group, and Airflow \
runs are marked failed (Airflow has no cancelled state). Webhook runs cannot be cancelled.")]
    Cancel(HandleArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to start (see above); default: the target's `pipeline`.
    #[arg(value_name = "PIPELINE")]
    pub pipeline: Option<String>,

    /// The pipeline config, YAML or JSON (e.g. a generated digital_data_etl_*.yaml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A parameter, merged over the config's `parameters` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// The run's idempotency key; the same key again returns the same run.
    /// Default: a fresh key per invocation.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,

    /// Follow the run until it ends; the exit status tells how it ended.
    #[arg(long)]
    pub wait: bool,

    /// With --wait: give up waiting after this long (e.g. 90s, 30m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HandleArgs {
    /// The run, as `run` printed it: `<kind>:<id>`.
    #[arg(value_name = "RUN", value_parser = parse_handle)]
    pub run: RunHandle,

    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_kind(value: &str) -> Result<Kind, String> {
    value.parse().map_err(|err: Error| err.to_string())
}

fn parse_handle(value: &str) -> Result<RunHandle, String> {
    value.parse().map_err(|err: Error| err.to_string())
}

fn parse_param(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, val)) if !key.is_empty() => Ok((key.to_owned(), val.to_owned())),
        _ => Err(format!("`{value}` is not KEY=VALUE")),
    }
}

fn parse_airflow_version(value: &str) -> Result<AirflowApi, String> {
    match value {
        "auto" => Ok(AirflowApi::Auto),
        "2" => Ok(AirflowApi::Airflow2),
        "3" => Ok(AirflowApi::Airflow3),
        _ => Err("expected 2, 3 or auto".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn params_need_an_equals_sign() {
        assert_eq!(parse_param("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_param("nope").is_err());
        assert!(parse_param("=x").is_err());
    }
}
