//! `pipelines` contract: a fake runner that follows issue #4's REST API (201 new run, 200 same
//! run for a repeated key, 409 same key with another body, bearer auth, `{"error": ...}`
//! bodies, cancel, 409 on cancelling a finished run).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use trigger_client::{Error, Kind, RunRequest, RunState, exit};

use crate::helpers::{client, spawn, target};

pub const TOKEN: &str = "pipelines-token-abc";

#[derive(Default)]
pub struct Runner {
    runs: Vec<Value>,
    by_key: HashMap<String, (Value, usize)>,
    polls: HashMap<usize, usize>,
    requests: Vec<(HeaderMap, Value)>,
}

pub type Shared = Arc<Mutex<Runner>>;

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn create(
    State(runner): State<Shared>,
    Path(chain): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
    }
    if !["demo", "llm-twin"].contains(&chain.as_str()) {
        return error(StatusCode::NOT_FOUND, &format!("unknown chain `{chain}`"));
    }
    let mut runner = runner.lock().unwrap();
    runner.requests.push((headers, body.clone()));
    let key = body["idempotency_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some((seen, index)) = runner.by_key.get(&key) {
        if *seen != body {
            return error(
                StatusCode::CONFLICT,
                "idempotency key reused with a different body",
            );
        }
        return (StatusCode::OK, Json(runner.runs[*index].clone())).into_response();
    }
    let index = runner.runs.len();
    let run = json!({
        "id": format!("run-{index}"), "chain": chain, "status": "queued",
        "trigger": "api", "created_at": "2026-11-25T10:00:00Z", "started_at": null,
        "finished_at": null, "stages": [], "error": null, "idempotency_key": key,
        "run_dir": "/tmp/run",
        "fail": body["config"]["fail"].as_bool().unwrap_or(false),
    });
    runner.runs.push(run.clone());
    runner.by_key.insert(key, (body, index));
    (StatusCode::CREATED, Json(run)).into_response()
}

fn index_of(id: &str) -> Option<usize> {
    id.strip_prefix("run-")?.parse().ok()
}

/// Each GET moves a run one step: queued -> running -> succeeded (or failed).
async fn show(
    State(runner): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
    }
    let mut runner = runner.lock().unwrap();
    let Some(index) = index_of(&id).filter(|i| *i < runner.runs.len()) else {
        return error(StatusCode::NOT_FOUND, &format!("unknown run `{id}`"));
    };
    let polls = {
        let count = runner.polls.entry(index).or_default();
        *count += 1;
        *count
    };
    let run = &mut runner.runs[index];
    let fail = run["fail"].as_bool().unwrap_or(false);
    if run["status"] == "queued" && polls >= 2 {
        run["status"] = json!("running");
        run["stages"] = json!([{"name": "digital_data_etl", "status": "running", "exit_code": null, "started_at": "2026-11-25T10:00:01Z", "finished_at": null}]);
    } else if run["status"] == "running" && polls >= 3 {
        if fail {
            run["status"] = json!("failed");
            run["stages"] = json!([
                {"name": "digital_data_etl", "status": "failed", "exit_code": 3, "started_at": "2026-11-25T10:00:01Z", "finished_at": "2026-11-25T10:00:02Z"},
                {"name": "feature_engineering", "status": "skipped", "exit_code": null, "started_at": null, "finished_at": null}
            ]);
        } else {
            run["status"] = json!("succeeded");
            run["stages"] = json!([{"name": "digital_data_etl", "status": "succeeded", "exit_code": 0, "started_at": "2026-11-25T10:00:01Z", "finished_at": "2026-11-25T10:00:02Z"}]);
        }
    }
    Json(run.clone()).into_response()
}

async fn cancel(
    State(runner): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
    }
    let mut runner = runner.lock().unwrap();
    let Some(index) = index_of(&id).filter(|i| *i < runner.runs.len()) else {
        return error(StatusCode::NOT_FOUND, &format!("unknown run `{id}`"));
    };
    let run = &mut runner.runs[index];
    if ["succeeded", "failed", "cancelled"].contains(&run["status"].as_str().unwrap()) {
        return error(
            StatusCode::CONFLICT,
            &format!("run `{id}` already finished"),
        );
    }
    run["status"] = json!("cancelled");
    Json(run.clone()).into_response()
}

pub struct Fake {
    runner: Shared,
    pub target: trigger_client::TargetConfig,
    _token: tempfile::NamedTempFile,
}

pub async fn fake_runner(token: &str) -> Fake {
    let runner: Shared = Arc::default();
    let router = Router::new()
        .route("/api/v1/chains/{chain}/runs", post(create))
        .route("/api/v1/runs/{id}", get(show))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .with_state(runner.clone());
    let base = spawn(router).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{token}\n")).unwrap();
    let mut target = target(Kind::Pipelines, &base, "/");
    target.token_file = Some(file.path().to_owned());
    target.pipeline = Some("demo".into());
    Fake {
        runner,
        target,
        _token: file,
    }
}

fn request(key: &str) -> RunRequest {
    let mut req = RunRequest::new("", key);
    req.config = json!({"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/x"]}});
    req.params.insert("mode".into(), "full".into());
    req
}

#[tokio::test]
async fn trigger_sends_the_whole_config_and_wait_follows_to_success() {
    let fake = fake_runner(TOKEN).await;
    let client = client(&fake.target);
    let handle = client.trigger(&request("batch-1")).await.unwrap();
    assert_eq!(handle.to_string(), "pipelines:run-0");

    let (headers, body) = fake.runner.lock().unwrap().requests[0].clone();
    assert_eq!(headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(
        body,
        json!({
            "config": {"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/x"]}},
            "idempotency_key": "batch-1",
            "params": {"mode": "full"},
        })
    );

    let mut seen = Vec::new();
    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |s| {
            seen.push(s.state)
        })
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(
        seen,
        [RunState::Queued, RunState::Running, RunState::Succeeded]
    );
}

#[tokio::test]
async fn a_repeated_key_returns_the_same_run_and_another_body_is_a_conflict() {
    let fake = fake_runner(TOKEN).await;
    let client = client(&fake.target);
    let first = client.trigger(&request("batch-2")).await.unwrap();
    let again = client.trigger(&request("batch-2")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(fake.runner.lock().unwrap().runs.len(), 1);

    let mut other = request("batch-2");
    other.config = json!({"parameters": {"user_full_name": "Someone Else"}});
    let err = client.trigger(&other).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::USAGE);
    assert!(
        err.to_string().contains("idempotency key `batch-2`"),
        "{err}"
    );
    assert!(
        err.to_string().contains("already used with another config or params: idempotency key reused with a different body"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_stage_is_reported_with_its_exit_code() {
    let fake = fake_runner(TOKEN).await;
    let client = client(&fake.target);
    let mut req = request("batch-3");
    req.config = json!({"fail": true});
    let handle = client.trigger(&req).await.unwrap();
    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(
        status.message.as_deref(),
        Some("stage `digital_data_etl` failed (exit code 3)")
    );
}

#[tokio::test]
async fn cancel_is_idempotent() {
    let fake = fake_runner(TOKEN).await;
    let client = client(&fake.target);
    let handle = client.trigger(&request("batch-4")).await.unwrap();
    client.cancel(&handle).await.unwrap();
    assert_eq!(
        client.status(&handle).await.unwrap().state,
        RunState::Cancelled
    );
    // A retried cancel (its first answer lost) finds the run cancelled: that is success, even
    // though the runner answers 409 "already finished".
    client.cancel(&handle).await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_auth_error() {
    let fake = fake_runner("not-the-token").await;
    let err = client(&fake.target)
        .trigger(&request("k"))
        .await
        .unwrap_err();
    let Error::Auth { status, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 401);
    let text = err.to_string();
    assert!(text.contains("missing or invalid bearer token"), "{text}");
    assert!(text.contains("the token from file"), "{text}");
    assert!(!text.contains("not-the-token"));
}

#[tokio::test]
async fn an_unknown_chain_or_run_gives_the_runners_404_text() {
    let fake = fake_runner(TOKEN).await;
    let client = client(&fake.target);
    let mut req = request("k");
    req.pipeline = "nope".into();
    let err = client.trigger(&req).await.unwrap_err();
    assert!(err.to_string().contains("unknown chain `nope`"), "{err}");
    let err = client
        .status(&"pipelines:run-99".parse().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown run `run-99`"), "{err}");
}

#[tokio::test]
async fn a_handle_of_another_kind_is_refused() {
    let fake = fake_runner(TOKEN).await;
    let err = client(&fake.target)
        .status(&"prefect:abc".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadHandle { .. }), "{err:?}");
    assert_eq!(err.exit_code(), exit::USAGE);
}
