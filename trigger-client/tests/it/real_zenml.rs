//! A real ZenML 0.98 server (started by `scripts/engines/zenml.sh`) that takes REST-triggered
//! runs offline: `run` prints `zenml:<uuid>` and that run's own snapshot holds exactly the
//! config's user and links (read back from the server, which accepts wrong shapes silently); the
//! same key returns the same run (409); `--wait` ends failed with ZenML's "Failed to start run."
//! (the remote stack is never contacted); an unknown snapshot, a local-stack snapshot, a server
//! without run routes and a bad key each give a clear error; `end_to_end_data` is refused
//! before any request.
//!
//! These tests are `#[ignore]`d so a plain `cargo test` never needs the engine. Run them with
//! `scripts/engines/zenml.sh run -- cargo test -p trigger-client --test it real_zenml -- --ignored`.
//! They find the servers through TRIGGER_ZENML_URL (plus TRIGGER_ZENML_API_KEY,
//! TRIGGER_ZENML_SNAPSHOT, TRIGGER_ZENML_LOCAL_SNAPSHOT, TRIGGER_ZENML_PLAIN_URL); without it
//! they print a note and pass, except under CI=true, where a missing engine is a failure.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use trigger_client::{Client, Kind, RetryPolicy, RunRequest, TargetConfig};
use url::Url;

use crate::helpers::{closed_port_url, etl_fixture, real_engine, trigger_client_bin, unique_key};

const KEY_ENV: &str = "TRIGGER_ZENML_API_KEY";

struct Engine {
    url: Url,
    snapshot: String,
    /// The service account's token for reading back (each key login costs ~1 s of hashing).
    token: tokio::sync::OnceCell<String>,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by scripts/engines/zenml.sh"))
}

/// The running engine, or `None` (with a note) when there is none and CI is not set.
fn engine(test: &str) -> Option<Engine> {
    let url = real_engine("TRIGGER_ZENML_URL", test, "scripts/engines/zenml.sh")?;
    Some(Engine {
        url: Url::parse(&url).expect("TRIGGER_ZENML_URL is a URL"),
        snapshot: env("TRIGGER_ZENML_SNAPSHOT"),
        token: tokio::sync::OnceCell::new(),
    })
}

impl Engine {
    fn target(&self) -> TargetConfig {
        let mut target = TargetConfig::new(Kind::Zenml, self.url.clone());
        target.token_env = Some(KEY_ENV.into());
        target
    }

    /// Patient with 429s: the server starts two snapshot runs at a time, and tests run in parallel.
    fn client(&self) -> Client {
        Client::new(&self.target())
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 10,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(4),
            })
            .with_poll_interval(Duration::from_millis(250))
    }

    /// `GET path` on the server as the service account (a token from the key), JSON.
    async fn get(&self, path: &str) -> Value {
        let http = reqwest::Client::new();
        let token = self
            .token
            .get_or_init(|| async {
                let login: Value = http
                    .post(self.url.join("api/v1/login").unwrap())
                    .form(&[("grant_type", "zenml-api-key"), ("password", &env(KEY_ENV))])
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                login["access_token"].as_str().unwrap().to_owned()
            })
            .await;
        http.get(self.url.join(path).unwrap())
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The step parameters stored in run `id`'s own snapshot: `{step: parameters}`.
    async fn run_step_parameters(&self, id: &str) -> Value {
        let run = self.get(&format!("api/v1/runs/{id}?hydrate=true")).await;
        let snapshot = run["resources"]["snapshot"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("run {id} has no snapshot: {run}"));
        let snapshot = self
            .get(&format!(
                "api/v1/pipeline_snapshots/{snapshot}?hydrate=true"
            ))
            .await;
        let steps = snapshot["metadata"]["step_configurations"]
            .as_object()
            .unwrap_or_else(|| panic!("no step_configurations: {snapshot}"));
        steps
            .iter()
            .map(|(step, config)| (step.clone(), config["config"]["parameters"].clone()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// `trigger-client run` arguments: `snapshot` at `url` with `config`, a fresh key (returned
/// too), patience for 429s, and `extra` flags.
fn cli_args(url: &str, snapshot: &str, config: &Path, extra: &[&str]) -> (Vec<String>, String) {
    let key = unique_key("zenml");
    let mut args: Vec<String> = [
        "run",
        "--kind",
        "zenml",
        "--url",
        url,
        "--token-env",
        KEY_ENV,
        snapshot,
        "--config",
        config.to_str().unwrap(),
        "--idempotency-key",
        &key,
        "--max-attempts",
        "10",
    ]
    .map(str::to_owned)
    .into();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    (args, key)
}

/// Runs `trigger-client` with [`cli_args`]; returns its output and the key it used.
async fn run_cli(
    url: &str,
    snapshot: &str,
    config: &Path,
    extra: &[&str],
) -> (std::process::Output, String) {
    let (args, key) = cli_args(url, snapshot, config, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (trigger_client_bin(&args).await, key)
}

#[tokio::test]
#[ignore = "needs a real ZenML server: scripts/engines/zenml.sh run -- cargo test ... -- --ignored"]
async fn real_zenml_run_prints_the_handle_and_the_runs_snapshot_holds_the_config() {
    let Some(engine) =
        engine("real_zenml_run_prints_the_handle_and_the_runs_snapshot_holds_the_config")
    else {
        return;
    };
    let fixture = etl_fixture();
    let (output, key) = run_cli(engine.url.as_str(), &engine.snapshot, &fixture, &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let id = stdout
        .trim()
        .strip_prefix("zenml:")
        .unwrap_or_else(|| panic!("not a zenml handle: {stdout}"));
    assert!(uuid_shaped(id), "{id}");

    let config = RunRequest::config_from_file(&fixture).unwrap();
    let params = &config["parameters"];
    assert_eq!(
        engine.run_step_parameters(id).await,
        json!({
            "get_or_create_user": {"user_full_name": params["user_full_name"]},
            "crawl_links": {"links": params["links"]},
        }),
        "the run's own snapshot holds exactly the config's user and links"
    );
    let run = engine.get(&format!("api/v1/runs/{id}?hydrate=false")).await;
    assert_eq!(run["name"], format!("{}-{key}", engine.snapshot));
}

#[tokio::test]
#[ignore = "needs a real ZenML server: scripts/engines/zenml.sh run -- cargo test ... -- --ignored"]
async fn real_zenml_repeated_key_returns_the_same_run() {
    let Some(engine) = engine("real_zenml_repeated_key_returns_the_same_run") else {
        return;
    };
    let client = engine.client();
    let mut req = RunRequest::new(engine.snapshot.clone(), unique_key("zenml-again"));
    req.config = RunRequest::config_from_file(&etl_fixture()).unwrap();
    let first = client.trigger(&req).await.unwrap();
    let again = client.trigger(&req).await.unwrap();
    assert_eq!(first, again);
    let name = format!("{}-{}", engine.snapshot, req.idempotency_key);
    let runs = engine
        .get(&format!("api/v1/runs?name={name}&project=default"))
        .await;
    assert_eq!(runs["total"], 1, "{runs}");
}

#[tokio::test]
#[ignore = "needs a real ZenML server: scripts/engines/zenml.sh run -- cargo test ... -- --ignored"]
async fn real_zenml_wait_ends_with_zenmls_failure() {
    let Some(engine) = engine("real_zenml_wait_ends_with_zenmls_failure") else {
        return;
    };
    let (output, _) = run_cli(
        engine.url.as_str(),
        &engine.snapshot,
        &etl_fixture(),
        &[
            "--wait",
            "--timeout",
            "120s",
            "--poll-interval",
            "250ms",
            "--json",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["state"], "failed", "{result}");
    assert_eq!(result["raw_state"], "failed", "{result}");
    assert_eq!(result["message"], "Failed to start run.", "{result}");
    assert!(stderr.contains("failed: Failed to start run."), "{stderr}");
}

#[tokio::test]
#[ignore = "needs a real ZenML server: scripts/engines/zenml.sh run -- cargo test ... -- --ignored"]
async fn real_zenml_refusals_are_clear() {
    let Some(engine) = engine("real_zenml_refusals_are_clear") else {
        return;
    };
    let url = engine.url.to_string();
    let fixture = etl_fixture();
    let run = |url: String, snapshot: String| {
        let fixture = fixture.clone();
        async move {
            let (output, _) = run_cli(&url, &snapshot, &fixture, &[]).await;
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            (output.status.code(), stderr)
        }
    };

    let (code, stderr) = run(url.clone(), "no-such-snapshot".into()).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("zenml has no snapshot named `no-such-snapshot`"),
        "{stderr}"
    );

    let (code, stderr) = run(url.clone(), env("TRIGGER_ZENML_LOCAL_SNAPSHOT")).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "Unable to run pipeline from the server on a stack that includes local stack components"
        ),
        "{stderr}"
    );

    let (code, stderr) = run(env("TRIGGER_ZENML_PLAIN_URL"), engine.snapshot.clone()).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("this ZenML server cannot start runs over REST (ZenML Pro feature"),
        "{stderr}"
    );
}

#[tokio::test]
#[ignore = "needs a real ZenML server: scripts/engines/zenml.sh run -- cargo test ... -- --ignored"]
async fn real_zenml_bad_key_is_a_clear_401() {
    let Some(engine) = engine("real_zenml_bad_key_is_a_clear_401") else {
        return;
    };
    let (args, _) = cli_args(engine.url.as_str(), &engine.snapshot, &etl_fixture(), &[]);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_trigger-client"))
        .args(args)
        .env(KEY_ENV, "ZENKEY_bm90LWEta2V5")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("with 401: CredentialsNotValid: Authentication error"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "the API key from env var `{KEY_ENV}` were refused"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("ZENKEY_bm90"),
        "the key is never printed: {stderr}"
    );
}

#[tokio::test]
#[ignore = "needs a real ZenML server: scripts/engines/zenml.sh run -- cargo test ... -- --ignored"]
async fn real_zenml_end_to_end_data_is_refused_before_any_request() {
    let Some(engine) = engine("real_zenml_end_to_end_data_is_refused_before_any_request") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("end_to_end_data.yaml");
    std::fs::write(
        &config,
        "parameters:\n  author_links:\n    - user_full_name: Paul Iusztin\n      links: [\"https://decodingml.substack.com/p/a\"]\n  test_split_size: 0.1\n",
    )
    .unwrap();
    // Nothing listens there: a request would end in a connection error (exit 3), not this.
    let closed = closed_port_url().await.to_string();
    for url in [closed, engine.url.to_string()] {
        let (output, _) = run_cli(&url, &engine.snapshot, &config, &[]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("an `end_to_end_data` config"), "{stderr}");
    }
}

fn uuid_shaped(id: &str) -> bool {
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12] && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}
