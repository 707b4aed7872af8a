//! `prefect` contract: a fake Prefect 3 API with the documented shapes: deployments by name,
//! `create_flow_run` (201 new, 200 for a repeated idempotency key, 409 on a parameter that
//! fails validation), `flow_runs/{id}` state progression, `set_state` cancel, basic auth with
//! `{"exception_message": "Unauthorized"}`, and `{"detail": ...}` errors.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use trigger_client::{Error, Kind, RunRequest, RunState, TargetConfig};

use crate::helpers::{client, secret_file, target};
use crate::kit::{Auth, FakeEngine, Shared, basic, bearer, fake_engine};

const DEPLOYMENTS: [(&str, &str, &str); 3] = [
    (
        "digital_data_etl",
        "ci",
        "6c9a5c3e-0000-4000-8000-000000000001",
    ),
    ("fail-flow", "ci", "6c9a5c3e-0000-4000-8000-000000000002"),
    ("slow-flow", "ci", "6c9a5c3e-0000-4000-8000-000000000003"),
];

#[derive(Default)]
pub struct Server {
    runs: HashMap<String, Value>,
    keys: HashMap<(String, String), String>,
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"detail": text}))).into_response()
}

/// Basic `admin:ci-secret` or a Cloud API key; else `{"exception_message": "Unauthorized"}`.
fn auth() -> Auth<Server> {
    Auth::accept(
        &[basic("admin", "ci-secret"), bearer("pnu_cloud_key")],
        || {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"exception_message": "Unauthorized"})),
            )
                .into_response()
        },
    )
}

fn state(kind: &str, name: &str, message: Option<&str>) -> Value {
    json!({"id": "s", "type": kind, "name": name, "timestamp": "2026-11-25T10:00:00Z", "message": message, "data": null, "state_details": {}})
}

fn set_state(run: &mut Value, kind: &str, name: &str, message: Option<&str>) {
    run["state_type"] = json!(kind);
    run["state_name"] = json!(name);
    run["state"] = state(kind, name, message);
}

async fn by_name(Path((flow, name)): Path<(String, String)>) -> Response {
    match DEPLOYMENTS.iter().find(|(f, n, _)| *f == flow && *n == name) {
        Some((flow, name, id)) => Json(json!({"id": id, "name": name, "flow_id": format!("flow-{flow}"), "status": "READY", "enforce_parameter_schema": true})).into_response(),
        None => detail(StatusCode::NOT_FOUND, "Deployment not found"),
    }
}

async fn create_flow_run(
    State(server): State<Shared<Server>>,
    Path(deployment): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Some((flow, _, _)) = DEPLOYMENTS.iter().find(|(_, _, id)| *id == deployment) else {
        return detail(StatusCode::NOT_FOUND, "Deployment not found");
    };
    let mut server = server.lock().unwrap();
    let parameters = body["parameters"].clone();
    if *flow == "digital_data_etl" && !parameters["links"].is_array() {
        return detail(
            StatusCode::CONFLICT,
            &format!(
                "Error creating flow run: Validation failed for field 'links'. Failure reason: {} is not of type 'array'",
                parameters["links"]
            ),
        );
    }
    let key = body["idempotency_key"].as_str().map(str::to_owned);
    if let Some(key) = &key
        && let Some(id) = server.keys.get(&(deployment.clone(), key.clone()))
    {
        return (StatusCode::OK, Json(server.runs[id].clone())).into_response();
    }
    let id = format!("0b7c4a52-0000-4000-8000-{:012}", server.runs.len());
    let mut run = json!({
        "id": id, "name": "chivalrous-gharial", "flow_id": format!("flow-{flow}"), "deployment_id": deployment,
        "parameters": parameters, "idempotency_key": key, "tags": body["tags"], "start_time": null, "end_time": null,
    });
    set_state(&mut run, "SCHEDULED", "Scheduled", None);
    server.runs.insert(id.clone(), run.clone());
    if let Some(key) = key {
        server.keys.insert((deployment, key), id);
    }
    (StatusCode::CREATED, Json(run)).into_response()
}

/// SCHEDULED -> PENDING -> RUNNING -> COMPLETED (FAILED for fail-flow), one step per GET.
async fn flow_run(State(server): State<Shared<Server>>, Path(id): Path<String>) -> Response {
    let mut guard = server.lock().unwrap();
    let server = &mut *guard;
    let Some(run) = server.runs.get_mut(&id) else {
        return detail(StatusCode::NOT_FOUND, "Flow run not found");
    };
    let failing = run["flow_id"] == "flow-fail-flow";
    match run["state_type"].as_str().unwrap() {
        "SCHEDULED" => set_state(run, "PENDING", "Pending", None),
        "PENDING" => set_state(run, "RUNNING", "Running", None),
        "RUNNING" if failing => set_state(
            run,
            "FAILED",
            "Failed",
            Some("Flow run encountered an exception: RuntimeError: boom"),
        ),
        "RUNNING" => set_state(run, "COMPLETED", "Completed", Some("All states completed.")),
        "CANCELLING" => set_state(
            run,
            "CANCELLED",
            "Cancelled",
            Some("cancelled by trigger-client"),
        ),
        _ => {}
    }
    Json(run.clone()).into_response()
}

async fn set_state_route(
    State(server): State<Shared<Server>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut server = server.lock().unwrap();
    let Some(run) = server.runs.get_mut(&id) else {
        return detail(StatusCode::NOT_FOUND, "Flow run not found");
    };
    if run["state_type"] == "COMPLETED" {
        return (StatusCode::OK, Json(json!({"status": "ABORT", "details": {"type": "abort_details", "reason": "This run has already terminated."}, "state": null}))).into_response();
    }
    if run["state_type"] == "SCHEDULED" {
        // BypassCancellingFlowRunsWithNoInfra: reject, but move the run to CANCELLED.
        set_state(
            run,
            "CANCELLED",
            "Cancelled",
            Some("Scheduled flow run has no infrastructure to terminate."),
        );
        return (StatusCode::OK, Json(json!({"status": "REJECT", "details": {"type": "reject_details", "reason": "Scheduled flow run has no infrastructure to terminate."}, "state": run["state"]}))).into_response();
    }
    let kind = body["state"]["type"].as_str().unwrap().to_owned();
    let message = body["state"]["message"].as_str().map(str::to_owned);
    set_state(run, &kind, "Cancelling", message.as_deref());
    (StatusCode::CREATED, Json(json!({"status": "ACCEPT", "details": {"type": "accept_details"}, "state": run["state"]}))).into_response()
}

pub async fn fake_prefect() -> FakeEngine<Server> {
    fake_engine(Server::default())
        .auth(auth())
        .route("/api/deployments/name/{flow}/{name}", get(by_name))
        .route(
            "/api/deployments/{id}/create_flow_run",
            post(create_flow_run),
        )
        .route("/api/flow_runs/{id}", get(flow_run))
        .route("/api/flow_runs/{id}/set_state", post(set_state_route))
        .spawn()
        .await
}

/// The bodies `create_flow_run` received.
fn created(engine: &FakeEngine<Server>) -> Vec<Value> {
    engine.bodies_to(Method::POST, "/create_flow_run")
}

/// A target with basic auth `admin` + a password file (kept alive by the returned guard).
fn basic_target(
    engine: &FakeEngine<Server>,
    password: &str,
) -> (TargetConfig, tempfile::NamedTempFile) {
    let file = secret_file(password);
    let mut target = engine.target(Kind::Prefect, "api");
    target.username = Some("admin".into());
    target.password_file = Some(file.path().to_owned());
    (target, file)
}

fn etl_request(key: &str) -> RunRequest {
    let mut req = RunRequest::new("digital_data_etl/ci", key);
    req.config = json!({"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/a", "https://medium.com/@p/b"]}});
    req
}

#[tokio::test]
async fn triggers_a_deployment_with_parameters_and_follows_it_to_completed() {
    let engine = fake_prefect().await;
    let (target, _guard) = basic_target(&engine, "ci-secret");
    let client = client(&target);
    let handle = client.trigger(&etl_request("batch-p1")).await.unwrap();
    assert_eq!(
        handle.to_string(),
        "prefect:0b7c4a52-0000-4000-8000-000000000000"
    );

    let body = created(&engine)[0].clone();
    assert_eq!(
        body["parameters"],
        json!({"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/a", "https://medium.com/@p/b"]})
    );
    assert_eq!(body["idempotency_key"], "batch-p1");

    let mut raw = Vec::new();
    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |s| {
            raw.push(s.raw_state.clone())
        })
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(raw, ["PENDING", "RUNNING", "COMPLETED"]);
    assert_eq!(status.message.as_deref(), Some("All states completed."));
}

#[tokio::test]
async fn a_repeated_idempotency_key_gets_200_and_the_same_run() {
    let engine = fake_prefect().await;
    let (target, _guard) = basic_target(&engine, "ci-secret");
    let client = client(&target);
    let first = client.trigger(&etl_request("batch-p2")).await.unwrap();
    let again = client.trigger(&etl_request("batch-p2")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(engine.state().runs.len(), 1, "one run for one key");
}

#[tokio::test]
async fn a_failing_flow_ends_failed_with_prefects_message() {
    let engine = fake_prefect().await;
    let (target, _guard) = basic_target(&engine, "ci-secret");
    let client = client(&target);
    let handle = client
        .trigger(&RunRequest::new("fail-flow/ci", "batch-p3"))
        .await
        .unwrap();
    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(
        status.message.as_deref(),
        Some("Flow run encountered an exception: RuntimeError: boom")
    );
}

#[tokio::test]
async fn cancel_sets_cancelling_and_the_run_ends_cancelled() {
    let engine = fake_prefect().await;
    let (target, _guard) = basic_target(&engine, "ci-secret");
    let client = client(&target);
    let handle = client
        .trigger(&RunRequest::new("slow-flow/ci", "batch-p4"))
        .await
        .unwrap();
    client.status(&handle).await.unwrap(); // PENDING: infrastructure exists now
    client.cancel(&handle).await.unwrap();
    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Cancelled);
}

#[tokio::test]
async fn cancelling_a_scheduled_run_is_rejected_into_cancelled() {
    let engine = fake_prefect().await;
    let (target, _guard) = basic_target(&engine, "ci-secret");
    let client = client(&target);
    let handle = client
        .trigger(&RunRequest::new("slow-flow/ci", "batch-p4b"))
        .await
        .unwrap();
    client.cancel(&handle).await.unwrap();
    let status = client.status(&handle).await.unwrap();
    assert_eq!(status.state, RunState::Cancelled);
}

#[tokio::test]
async fn cancelling_a_finished_run_reports_prefects_refusal() {
    let engine = fake_prefect().await;
    let (target, _guard) = basic_target(&engine, "ci-secret");
    let client = client(&target);
    let handle = client.trigger(&etl_request("batch-p5")).await.unwrap();
    client
        .wait(&handle, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    let err = client.cancel(&handle).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("ABORT: This run has already terminated."),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_clear_401s() {
    let engine = fake_prefect().await;
    let (target, _guard) = basic_target(&engine, "wrong");
    let err = client(&target)
        .trigger(&etl_request("k"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("Unauthorized") && text.contains("user `admin`"),
        "{text}"
    );

    let err = client(&target_without_auth(&engine))
        .trigger(&etl_request("k"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("set `token_env`"), "{err}");
}

fn target_without_auth(engine: &FakeEngine<Server>) -> TargetConfig {
    target(Kind::Prefect, &engine.url, "api")
}

#[tokio::test]
async fn a_cloud_api_key_goes_as_bearer() {
    let engine = fake_prefect().await;
    let file = secret_file("pnu_cloud_key");
    let mut target = target_without_auth(&engine);
    target.token_file = Some(file.path().to_owned());
    client(&target)
        .trigger(&etl_request("k-cloud"))
        .await
        .unwrap();
    let requests = engine.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|seen| seen.header("authorization") == Some("Bearer pnu_cloud_key"))
    );
}

#[tokio::test]
async fn unknown_deployments_and_invalid_parameters_give_prefects_text() {
    let engine = fake_prefect().await;
    let (target, _guard) = basic_target(&engine, "ci-secret");
    let client = client(&target);
    let err = client
        .trigger(&RunRequest::new("digital_data_etl/prod", "k"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Deployment not found"), "{err}");
    assert!(
        err.to_string()
            .contains("no deployment `prod` of flow `digital_data_etl`"),
        "{err}"
    );

    let mut req = etl_request("k");
    req.params.insert("links".into(), "not-a-list".into());
    let err = client.trigger(&req).await.unwrap_err();
    assert!(
        err.to_string().contains("409")
            && err
                .to_string()
                .contains("Validation failed for field 'links'"),
        "{err}"
    );

    let err = client
        .trigger(&RunRequest::new("no-slash", "k"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("flow-name/deployment-name"),
        "{err}"
    );
}
