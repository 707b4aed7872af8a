//! A real Prefect 3 server (started by `scripts/engines/prefect.sh`): trigger the
//! `digital_data_etl/ci` deployment with a generated config's parameters, wait for COMPLETED and
//! check what the flow received; a failing flow exits 1 with Prefect's message; cancel; 401.
//!
//! These tests are `#[ignore]`d so a plain `cargo test` never needs the engine. Run them with
//! `scripts/engines/prefect.sh run -- cargo test -p trigger-client --test it real_prefect -- --ignored`.
//! They find the server through PREFECT_API_URL (plus PREFECT_API_AUTH_STRING and
//! TRIGGER_PREFECT_OUTPUT_DIR); without it they print a note and pass, except under CI=true,
//! where a missing engine is a failure.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use trigger_client::{Client, Error, Kind, RetryPolicy, RunRequest, RunState, TargetConfig};
use url::Url;

use crate::helpers::{etl_fixture, real_engine, secret_file, trigger_client_bin, unique_key};

struct Engine {
    url: Url,
    auth: Option<String>,
    output_dir: Option<PathBuf>,
}

/// The running engine, or `None` (with a note) when there is none and CI is not set.
fn engine(test: &str) -> Option<Engine> {
    let url = real_engine("PREFECT_API_URL", test, "scripts/engines/prefect.sh")?;
    Some(Engine {
        url: Url::parse(&url).expect("PREFECT_API_URL is a URL"),
        auth: std::env::var("PREFECT_API_AUTH_STRING")
            .ok()
            .filter(|s| !s.is_empty()),
        output_dir: std::env::var_os("TRIGGER_PREFECT_OUTPUT_DIR").map(PathBuf::from),
    })
}

impl Engine {
    fn target(&self) -> TargetConfig {
        let mut target = TargetConfig::new(Kind::Prefect, self.url.clone());
        if self.auth.is_some() {
            target.auth_string_env = Some("PREFECT_API_AUTH_STRING".into());
        }
        target
    }

    fn client(&self) -> Client {
        Client::new(&self.target())
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(2),
            })
            .with_poll_interval(Duration::from_millis(250))
    }
}

#[tokio::test]
#[ignore = "needs a real Prefect server: scripts/engines/prefect.sh run -- cargo test ... -- --ignored"]
async fn real_prefect_cli_run_wait_completes_with_the_configs_parameters() {
    let Some(engine) = engine("real_prefect_cli_run_wait_completes_with_the_configs_parameters")
    else {
        return;
    };
    let url = engine.url.to_string();
    let key = unique_key("etl");
    let config_path = etl_fixture();
    let mut args = vec![
        "run",
        "--kind",
        "prefect",
        "--url",
        &url,
        "digital_data_etl/ci",
        "--config",
        config_path.to_str().unwrap(),
        "--idempotency-key",
        &key,
        "--wait",
        "--timeout",
        "60s",
        "--poll-interval",
        "250ms",
        "--json",
    ];
    if engine.auth.is_some() {
        args.extend(["--auth-string-env", "PREFECT_API_AUTH_STRING"]);
    }
    let output = trigger_client_bin(&args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["state"], "succeeded", "{result}");
    assert_eq!(result["raw_state"], "COMPLETED", "{result}");

    let config = RunRequest::config_from_file(&etl_fixture()).unwrap();
    let id = result["id"].as_str().unwrap();
    let Some(dir) = engine.output_dir else {
        eprintln!(
            "note: TRIGGER_PREFECT_OUTPUT_DIR is not set; not checking what the flow received"
        );
        return;
    };
    let received: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{id}.json"))).unwrap())
            .unwrap();
    assert_eq!(
        received,
        json!({"flow_run_id": id, "user_full_name": config["parameters"]["user_full_name"], "links": config["parameters"]["links"]})
    );
}

#[tokio::test]
#[ignore = "needs a real Prefect server: scripts/engines/prefect.sh run -- cargo test ... -- --ignored"]
async fn real_prefect_repeated_key_returns_the_same_run() {
    let Some(engine) = engine("real_prefect_repeated_key_returns_the_same_run") else {
        return;
    };
    let client = engine.client();
    let mut req = RunRequest::new("digital_data_etl/ci", unique_key("repeat"));
    req.config = RunRequest::config_from_file(&etl_fixture()).unwrap();
    let first = client.trigger(&req).await.unwrap();
    let again = client.trigger(&req).await.unwrap();
    assert_eq!(
        first, again,
        "Prefect answers 200 with the run the key already created"
    );
    let status = client
        .wait(&first, Duration::from_secs(60), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status}");
}

#[tokio::test]
#[ignore = "needs a real Prefect server: scripts/engines/prefect.sh run -- cargo test ... -- --ignored"]
async fn real_prefect_failing_flow_exits_1_with_the_engines_message() {
    let Some(engine) = engine("real_prefect_failing_flow_exits_1_with_the_engines_message") else {
        return;
    };
    let url = engine.url.to_string();
    let mut args = vec![
        "run",
        "--kind",
        "prefect",
        "--url",
        &url,
        "fail-flow/ci",
        "--param",
        "reason=intentional failure from the trigger-client test",
        "--wait",
        "--timeout",
        "60s",
        "--poll-interval",
        "250ms",
    ];
    if engine.auth.is_some() {
        args.extend(["--auth-string-env", "PREFECT_API_AUTH_STRING"]);
    }
    let output = trigger_client_bin(&args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("failed: Flow run encountered an exception: RuntimeError: intentional failure from the trigger-client test"),
        "{stderr}"
    );
}

#[tokio::test]
#[ignore = "needs a real Prefect server: scripts/engines/prefect.sh run -- cargo test ... -- --ignored"]
async fn real_prefect_cancel_ends_cancelled() {
    let Some(engine) = engine("real_prefect_cancel_ends_cancelled") else {
        return;
    };
    let client = engine.client();
    let mut req = RunRequest::new("slow-flow/ci", unique_key("cancel"));
    req.config = json!({"parameters": {"seconds": 60}});
    // Still scheduled: Prefect moves it straight to CANCELLED.
    let scheduled = client.trigger(&req).await.unwrap();
    client.cancel(&scheduled).await.unwrap();
    // Running: CANCELLING, the runner kills the process, then CANCELLED.
    req.idempotency_key = unique_key("cancel-running");
    let running = client.trigger(&req).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.status(&running).await.unwrap().state != RunState::Running {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow-flow never started running"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.cancel(&running).await.unwrap();
    for handle in [scheduled, running] {
        let status = client
            .wait(&handle, Duration::from_secs(60), |_| {})
            .await
            .unwrap();
        assert_eq!(status.state, RunState::Cancelled, "{handle}: {status}");
    }
}

#[tokio::test]
#[ignore = "needs a real Prefect server: scripts/engines/prefect.sh run -- cargo test ... -- --ignored"]
async fn real_prefect_wrong_credentials_are_a_clear_401() {
    let Some(engine) = engine("real_prefect_wrong_credentials_are_a_clear_401") else {
        return;
    };
    if engine.auth.is_none() {
        eprintln!("note: the server runs without auth; nothing to refuse");
        return;
    }
    let file = secret_file("not-the-password");
    let mut target = TargetConfig::new(Kind::Prefect, engine.url.clone());
    target.username = Some("ci".into());
    target.password_file = Some(file.path().to_owned());
    let err = Client::new(&target)
        .unwrap()
        .trigger(&RunRequest::new("digital_data_etl/ci", unique_key("auth")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err:?}");
    assert!(err.to_string().contains("Unauthorized"), "{err}");
}
