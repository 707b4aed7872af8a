//! `airflow` contract: fake Airflow 3 (`/auth/token` JWT, strict `/api/v2` bodies with a
//! required `logical_date`, 200 on trigger, 409 on a duplicate `dag_run_id`, 401 "Not
//! authenticated", 403 "Invalid JWT token") and Airflow 2 (`/api/v1`, basic auth).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use trigger_client::{Error, Kind, RunRequest, RunState, TargetConfig};

use crate::helpers::{client, secret_file};
use crate::kit::{Auth, FakeEngine, Shared, basic, fake_engine};

#[derive(Default)]
struct Server {
    /// 2 or 3.
    major: u8,
    /// Tokens issued so far; only the newest is valid (older ones "expired").
    logins: usize,
    runs: HashMap<(String, String), Value>,
}

fn detail(status: StatusCode, detail: Value) -> Response {
    (status, Json(json!({"detail": detail}))).into_response()
}

/// Airflow 3: bearer JWT (only the newest is valid). Airflow 2: basic `admin:admin-pass`.
fn auth(health: &'static str) -> Auth<Server> {
    Auth::rule(|server: &Server, header| {
        if server.major == 2 {
            return if header == Some(basic("admin", "admin-pass").as_str()) {
                None
            } else {
                Some((StatusCode::UNAUTHORIZED, Json(json!({"detail": null, "status": 401, "title": "Unauthorized", "type": "https://airflow.apache.org/docs/apache-airflow/2.10.5/stable-rest-api-ref.html#section/Errors/Unauthenticated"}))).into_response())
            };
        }
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Some(detail(StatusCode::UNAUTHORIZED, json!("Not authenticated")));
        };
        match token
            .strip_prefix("jwt-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if n == server.logins => None,
            Some(_) => Some(detail(StatusCode::UNAUTHORIZED, json!("Token has expired"))),
            None => Some(detail(StatusCode::FORBIDDEN, json!("Invalid JWT token"))),
        }
    })
    .open("/auth/token")
    .open(health)
}

async fn token(State(server): State<Shared<Server>>, Json(body): Json<Value>) -> Response {
    if body != json!({"username": "admin", "password": "admin-pass"}) {
        return detail(StatusCode::UNAUTHORIZED, json!("Invalid credentials"));
    }
    let mut server = server.lock().unwrap();
    server.logins += 1;
    (
        StatusCode::CREATED,
        Json(json!({"access_token": format!("jwt-{}", server.logins)})),
    )
        .into_response()
}

fn dag_run(dag: &str, run_id: &str, conf: &Value) -> Value {
    json!({
        "dag_run_id": run_id, "dag_id": dag, "logical_date": null, "queued_at": "2026-11-25T10:00:00Z",
        "start_date": null, "end_date": null, "run_type": "manual", "state": "queued",
        "triggered_by": "rest_api", "conf": conf, "note": "triggered by trigger-client",
    })
}

async fn trigger(
    State(shared): State<Shared<Server>>,
    Path((version, dag)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut server = shared.lock().unwrap();
    if version != format!("v{}", server.major - 1) {
        return detail(StatusCode::NOT_FOUND, json!("Not Found"));
    }
    if server.major == 3 {
        // TriggerDAGRunPostBody is strict and `logical_date` has no default.
        let allowed = [
            "dag_run_id",
            "logical_date",
            "data_interval_start",
            "data_interval_end",
            "run_after",
            "conf",
            "note",
        ];
        if let Some(extra) = body
            .as_object()
            .unwrap()
            .keys()
            .find(|k| !allowed.contains(&k.as_str()))
        {
            return detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!([{"type": "extra_forbidden", "loc": ["body", extra], "msg": "Extra inputs are not permitted"}]),
            );
        }
        if body.get("logical_date").is_none() {
            return detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!([{"type": "missing", "loc": ["body", "logical_date"], "msg": "Field required"}]),
            );
        }
    }
    if !body["conf"].is_object() {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{"type": "dict_type", "loc": ["body", "conf"], "msg": "Input should be a valid dictionary"}]),
        );
    }
    if !["hello_dag", "fail_dag"].contains(&dag.as_str()) {
        return detail(
            StatusCode::NOT_FOUND,
            json!(format!("Dag with dag_id: '{dag}' not found")),
        );
    }
    let run_id = body["dag_run_id"].as_str().unwrap().to_owned();
    if server.runs.contains_key(&(dag.clone(), run_id.clone())) {
        return if server.major == 3 {
            detail(
                StatusCode::CONFLICT,
                json!({"reason": "Unique constraint violation", "statement": "hidden", "orig_error": "hidden", "message": "Serious error when handling your request. Check logs for more details - you will find it in api server when the log level is set to debug"}),
            )
        } else {
            (StatusCode::CONFLICT, Json(json!({"detail": format!("DAGRun with DAG ID: '{dag}' and DAGRun ID: '{run_id}' already exists"), "status": 409, "title": "Conflict", "type": "https://airflow.apache.org/docs/apache-airflow/2.10.5/stable-rest-api-ref.html#section/Errors/AlreadyExists"}))).into_response()
        };
    }
    let run = dag_run(&dag, &run_id, &body["conf"]);
    server.runs.insert((dag, run_id), run.clone());
    (StatusCode::OK, Json(run)).into_response()
}

/// queued -> running -> success (failed for fail_dag), one step per GET.
async fn show(
    State(shared): State<Shared<Server>>,
    Path((version, dag, run_id)): Path<(String, String, String)>,
) -> Response {
    let mut guard = shared.lock().unwrap();
    let server = &mut *guard;
    if version != format!("v{}", server.major - 1) {
        return detail(StatusCode::NOT_FOUND, json!("Not Found"));
    }
    let Some(run) = server.runs.get_mut(&(dag.clone(), run_id.clone())) else {
        return detail(
            StatusCode::NOT_FOUND,
            json!(format!(
                "The DagRun with dag_id: `{dag}` and run_id: `{run_id}` was not found"
            )),
        );
    };
    let next = match (run["state"].as_str().unwrap(), dag.as_str()) {
        ("queued", _) => "running",
        ("running", "fail_dag") => "failed",
        ("running", _) => "success",
        (other, _) => other,
    };
    run["state"] = json!(next);
    Json(run.clone()).into_response()
}

async fn patch(
    State(shared): State<Shared<Server>>,
    Path((version, dag, run_id)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut server = shared.lock().unwrap();
    if version != format!("v{}", server.major - 1) {
        return detail(StatusCode::NOT_FOUND, json!("Not Found"));
    }
    let Some(run) = server.runs.get_mut(&(dag, run_id)) else {
        return detail(StatusCode::NOT_FOUND, json!("not found"));
    };
    run["state"] = body["state"].clone();
    Json(run.clone()).into_response()
}

async fn task_instances(Path((_version, dag, _run)): Path<(String, String, String)>) -> Response {
    let state = if dag == "fail_dag" {
        "failed"
    } else {
        "success"
    };
    Json(json!({"task_instances": [{"task_id": "crawl", "state": state}, {"task_id": "report", "state": "upstream_failed"}], "total_entries": 2})).into_response()
}

async fn fake_airflow(major: u8) -> FakeEngine<Server> {
    let health = if major == 3 {
        "/api/v2/monitor/health"
    } else {
        "/api/v1/health"
    };
    fake_engine(Server {
        major,
        ..Server::default()
    })
    .auth(auth(health))
    .route(
        health,
        get(|| async { Json(json!({"metadatabase": {"status": "healthy"}})) }),
    )
    .route("/auth/token", post(token))
    .route("/api/{version}/dags/{dag}/dagRuns", post(trigger))
    .route(
        "/api/{version}/dags/{dag}/dagRuns/{run}",
        get(show).patch(patch),
    )
    .route(
        "/api/{version}/dags/{dag}/dagRuns/{run}/taskInstances",
        get(task_instances),
    )
    .spawn()
    .await
}

/// The bodies the trigger route received.
fn triggered(engine: &FakeEngine<Server>) -> Vec<Value> {
    engine.bodies_to(Method::POST, "/dagRuns")
}

fn login_target(
    engine: &FakeEngine<Server>,
    password: &str,
) -> (TargetConfig, tempfile::NamedTempFile) {
    let file = secret_file(password);
    let mut target = engine.target(Kind::Airflow, "/");
    target.username = Some("admin".into());
    target.password_file = Some(file.path().to_owned());
    (target, file)
}

fn etl_request(dag: &str, key: &str) -> RunRequest {
    let mut req = RunRequest::new(dag, key);
    req.config = json!({"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/a"]}});
    req
}

#[tokio::test]
async fn airflow3_logs_in_triggers_with_conf_and_null_logical_date() {
    let engine = fake_airflow(3).await;
    let (target, _guard) = login_target(&engine, "admin-pass");
    let client = client(&target);
    let handle = client
        .trigger(&etl_request("hello_dag", "batch-a1"))
        .await
        .unwrap();
    assert_eq!(handle.to_string(), "airflow:hello_dag/batch-a1");

    let body = triggered(&engine)[0].clone();
    assert_eq!(body["dag_run_id"], "batch-a1");
    assert_eq!(body["logical_date"], Value::Null);
    assert_eq!(
        body["conf"],
        json!({"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/a"]})
    );

    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (status.state, status.raw_state.as_str()),
        (RunState::Succeeded, "success")
    );
}

#[tokio::test]
async fn a_409_for_our_own_run_id_returns_the_existing_run() {
    let engine = fake_airflow(3).await;
    let (target, _guard) = login_target(&engine, "admin-pass");
    let client = client(&target);
    let first = client
        .trigger(&etl_request("hello_dag", "batch/a 2"))
        .await
        .unwrap();
    let again = client
        .trigger(&etl_request("hello_dag", "batch/a 2"))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert!(first.id.starts_with("hello_dag/batch_a_2-"), "{first}");
    assert_eq!(engine.state().runs.len(), 1);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_on_401() {
    let engine = fake_airflow(3).await;
    let (target, _guard) = login_target(&engine, "admin-pass");
    let client = client(&target);
    let handle = client
        .trigger(&etl_request("hello_dag", "batch-a3"))
        .await
        .unwrap();
    engine.state().logins += 1; // the server moved on: our token is now stale
    let status = client.status(&handle).await.unwrap();
    assert_eq!(status.state, RunState::Running);
    assert_eq!(engine.state().logins, 3, "one fresh login after the 401");
}

#[tokio::test]
async fn wrong_password_and_garbage_token_are_clear() {
    let engine = fake_airflow(3).await;
    let (wrong, _guard) = login_target(&engine, "nope");
    let err = client(&wrong)
        .trigger(&etl_request("hello_dag", "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err:?}");
    assert!(
        err.to_string().contains("Invalid credentials") && err.to_string().contains("user `admin`"),
        "{err}"
    );

    let file = secret_file("garbage");
    let mut garbage = engine.target(Kind::Airflow, "/");
    garbage.token_file = Some(file.path().to_owned());
    let err = client(&garbage)
        .trigger(&etl_request("hello_dag", "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { status: 403, .. }), "{err:?}");
    assert!(
        err.to_string().contains("Invalid JWT token") && err.to_string().contains("not allowed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_dag_run_names_its_failed_tasks() {
    let engine = fake_airflow(3).await;
    let (target, _guard) = login_target(&engine, "admin-pass");
    let client = client(&target);
    let handle = client
        .trigger(&etl_request("fail_dag", "batch-a5"))
        .await
        .unwrap();
    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(
        status.message.as_deref(),
        Some("failed tasks: crawl, report")
    );
}

#[tokio::test]
async fn unknown_dag_gives_airflows_text_and_cancel_marks_failed() {
    let engine = fake_airflow(3).await;
    let (target, _guard) = login_target(&engine, "admin-pass");
    let client = client(&target);
    let err = client.trigger(&etl_request("nope", "k")).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("Dag with dag_id: 'nope' not found"),
        "{err}"
    );

    let handle = client
        .trigger(&etl_request("hello_dag", "batch-a6"))
        .await
        .unwrap();
    client.cancel(&handle).await.unwrap();
    let state =
        engine.state().runs[&("hello_dag".to_owned(), "batch-a6".to_owned())]["state"].clone();
    assert_eq!(state, "failed");
}

#[tokio::test]
async fn airflow2_is_detected_and_uses_basic_auth_and_api_v1() {
    let engine = fake_airflow(2).await;
    let (target, _guard) = login_target(&engine, "admin-pass");
    let client = client(&target);
    let handle = client
        .trigger(&etl_request("hello_dag", "batch-b1"))
        .await
        .unwrap();
    let again = client
        .trigger(&etl_request("hello_dag", "batch-b1"))
        .await
        .unwrap();
    assert_eq!(handle, again, "409 on v1 also returns the existing run");
    let body = triggered(&engine)[0].clone();
    assert!(
        body.get("logical_date").is_none(),
        "airflow 2 gets no logical_date: {body}"
    );
    assert_eq!(engine.state().logins, 0, "no JWT login on airflow 2");
    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded);
}

#[tokio::test]
async fn nothing_airflow_at_the_url_is_a_clear_error() {
    let nothing = fake_engine(()).spawn().await;
    let err = client(&nothing.target(Kind::Airflow, "/"))
        .trigger(&etl_request("hello_dag", "k"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no Airflow 2 or 3 REST API answers"),
        "{err}"
    );
}
