//! `zenml` contract: fake ZenML servers of three generations — 0.98 (snapshots, API keys as
//! bearer or exchanged for a token, `project=` on lists), 0.74 (run templates with a bare body,
//! API keys only through `POST /api/v1/login`) and an open-source server without a workload
//! manager (405). Errors are `{"detail": ["ExceptionClass", "message"]}`; run names are unique
//! (409 EntityExistsError); at
//! most two snapshot runs may be starting (`initializing`) at once, a third gets 429; stopping a
//! run that has ended, or is stopping, gets 403 (IllegalOperationError), as does a stop by an
//! account without the right.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use trigger_client::{Error, Kind, RetryPolicy, RunRequest, RunState, TargetConfig, exit};

use crate::helpers::{client, secret_file};
use crate::kit::{Auth, FakeEngine, Shared, fake_engine, not_authenticated};

const API_KEY: &str = "ZENKEY_eyJpZCI6ICJjaS1rZXkifQ";

struct Server {
    version: &'static str,
    /// Whether the trigger routes exist (ZenML Pro workload manager).
    can_run: bool,
    /// Successful logins so far; only the newest token is valid.
    logins: usize,
    runs: Vec<Value>,
    snapshots: Vec<(&'static str, &'static str, &'static str)>,
    /// `expires_in` of login answers.
    expires_in: Option<u64>,
    /// Whether stopping runs is allowed to the caller.
    may_stop: bool,
}

fn detail(status: StatusCode, class: &str, message: &str) -> Response {
    (status, Json(json!({"detail": [class, message]}))).into_response()
}

fn page(items: Vec<Value>) -> Json<Value> {
    let total = items.len();
    Json(json!({"index": 1, "max_size": 20, "total_pages": 1, "total": total, "items": items}))
}

fn minor(server: &Server) -> u32 {
    server.version.split('.').nth(1).unwrap().parse().unwrap()
}

/// An API key as bearer (0.92+) or the newest login token.
fn auth() -> Auth<Server> {
    Auth::rule(|server: &Server, header| {
        let ok = match header.and_then(|h| h.strip_prefix("Bearer ")) {
            Some(API_KEY) => minor(server) >= 92,
            Some(token) => token == format!("jwt-{}", server.logins),
            None => false,
        };
        (!ok).then(not_authenticated)
    })
    .open("/api/v1/info")
    .open("/api/v1/login")
}

async fn info(State(server): State<Shared<Server>>) -> Json<Value> {
    let version = server.lock().unwrap().version;
    Json(
        json!({"id": "srv", "name": "ci", "version": version, "deployment_type": "other", "auth_scheme": "OAUTH2_PASSWORD_BEARER"}),
    )
}

async fn login(
    State(server): State<Shared<Server>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut server = server.lock().unwrap();
    let valid = match form.get("grant_type").map(String::as_str) {
        Some("zenml-api-key") => form.get("password").map(String::as_str) == Some(API_KEY),
        Some("password") => {
            form.get("username").map(String::as_str) == Some("admin")
                && form.get("password").map(String::as_str) == Some("admin-pass")
        }
        _ => false,
    };
    if !valid {
        return detail(
            StatusCode::UNAUTHORIZED,
            "CredentialsNotValid",
            "Authentication error: invalid username or password",
        );
    }
    server.logins += 1;
    Json(json!({"access_token": format!("jwt-{}", server.logins), "token_type": "bearer", "expires_in": server.expires_in, "refresh_token": null, "scope": null})).into_response()
}

async fn list_sources(
    State(shared): State<Shared<Server>>,
    Path(collection): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let server = shared.lock().unwrap();
    let snapshots = minor(&server) >= 90;
    if (collection == "pipeline_snapshots") != snapshots {
        return (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))).into_response();
    }
    let items = server
        .snapshots
        .iter()
        .filter(|(name, pipeline, _)| {
            Some(*name) == query.get("name").map(String::as_str)
                && query.get("pipeline").is_none_or(|p| p == pipeline)
        })
        .map(|(name, _, id)| json!({"id": id, "name": name, "body": {}, "metadata": null}))
        .collect();
    page(items).into_response()
}

async fn run_source(
    State(shared): State<Shared<Server>>,
    Path((collection, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut server = shared.lock().unwrap();
    if !server.can_run {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(json!({"detail": "Method Not Allowed"})),
        )
            .into_response();
    }
    if !server.snapshots.iter().any(|(_, _, known)| *known == id) {
        return detail(
            StatusCode::NOT_FOUND,
            "KeyError",
            &format!("No {collection} with ID {id} found."),
        );
    }
    let config = if collection == "pipeline_snapshots" {
        body["run_configuration"].clone()
    } else {
        body.clone()
    };
    if collection == "run_templates" {
        // <= 0.85: PipelineRunConfiguration is extra="forbid".
        let allowed = [
            "run_name",
            "enable_cache",
            "steps",
            "settings",
            "tags",
            "extra",
            "model",
            "parameters",
            "retry",
        ];
        if let Some(extra) = config
            .as_object()
            .unwrap()
            .keys()
            .find(|k| !allowed.contains(&k.as_str()))
        {
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"detail": [{"loc": ["body", extra], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}]}))).into_response();
        }
    }
    if config.get("parameters").is_some() {
        return detail(
            StatusCode::BAD_REQUEST,
            "ValueError",
            "Can't set pipeline parameters when running a static pipeline via the REST API. Please use step parameters instead.",
        );
    }
    let run_name = config["run_name"].as_str().unwrap_or("run").to_owned();
    let starting = server
        .runs
        .iter()
        .filter(|run| run["body"]["status"] == "initializing")
        .count();
    if starting >= 2 && !server.runs.iter().any(|run| run["name"] == run_name) {
        return detail(
            StatusCode::TOO_MANY_REQUESTS,
            "MaxConcurrentTasksError",
            "Maximum number of concurrent snapshot tasks reached.",
        );
    }
    if server.runs.iter().any(|run| run["name"] == run_name) {
        return detail(
            StatusCode::CONFLICT,
            "EntityExistsError",
            &format!(
                "Unable to create pipeline run {run_name}: A pipeline run with this name already exists."
            ),
        );
    }
    let run = json!({
        "id": format!("9d3c0000-0000-4000-8000-{:012}", server.runs.len()), "name": run_name, "permission_denied": false,
        "body": {"status": "initializing", "in_progress": true, "status_reason": "Queued for snapshot execution."},
        "metadata": null, "resources": null, "steps": config["steps"],
    });
    server.runs.push(run.clone());
    Json(run).into_response()
}

async fn list_runs(
    State(shared): State<Shared<Server>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let server = shared.lock().unwrap();
    let items = server
        .runs
        .iter()
        .filter(|run| query.get("name").is_none_or(|n| run["name"] == n.as_str()))
        .cloned()
        .collect();
    page(items).into_response()
}

/// initializing -> running -> completed, one step per GET.
async fn show_run(State(shared): State<Shared<Server>>, Path(id): Path<String>) -> Response {
    let mut server = shared.lock().unwrap();
    let Some(run) = server.runs.iter_mut().find(|run| run["id"] == id.as_str()) else {
        return detail(
            StatusCode::NOT_FOUND,
            "KeyError",
            &format!(
                "Unable to get pipeline run with ID {id}: No pipeline run with this ID found."
            ),
        );
    };
    let next = match run["body"]["status"].as_str().unwrap() {
        "initializing" => json!({"status": "running", "in_progress": true, "status_reason": null}),
        "running" => json!({"status": "completed", "in_progress": false, "status_reason": null}),
        "stopping" => {
            json!({"status": "stopped", "in_progress": false, "status_reason": "Stopped by user."})
        }
        _ => run["body"].clone(),
    };
    run["body"] = next;
    Json(run.clone()).into_response()
}

async fn stop_run(State(shared): State<Shared<Server>>, Path(id): Path<String>) -> Response {
    let mut server = shared.lock().unwrap();
    let may_stop = server.may_stop;
    let Some(run) = server.runs.iter_mut().find(|run| run["id"] == id.as_str()) else {
        return detail(StatusCode::NOT_FOUND, "KeyError", "no run");
    };
    let refusal = match run["body"]["status"].as_str().unwrap() {
        "completed" => Some("Cannot stop a run that is already completed."),
        "stopped" => Some("Run is already stopped."),
        "stopping" => Some("Run is already being stopped."),
        _ if !may_stop => Some("You don't have permissions to update this pipeline run."),
        _ => None,
    };
    if let Some(message) = refusal {
        return detail(StatusCode::FORBIDDEN, "IllegalOperationError", message);
    }
    run["body"] = json!({"status": "stopping", "in_progress": true, "status_reason": null});
    Json(json!(null)).into_response()
}

async fn fake_zenml(version: &'static str, can_run: bool) -> FakeEngine<Server> {
    fake_zenml_with(version, can_run, Some(3600)).await
}

async fn fake_zenml_with(
    version: &'static str,
    can_run: bool,
    expires_in: Option<u64>,
) -> FakeEngine<Server> {
    let server = Server {
        version,
        can_run,
        logins: 0,
        expires_in,
        may_stop: true,
        runs: Vec::new(),
        snapshots: vec![
            (
                "digital_data_etl",
                "digital_data_etl",
                "5e1f0000-0000-4000-8000-000000000001",
            ),
            (
                "nightly",
                "digital_data_etl",
                "5e1f0000-0000-4000-8000-000000000002",
            ),
            (
                "nightly",
                "feature_engineering",
                "5e1f0000-0000-4000-8000-000000000003",
            ),
        ],
    };
    // `/api/v1/runs` must win over `/api/v1/{collection}`: axum prefers static segments.
    fake_engine(server)
        .auth(auth())
        .route("/api/v1/info", get(info))
        .route("/api/v1/login", post(login))
        .route("/api/v1/{collection}", get(list_sources))
        .route("/api/v1/{collection}/{id}/runs", post(run_source))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(show_run))
        .route("/api/v1/runs/{id}/stop", post(stop_run))
        .spawn()
        .await
}

/// What the server saw, from its request log.
struct Seen {
    /// The login forms.
    logins: Vec<HashMap<String, String>>,
    /// `(collection, query)` of every list call.
    queries: Vec<(String, HashMap<String, String>)>,
    /// The bodies of every run call.
    bodies: Vec<Value>,
}

fn seen(engine: &FakeEngine<Server>) -> Seen {
    let requests = engine.requests();
    Seen {
        logins: engine
            .requests_to(Method::POST, "/api/v1/login")
            .iter()
            .map(|seen| seen.form())
            .collect(),
        queries: requests
            .iter()
            .filter(|seen| seen.method == Method::GET && seen.uri.query().is_some())
            .map(|seen| {
                let collection = seen.uri.path().rsplit('/').next().unwrap().to_owned();
                (collection, seen.query())
            })
            .collect(),
        bodies: engine.bodies_to(Method::POST, "/runs"),
    }
}

fn key_target(engine: &FakeEngine<Server>, key: &str) -> (TargetConfig, tempfile::NamedTempFile) {
    let file = secret_file(key);
    let mut target = engine.target(Kind::Zenml, "/");
    target.token_file = Some(file.path().to_owned());
    (target, file)
}

fn etl_request(key: &str) -> RunRequest {
    let mut req = RunRequest::new("digital_data_etl", key);
    req.config = json!({"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/a"]}});
    req
}

#[tokio::test]
async fn zenml_098_runs_a_snapshot_with_step_parameters_and_one_api_key_login() {
    let engine = fake_zenml("0.98.0", true).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    let client = client(&target);
    let handle = client.trigger(&etl_request("batch-z1")).await.unwrap();
    assert_eq!(
        handle.to_string(),
        "zenml:9d3c0000-0000-4000-8000-000000000000"
    );

    let server_state = seen(&engine);
    assert_eq!(
        server_state.logins.len(),
        1,
        "the key is exchanged once for a token"
    );
    assert_eq!(
        server_state.logins[0].get("grant_type").map(String::as_str),
        Some("zenml-api-key")
    );
    assert!(
        engine
            .requests()
            .iter()
            .all(|seen| seen.header("authorization") != Some(&format!("Bearer {API_KEY}"))),
        "the key itself is never sent as the bearer"
    );
    assert_eq!(
        server_state.bodies[0],
        json!({"run_configuration": {
            "run_name": "digital_data_etl-batch-z1",
            "steps": {
                "crawl_links": {"parameters": {"links": ["https://decodingml.substack.com/p/a"]}},
                "get_or_create_user": {"parameters": {"user_full_name": "Paul Iusztin"}},
            }}, "step_run": null})
    );
    let (collection, query) = &server_state.queries[0];
    assert_eq!(collection, "pipeline_snapshots");
    assert_eq!(
        query.get("name").map(String::as_str),
        Some("digital_data_etl")
    );
    assert_eq!(query.get("project").map(String::as_str), Some("default"));

    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (status.state, status.raw_state.as_str()),
        (RunState::Succeeded, "completed")
    );
    assert_eq!(seen(&engine).logins.len(), 1, "the token is reused");
}

#[tokio::test]
async fn zenml_074_runs_a_template_with_a_bare_body_after_an_api_key_login() {
    let engine = fake_zenml("0.74.0", true).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    let client = client(&target);
    let handle = client.trigger(&etl_request("batch-z2")).await.unwrap();
    let server_state = seen(&engine);
    assert_eq!(server_state.logins.len(), 1);
    assert_eq!(
        server_state.logins[0].get("grant_type").map(String::as_str),
        Some("zenml-api-key")
    );
    assert_eq!(
        server_state.bodies[0]["run_name"],
        "digital_data_etl-batch-z2"
    );
    assert!(
        server_state.bodies[0].get("run_configuration").is_none(),
        "templates take the bare config"
    );
    let (collection, query) = &server_state.queries[0];
    assert_eq!(collection, "run_templates");
    assert!(
        query.get("project").is_none(),
        "no project scoping before 0.80"
    );
    assert_eq!(
        client.status(&handle).await.unwrap().state,
        RunState::Running
    );
}

#[tokio::test]
async fn an_open_source_server_answers_405_and_we_say_why() {
    let engine = fake_zenml("0.98.0", false).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    let err = client(&target)
        .trigger(&etl_request("k"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "this ZenML server cannot start runs over REST (ZenML Pro feature, needs a remote stack); use kind = \"pipelines\" or run the pipeline from a chain stage"
    );
    assert_eq!(err.exit_code(), exit::USAGE);
}

#[tokio::test]
async fn a_repeated_key_finds_the_existing_run_by_name() {
    let engine = fake_zenml("0.98.0", true).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    let client = client(&target);
    let first = client.trigger(&etl_request("batch-z4")).await.unwrap();
    let again = client.trigger(&etl_request("batch-z4")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(engine.state().runs.len(), 1);
}

#[tokio::test]
async fn password_login_errors_keep_zenmls_text() {
    let engine = fake_zenml("0.98.0", true).await;
    let file = secret_file("wrong");
    let mut target = engine.target(Kind::Zenml, "/");
    target.username = Some("admin".into());
    target.password_file = Some(file.path().to_owned());
    let err = client(&target)
        .trigger(&etl_request("k"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("CredentialsNotValid: Authentication error"),
        "{err}"
    );
    assert!(err.to_string().contains("user `admin`"), "{err}");
}

#[tokio::test]
async fn ambiguous_snapshot_names_need_the_pipeline() {
    let engine = fake_zenml("0.98.0", true).await;
    let (mut target, _guard) = key_target(&engine, API_KEY);
    let mut req = etl_request("batch-z6");
    req.pipeline = "nightly".into();
    let err = client(&target).trigger(&req).await.unwrap_err();
    assert!(err.to_string().contains("zenml_pipeline"), "{err}");

    target.zenml_pipeline = Some("digital_data_etl".into());
    client(&target).trigger(&req).await.unwrap();
}

#[tokio::test]
async fn unmapped_parameters_are_refused_and_mappings_are_configurable() {
    let engine = fake_zenml("0.98.0", true).await;
    let (mut target, _guard) = key_target(&engine, API_KEY);
    let mut req = etl_request("batch-z7");
    req.params
        .insert("dataset_id".into(), "pauliusztin/llmtwin".into());
    let err = client(&target).trigger(&req).await.unwrap_err();
    assert!(
        err.to_string().contains("`dataset_id` has no ZenML step"),
        "{err}"
    );

    target.step_params = Some(
        [
            ("user_full_name", "get_or_create_user.user_full_name"),
            ("links", "crawl_links.links"),
            ("dataset_id", "push_to_huggingface.dataset_id"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    client(&target).trigger(&req).await.unwrap();
    let steps = seen(&engine).bodies.last().unwrap()["run_configuration"]["steps"].clone();
    assert_eq!(
        steps["push_to_huggingface"]["parameters"]["dataset_id"],
        "pauliusztin/llmtwin"
    );
}

#[tokio::test]
async fn cancel_stops_the_run() {
    let engine = fake_zenml("0.98.0", true).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    let client = client(&target);
    let handle = client.trigger(&etl_request("batch-z8")).await.unwrap();
    client.cancel(&handle).await.unwrap();
    let status = client
        .wait(&handle, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Cancelled);
    assert_eq!(status.message.as_deref(), Some("Stopped by user."));
}

#[tokio::test]
async fn servers_older_than_063_are_refused() {
    let engine = fake_zenml("0.62.0", true).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    let err = client(&target)
        .trigger(&etl_request("k"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no run templates"), "{err}");
}

#[tokio::test]
async fn the_token_is_renewed_before_it_expires() {
    let engine = fake_zenml_with("0.98.0", true, Some(1)).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    let client = client(&target);
    let handle = client.trigger(&etl_request("batch-z9")).await.unwrap();
    assert_eq!(seen(&engine).logins.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    client.status(&handle).await.unwrap();

    let requests = engine.requests();
    let logins: Vec<usize> = requests
        .iter()
        .enumerate()
        .filter(|(_, seen)| seen.uri.path() == "/api/v1/login")
        .map(|(index, _)| index)
        .collect();
    assert_eq!(logins.len(), 2, "one login per token lifetime");
    let after: Vec<_> = requests[logins[1] + 1..]
        .iter()
        .map(|seen| seen.header("authorization").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        after,
        ["Bearer jwt-2"],
        "the status read went once, with the new token (no 401 first)"
    );
}

#[tokio::test]
async fn a_third_run_waits_for_a_free_slot_through_429_retries() {
    let engine = fake_zenml("0.98.0", true).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    // One client throughout (the fake honours only the newest login's token).
    let patient = std::sync::Arc::new(client(&target).with_retry(RetryPolicy {
        max_attempts: 30,
        base_delay: std::time::Duration::from_millis(20),
        max_delay: std::time::Duration::from_millis(300),
    }));
    let first = patient.trigger(&etl_request("batch-a")).await.unwrap();
    patient.trigger(&etl_request("batch-b")).await.unwrap();

    // With both slots taken, every attempt gets 429: the retries give up, naming them.
    let err = client(&target)
        .trigger(&etl_request("batch-c"))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::UNREACHABLE, "{err}");
    assert_eq!(err.status(), Some(429));
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("after 4 attempts"), "{text}");
    assert!(
        text.contains(
            "MaxConcurrentTasksError: Maximum number of concurrent snapshot tasks reached."
        ),
        "{text}"
    );

    // A slot frees while the client backs off: the same request then starts the run.
    let refused = engine.requests_to(Method::POST, "/runs").len();
    let third = tokio::spawn({
        let patient = patient.clone();
        async move { patient.trigger(&etl_request("batch-c")).await }
    });
    while engine.requests_to(Method::POST, "/runs").len() < refused + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    patient.status(&first).await.unwrap(); // initializing -> running
    let handle = third.await.unwrap().unwrap();
    let runs = engine.state().runs.clone();
    assert_eq!(runs.len(), 3, "the refused attempts left no runs behind");
    assert_eq!(runs[2]["id"], handle.id.as_str());
    let bodies = seen(&engine).bodies;
    assert!(
        bodies[2..].iter().all(|body| body == &bodies[2]),
        "every retry sends the same run name"
    );
}

#[tokio::test]
async fn stopping_a_run_that_already_ended_is_success_and_missing_rights_are_not() {
    let engine = fake_zenml("0.98.0", true).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    let client = client(&target);
    let done = client.trigger(&etl_request("batch-s1")).await.unwrap();
    client
        .wait(&done, std::time::Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    client.cancel(&done).await.unwrap();
    assert_eq!(
        engine.requests_to(Method::POST, "/stop").len(),
        1,
        "the 403 is not retried"
    );

    let running = client.trigger(&etl_request("batch-s2")).await.unwrap();
    engine.state().may_stop = false;
    let err = client.cancel(&running).await.unwrap_err();
    assert!(matches!(err, Error::Auth { status: 403, .. }), "{err:?}");
    assert!(
        err.to_string().contains("You don't have permissions"),
        "{err}"
    );
    assert!(
        err.to_string().contains("are not allowed to do this"),
        "{err}"
    );
    assert_eq!(
        engine.state().runs[1]["body"]["status"],
        "running",
        "the run was not stopped"
    );
}

#[tokio::test]
async fn end_to_end_data_configs_are_refused_before_any_request() {
    let engine = fake_zenml("0.98.0", true).await;
    let (target, _guard) = key_target(&engine, API_KEY);
    let mut req = RunRequest::new("digital_data_etl", "batch-e2e");
    req.config = json!({"parameters": {"author_links": [{"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/a"]}], "test_split_size": 0.1}});
    let err = client(&target).trigger(&req).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::USAGE);
    assert!(err.to_string().contains("`end_to_end_data`"), "{err}");
    assert!(
        err.to_string().contains("format = \"digital_data_etl\""),
        "{err}"
    );
    assert_eq!(engine.count(), 0, "nothing was sent");
}
