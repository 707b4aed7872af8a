//! dashboard.rs: the runner's web page, served by `pipelines serve` beside its REST API: `GET /`
//! (the runs, one run's stages with `?run=ID`), `GET /dashboard/live` (the part the script
//! refreshes), `GET /dashboard/log?id=ID&stage=NAME` (a stage's log, as text), `POST
//! /dashboard/cancel?id=ID`, `POST /dashboard/start` (a chain with a config), login and logout.
//! It calls the engine directly, as the API does, and shares its building blocks with the
//! watcher's dashboard ([`html`]).
//!
//! Who may use it ([`gate`]): the page needs the API token, typed once and exchanged for an
//! `HttpOnly; SameSite=Strict` session cookie ([`session`]), on loopback too (the token file is
//! 0600 so that other local users cannot start runs; the page keeps it that way). A request from
//! a page of another origin is refused, and every POST but the login must carry the
//! [`page::HEADER`], which a cross-origin form cannot send.

pub mod html;
pub mod page;
pub mod session;

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use rand::Rng;
use runner_api::{RunRequest, Trigger};
use serde::Deserialize;

use crate::engine::{CancelError, Engine, LogError, SubmitError, Submitted};
use crate::state::RunFilter;
use crate::token::ApiToken;
use session::Sessions;

/// Runs the page lists.
const RUNS_SHOWN: usize = 50;
/// The end of a stage's log the page shows.
const LOG_TAIL: u64 = 256 * 1024;

/// The login's path (open without a session).
pub const LOGIN_PATH: &str = "/dashboard/login";
/// The logout's path (a plain form: logging someone out is all another page could do with it).
const LOGOUT_PATH: &str = "/dashboard/logout";

struct Dash {
    engine: Engine,
    token: ApiToken,
    sessions: Sessions,
}

type Shared = State<Arc<Dash>>;

/// The page's routes over `engine`, behind the [`gate`] (the token `token`).
pub fn router(engine: Engine, token: ApiToken) -> axum::Router {
    use html::{SCRIPT, SCRIPT_PATH, STYLE, STYLE_PATH};
    let dash = Arc::new(Dash {
        engine,
        token,
        sessions: Sessions::default(),
    });
    axum::Router::new()
        .route("/", get(index))
        .route(page::LIVE_PATH, get(live))
        .route("/dashboard/log", get(log))
        .route("/dashboard/cancel", post(cancel))
        .route("/dashboard/start", post(start))
        .route(LOGIN_PATH, post(login))
        .route(LOGOUT_PATH, post(logout))
        .route(STYLE_PATH, get(|| async { asset("text/css", STYLE) }))
        .route(
            SCRIPT_PATH,
            get(|| async { asset("text/javascript", SCRIPT) }),
        )
        .route_layer(middleware::from_fn_with_state(dash.clone(), gate))
        .with_state(dash)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

fn secure(mut response: Response) -> Response {
    for (name, value) in html::SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

fn html_page(status: StatusCode, body: String) -> Response {
    secure(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "message": text.into() }))).into_response()
}

/// Whether `origin` (`http://host:port`) names the host the request was sent to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((bare, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Why a request is refused, if it is: another origin's page; no session (but the login and
/// the assets); a POST without [`page::HEADER`] (but the login and logout, plain forms).
fn refusal(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    sessions: &Sessions,
) -> Option<(StatusCode, &'static str)> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !same_origin(origin.to_str().unwrap_or("?"), host) {
            return Some((
                StatusCode::FORBIDDEN,
                "requests from pages of other origins are refused",
            ));
        }
    }
    let open = path == LOGIN_PATH || path == html::STYLE_PATH || path == html::SCRIPT_PATH;
    if !open && !sessions.valid(headers) {
        return Some((
            StatusCode::UNAUTHORIZED,
            "log in first: open / and paste the API token",
        ));
    }
    let plain_form = path == LOGIN_PATH || path == LOGOUT_PATH;
    if *method == Method::POST && !plain_form && !headers.contains_key(page::HEADER) {
        return Some((
            StatusCode::FORBIDDEN,
            "a state-changing request must carry the header `X-Pipelines-Dashboard: 1` (the page's script sends it; a cross-origin form cannot)",
        ));
    }
    None
}

/// The middleware: the login page for `GET /` without a session, a one-line refusal otherwise.
async fn gate(State(d): Shared, req: Request, next: Next) -> Response {
    match refusal(req.method(), req.uri().path(), req.headers(), &d.sessions) {
        None => next.run(req).await,
        // The page itself: the login form (a 200: it is what the page is until then).
        Some((StatusCode::UNAUTHORIZED, _)) if req.uri().path() == "/" => {
            html_page(StatusCode::OK, page::login(false))
        }
        Some((status, reason)) => (
            status,
            format!(
                "{}: {reason}\n",
                status.canonical_reason().unwrap_or("refused")
            ),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(d): Shared, Form(f): Form<LoginForm>) -> Response {
    if !d.token.matches(f.token.trim()) {
        tracing::warn!("dashboard login with a wrong token");
        return html_page(StatusCode::UNAUTHORIZED, page::login(true));
    }
    let id = d.sessions.open();
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    secure(r)
}

async fn logout(State(d): Shared, headers: HeaderMap) -> Response {
    d.sessions.close(&headers);
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct RunQuery {
    run: Option<String>,
}

/// The runs and, with `?run=ID`, that run (on the blocking pool: the run database is sled).
async fn read(
    d: &Dash,
    selected: Option<String>,
) -> Result<(Vec<runner_api::Run>, Option<runner_api::Run>), Response> {
    let filter = RunFilter {
        chain: None,
        status: None,
        limit: RUNS_SHOWN,
        cursor: None,
    };
    let internal = |e: &dyn std::error::Error| {
        tracing::error!(error = %crate::causes::error_chain(e), "dashboard: reading the run database failed");
        message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the run database; see the runner's log",
        )
    };
    let runs = d.engine.runs(filter).await.map_err(|e| internal(&e))?.runs;
    let run = match selected {
        Some(id) => {
            let engine = d.engine.clone();
            sled_gate::blocking(move || engine.run(&id))
                .await
                .map_err(|e| internal(&e))?
        }
        None => None,
    };
    Ok((runs, run))
}

fn new_key() -> String {
    format!(
        "dashboard-{}",
        hex::encode(rand::rng().random::<[u8; 12]>())
    )
}

async fn index(State(d): Shared, Query(q): Query<RunQuery>) -> Response {
    match read(&d, q.run).await {
        Ok((runs, run)) => html_page(
            StatusCode::OK,
            page::page(
                d.engine.chains(),
                &new_key(),
                &runs,
                run.as_ref(),
                chrono::Utc::now(),
            ),
        ),
        Err(r) => r,
    }
}

async fn live(State(d): Shared, Query(q): Query<RunQuery>) -> Response {
    match read(&d, q.run).await {
        Ok((runs, run)) => html_page(
            StatusCode::OK,
            page::live(&runs, run.as_ref(), chrono::Utc::now()),
        ),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct LogQuery {
    id: String,
    stage: String,
}

/// The last [`LOG_TAIL`] bytes of a stage's log, as plain text.
async fn log(State(d): Shared, Query(q): Query<LogQuery>) -> Response {
    let path = match d.engine.log_path(&q.id, &q.stage) {
        Ok(path) => path,
        Err(e @ (LogError::RunNotFound { .. } | LogError::StageNotFound { .. })) => {
            return message(StatusCode::NOT_FOUND, e.to_string());
        }
        Err(LogError::State(e)) => {
            tracing::error!(error = %crate::causes::error_chain(&e), "dashboard: reading a run failed");
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the run database",
            );
        }
    };
    let read = tokio::task::spawn_blocking(move || {
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)))?;
        let mut bytes = Vec::new();
        file.take(LOG_TAIL).read_to_end(&mut bytes)?;
        Ok(bytes)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    match read {
        Ok(bytes) => {
            secure(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response())
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard: reading a stage log failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the stage's log file",
            )
        }
    }
}

#[derive(Deserialize)]
struct IdQuery {
    id: String,
}

async fn cancel(State(d): Shared, Query(q): Query<IdQuery>) -> Response {
    match d.engine.cancel(&q.id).await {
        Ok(run) => message(StatusCode::OK, format!("run {} is being cancelled", run.id)),
        Err(e @ CancelError::NotFound { .. }) => message(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ CancelError::Finished { .. }) => message(StatusCode::CONFLICT, e.to_string()),
        Err(CancelError::State(e)) => {
            tracing::error!(error = %crate::causes::error_chain(&e), "dashboard: cancelling failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot update the run database",
            )
        }
    }
}

#[derive(Deserialize)]
struct StartForm {
    chain: String,
    #[serde(default)]
    config: String,
    key: String,
}

/// Starts `chain` with the pasted config (none: its `default_config`) under the form's one-time
/// key, so a double click starts one run.
async fn start(State(d): Shared, Form(f): Form<StartForm>) -> Response {
    let config = if f.config.trim().is_empty() {
        None
    } else {
        match serde_yaml_ng::from_str::<serde_json::Value>(&f.config) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            Ok(_) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    "the config must be a mapping (YAML or JSON)",
                );
            }
            Err(e) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    format!("the config is not valid YAML or JSON: {e}"),
                );
            }
        }
    };
    let key_ok = (16..=64).contains(&f.key.len())
        && f.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !key_ok {
        return message(StatusCode::BAD_REQUEST, "bad form key; reload the page");
    }
    let request = RunRequest {
        config,
        idempotency_key: Some(f.key),
        ..RunRequest::default()
    };
    match d.engine.submit(&f.chain, request, Trigger::Api).await {
        Ok(Submitted::Created(run)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({"message": format!("run {} of {} started", run.id, run.chain), "run": run.id, "new": true, "key": new_key()})),
        )
            .into_response(),
        Ok(Submitted::Existing(run)) => Json(serde_json::json!({"message": format!("already started by this form: run {}", run.id), "run": run.id, "new": false, "key": new_key()}))
            .into_response(),
        Err(SubmitError::State(e)) => {
            tracing::error!(error = %crate::causes::error_chain(&e), "dashboard: starting a run failed");
            message(StatusCode::INTERNAL_SERVER_ERROR, "cannot write the run database; see the runner's log")
        }
        Err(e) => message(StatusCode::BAD_REQUEST, crate::causes::error_chain(&e)),
    }
}
