//! A real Apache Airflow 3 (started by `scripts/engines/airflow.sh`): JWT login, trigger the
//! `digital_data_etl` DAG with a generated config's parameters as `conf`, wait for `success` and
//! check what the task received; a repeated key hits Airflow's 409 and returns the same run; a
//! failing DAG exits 1 naming the failed task; cancel marks the run failed; a wrong password is
//! a clear 401.
//!
//! `#[ignore]`d like the Prefect tests. Run them with
//! `scripts/engines/airflow.sh run -- cargo test -p trigger-client --test it real_airflow -- --ignored`.
//! They find the server through AIRFLOW_API_URL (plus AIRFLOW_USERNAME, AIRFLOW_PASSWORD and
//! TRIGGER_AIRFLOW_OUTPUT_DIR); without it they print a note and pass, except under CI=true.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use trigger_client::{Client, Error, Kind, RetryPolicy, RunRequest, RunState, TargetConfig};
use url::Url;

use crate::helpers::{etl_fixture, real_engine, secret_file, trigger_client_bin, unique_key};

struct Engine {
    url: Url,
    output_dir: Option<PathBuf>,
}

fn engine(test: &str) -> Option<Engine> {
    let url = real_engine("AIRFLOW_API_URL", test, "scripts/engines/airflow.sh")?;
    assert!(
        std::env::var("AIRFLOW_PASSWORD").is_ok(),
        "AIRFLOW_API_URL is set but AIRFLOW_PASSWORD is not (source target/engines/airflow/env)"
    );
    Some(Engine {
        url: Url::parse(&url).expect("AIRFLOW_API_URL is a URL"),
        output_dir: std::env::var_os("TRIGGER_AIRFLOW_OUTPUT_DIR").map(PathBuf::from),
    })
}

fn username() -> String {
    std::env::var("AIRFLOW_USERNAME").unwrap_or_else(|_| "admin".into())
}

impl Engine {
    fn client(&self) -> Client {
        let mut target = TargetConfig::new(Kind::Airflow, self.url.clone());
        target.username = Some(username());
        target.password_env = Some("AIRFLOW_PASSWORD".into());
        Client::new(&target)
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(2),
            })
            .with_poll_interval(Duration::from_millis(300))
    }
}

#[tokio::test]
#[ignore = "needs a real Airflow 3: scripts/engines/airflow.sh run -- cargo test ... -- --ignored"]
async fn real_airflow_cli_run_wait_succeeds_with_the_configs_parameters() {
    let Some(engine) = engine("real_airflow_cli_run_wait_succeeds_with_the_configs_parameters")
    else {
        return;
    };
    let (url, user, key, config) = (
        engine.url.to_string(),
        username(),
        unique_key("etl"),
        etl_fixture(),
    );
    let output = trigger_client_bin(&[
        "run",
        "--kind",
        "airflow",
        "--url",
        &url,
        "--username",
        &user,
        "--password-env",
        "AIRFLOW_PASSWORD",
        "digital_data_etl",
        "--config",
        config.to_str().unwrap(),
        "--idempotency-key",
        &key,
        "--wait",
        "--timeout",
        "90s",
        "--poll-interval",
        "300ms",
        "--json",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (result["state"].as_str(), result["raw_state"].as_str()),
        (Some("succeeded"), Some("success")),
        "{result}"
    );
    assert_eq!(result["run"], format!("airflow:digital_data_etl/{key}"));

    let Some(dir) = engine.output_dir else {
        eprintln!(
            "note: TRIGGER_AIRFLOW_OUTPUT_DIR is not set; not checking what the task received"
        );
        return;
    };
    let config = RunRequest::config_from_file(&etl_fixture()).unwrap();
    let received: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{key}.json"))).unwrap())
            .unwrap();
    assert_eq!(
        received,
        json!({"dag_run_id": key, "user_full_name": config["parameters"]["user_full_name"], "links": config["parameters"]["links"]})
    );
}

#[tokio::test]
#[ignore = "needs a real Airflow 3: scripts/engines/airflow.sh run -- cargo test ... -- --ignored"]
async fn real_airflow_repeated_key_returns_the_existing_run() {
    let Some(engine) = engine("real_airflow_repeated_key_returns_the_existing_run") else {
        return;
    };
    let client = engine.client();
    let mut req = RunRequest::new("digital_data_etl", unique_key("repeat"));
    req.config = RunRequest::config_from_file(&etl_fixture()).unwrap();
    let first = client.trigger(&req).await.unwrap();
    let again = client.trigger(&req).await.unwrap();
    assert_eq!(
        first, again,
        "Airflow's 409 for our own dag_run_id returns that run"
    );
    let status = client
        .wait(&first, Duration::from_secs(90), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status}");
}

#[tokio::test]
#[ignore = "needs a real Airflow 3: scripts/engines/airflow.sh run -- cargo test ... -- --ignored"]
async fn real_airflow_failing_dag_exits_1_naming_the_failed_task() {
    let Some(engine) = engine("real_airflow_failing_dag_exits_1_naming_the_failed_task") else {
        return;
    };
    let (url, user) = (engine.url.to_string(), username());
    let output = trigger_client_bin(&[
        "run",
        "--kind",
        "airflow",
        "--url",
        &url,
        "--username",
        &user,
        "--password-env",
        "AIRFLOW_PASSWORD",
        "fail_dag",
        "--wait",
        "--timeout",
        "90s",
        "--poll-interval",
        "300ms",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("failed: failed tasks: crawl"), "{stderr}");
}

#[tokio::test]
#[ignore = "needs a real Airflow 3: scripts/engines/airflow.sh run -- cargo test ... -- --ignored"]
async fn real_airflow_cancel_marks_the_run_failed() {
    let Some(engine) = engine("real_airflow_cancel_marks_the_run_failed") else {
        return;
    };
    let client = engine.client();
    let mut req = RunRequest::new("digital_data_etl", unique_key("cancel"));
    req.config = RunRequest::config_from_file(&etl_fixture()).unwrap();
    let handle = client.trigger(&req).await.unwrap();
    client.cancel(&handle).await.unwrap();
    let status = client.status(&handle).await.unwrap();
    assert_eq!(
        status.state,
        RunState::Failed,
        "Airflow has no cancelled state: {status}"
    );
}

#[tokio::test]
#[ignore = "needs a real Airflow 3: scripts/engines/airflow.sh run -- cargo test ... -- --ignored"]
async fn real_airflow_wrong_password_is_a_clear_401() {
    let Some(engine) = engine("real_airflow_wrong_password_is_a_clear_401") else {
        return;
    };
    let file = secret_file("not-the-password");
    let mut target = TargetConfig::new(Kind::Airflow, engine.url.clone());
    target.username = Some(username());
    target.password_file = Some(file.path().to_owned());
    let err = Client::new(&target)
        .unwrap()
        .trigger(&RunRequest::new("digital_data_etl", unique_key("auth")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err:?}");
    assert!(err.to_string().contains("Invalid credentials"), "{err}");
}
