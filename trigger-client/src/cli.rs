//! The `trigger-client` command line: flags and help text, turning flags into a validated
//! target in one step, and the three commands (`run`, `status`, `cancel`) with their output.
//! Exit codes are decided here from the run's state and mapped from errors in `main`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use trigger_client::{
    AirflowApi, Client, Error, Kind, RetryPolicy, RunHandle, RunRequest, RunState, RunStatus,
    TargetConfig, exit,
};
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

const AFTER_LONG_HELP: &str = "\
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
    0   success (with `run --wait`: the run succeeded)
    1   the run failed or was cancelled, or did not finish within --timeout
    2   usage or configuration error, or the engine rejected the request (4xx)
    3   the engine could not be reached, or kept failing, after retries

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
        trigger-client cancel airflow:hello_dag/batch-3f2a --target airflow";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "trigger-client",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    target: TargetArgs,

    /// More logs on stderr: -v for progress, -vv for every request.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    command: Command,
}

/// Which target to talk to.
#[derive(Debug, Args)]
#[command(next_help_heading = "Target")]
struct TargetArgs {
    /// Read the target from table NAME of the targets file.
    #[arg(long, global = true, value_name = "NAME", env = "TRIGGER_TARGET")]
    target: Option<String>,

    /// The TOML file --target reads.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "TRIGGER_TARGETS_FILE",
        default_value = "targets.toml"
    )]
    targets_file: PathBuf,

    /// Engine kind: pipelines, zenml, airflow, prefect or webhook.
    #[arg(long, global = true, value_name = "KIND", value_parser = parse_kind)]
    kind: Option<Kind>,

    /// The engine's base URL (webhook: the URL to POST to).
    #[arg(long, global = true, value_name = "URL")]
    url: Option<Url>,

    /// Env var holding a bearer token (runner token, ZenML API key, Airflow JWT, Prefect Cloud key).
    #[arg(long, global = true, value_name = "VAR")]
    token_env: Option<String>,

    /// File holding that bearer token.
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// Login user (Airflow, ZenML password login, Prefect basic auth).
    #[arg(long, global = true, value_name = "USER")]
    username: Option<String>,

    /// Env var holding the password for --username.
    #[arg(long, global = true, value_name = "VAR")]
    password_env: Option<String>,

    /// Prefect: env var holding `user:password` (like PREFECT_API_AUTH_STRING).
    #[arg(long, global = true, value_name = "VAR")]
    auth_string_env: Option<String>,

    /// Webhook: env var holding the HMAC signing secret.
    #[arg(long, global = true, value_name = "VAR")]
    secret_env: Option<String>,

    /// ZenML: the pipeline whose snapshot or template PIPELINE names (when names repeat).
    #[arg(long, global = true, value_name = "NAME")]
    zenml_pipeline: Option<String>,

    /// ZenML: the project for look-ups (default `default`).
    #[arg(long, global = true, value_name = "NAME")]
    project: Option<String>,

    /// Airflow: 2, 3 or auto (default: ask the server).
    #[arg(long, global = true, value_name = "VERSION", value_parser = parse_airflow_version)]
    airflow_version: Option<AirflowApi>,

    /// Tries per request, the first included (transient failures only).
    #[arg(long, global = true, value_name = "N", default_value_t = 4)]
    max_attempts: u32,

    /// How often --wait polls the run (default: the target's poll_interval, else 2s).
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    poll_interval: Option<Duration>,
}

#[derive(Debug, Subcommand)]
enum Command {
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
struct RunArgs {
    /// What to start (see above); default: the target's `pipeline`.
    #[arg(value_name = "PIPELINE")]
    pipeline: Option<String>,

    /// The pipeline config, YAML or JSON (e.g. a generated digital_data_etl_*.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// A parameter, merged over the config's `parameters` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,

    /// The run's idempotency key; the same key again returns the same run.
    /// Default: a fresh key per invocation.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,

    /// Follow the run until it ends; the exit status tells how it ended.
    #[arg(long)]
    wait: bool,

    /// With --wait: give up waiting after this long (e.g. 90s, 30m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct HandleArgs {
    /// The run, as `run` printed it: `<kind>:<id>`.
    #[arg(value_name = "RUN", value_parser = parse_handle)]
    run: RunHandle,

    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
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

impl Cli {
    /// Runs the command; `Ok` carries the exit status.
    pub async fn execute(self) -> Result<i32, Error> {
        let hint_kind = match &self.command {
            Command::Status(args) | Command::Cancel(args) => args.run.kind.parse().ok(),
            Command::Run(_) => None,
        };
        let target = self.target.resolve(hint_kind)?;
        let client = Client::new(&target)?
            .with_retry(RetryPolicy {
                max_attempts: self.target.max_attempts.max(1),
                ..RetryPolicy::default()
            })
            .with_poll_interval(
                self.target
                    .poll_interval
                    .unwrap_or_else(|| target.poll_interval.unwrap_or(Duration::from_secs(2))),
            );
        match self.command {
            Command::Run(args) => run(&client, args).await,
            Command::Status(args) => status(&client, args).await,
            Command::Cancel(args) => cancel(&client, args).await,
        }
    }
}

impl TargetArgs {
    /// The target from --target (file) or --kind/--url, with flags overriding the file.
    fn resolve(&self, kind_from_handle: Option<Kind>) -> Result<TargetConfig, Error> {
        let mut target = match &self.target {
            Some(name) => {
                let (target, unknown) = TargetConfig::load_named(&self.targets_file, name)?;
                if !unknown.is_empty() {
                    tracing::debug!(keys = ?unknown, "ignoring keys trigger-client does not use");
                }
                target
            }
            None => {
                let kind = self
                    .kind
                    .or(kind_from_handle)
                    .ok_or_else(|| Error::Config {
                        key: "kind".into(),
                        problem: "is missing (hint: pass --kind and --url, or --target NAME)"
                            .into(),
                    })?;
                let url = self.url.clone().ok_or_else(|| Error::Config {
                    key: "url".into(),
                    problem: "is missing (hint: pass --url, or --target NAME)".into(),
                })?;
                TargetConfig::new(kind, url)
            }
        };
        if let Some(kind) = self.kind {
            target.kind = kind;
        }
        let overrides = [
            (&self.token_env, &mut target.token_env),
            (&self.username, &mut target.username),
            (&self.password_env, &mut target.password_env),
            (&self.auth_string_env, &mut target.auth_string_env),
            (&self.secret_env, &mut target.secret_env),
            (&self.zenml_pipeline, &mut target.zenml_pipeline),
            (&self.project, &mut target.project),
        ];
        for (flag, key) in overrides {
            if flag.is_some() {
                key.clone_from(flag);
            }
        }
        if self.url.is_some() {
            target.url.clone_from(&self.url);
        }
        if self.token_file.is_some() {
            target.token_file.clone_from(&self.token_file);
        }
        if let Some(version) = self.airflow_version {
            target.airflow_version = version;
        }
        Ok(target)
    }
}

async fn run(client: &Client, args: RunArgs) -> Result<i32, Error> {
    let config = match &args.config {
        Some(path) => RunRequest::config_from_file(path)?,
        None => json!({}),
    };
    let idempotency_key = args.idempotency_key.clone().unwrap_or_else(fresh_key);
    let req = RunRequest {
        pipeline: args.pipeline.clone().unwrap_or_default(),
        idempotency_key: idempotency_key.clone(),
        config,
        params: args.params.iter().cloned().collect::<BTreeMap<_, _>>(),
        payload: None,
    };
    let handle = client.trigger(&req).await?;
    if !args.json {
        println!("{handle}");
        let _ = std::io::stdout().flush();
    }
    if !args.wait {
        if args.json {
            print_json(&json!({
                "run": handle.to_string(), "kind": handle.kind, "id": handle.id,
                "idempotency_key": idempotency_key,
            }));
        }
        return Ok(exit::SUCCESS);
    }
    let status = client
        .wait(&handle, args.timeout, |status| {
            eprintln!("{handle}: {status}");
        })
        .await;
    let status = match status {
        Ok(status) => status,
        Err(err @ Error::WaitTimeout { .. }) => {
            if args.json {
                print_json(&json!({
                    "run": handle.to_string(), "kind": handle.kind, "id": handle.id,
                    "idempotency_key": idempotency_key, "state": "timeout", "message": err.to_string(),
                }));
            }
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    if args.json {
        print_json(&json!({
            "run": handle.to_string(), "kind": handle.kind, "id": handle.id,
            "idempotency_key": idempotency_key,
            "state": status.state, "raw_state": status.raw_state, "message": status.message,
        }));
    }
    Ok(match status.state {
        RunState::Succeeded => exit::SUCCESS,
        _ => {
            eprintln!(
                "run {handle} {}{}",
                status.state,
                status
                    .message
                    .as_deref()
                    .map(|message| format!(": {message}"))
                    .unwrap_or_default()
            );
            exit::RUN_FAILED
        }
    })
}

async fn status(client: &Client, args: HandleArgs) -> Result<i32, Error> {
    let status: RunStatus = client.status(&args.run).await?;
    if args.json {
        print_json(&json!({
            "run": args.run.to_string(), "state": status.state,
            "raw_state": status.raw_state, "message": status.message,
        }));
    } else {
        println!("{status}");
    }
    Ok(exit::SUCCESS)
}

async fn cancel(client: &Client, args: HandleArgs) -> Result<i32, Error> {
    client.cancel(&args.run).await?;
    if args.json {
        print_json(&json!({"run": args.run.to_string(), "cancel": "requested"}));
    } else {
        eprintln!("cancel requested for {}", args.run);
    }
    Ok(exit::SUCCESS)
}

fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// `cli-<unix seconds>-<8 random hex digits>`: a new run per invocation.
fn fresh_key() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    format!("cli-{seconds}-{:08x}", rand::random::<u32>())
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

    #[test]
    fn fresh_keys_differ() {
        assert_ne!(fresh_key(), fresh_key());
    }
}
