//! The REST API (axum): routes, bearer-token auth, request parsing and JSON errors. Handlers only
//! translate between HTTP and the [`Engine`]; no run logic lives here.
//!
//! The routes and the bodies are the contract in `runner_api` (`runner_api::paths` lists them):
//! all JSON, every `/api` route behind `Authorization: Bearer <token>`, `/healthz` without.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use runner_api::request::{DEFAULT_LIMIT, MAX_IDEMPOTENCY_KEY_LEN, MAX_LIMIT};
use runner_api::{
    ChainList, ChainView, ErrorBody, GateQuery, GateReport, Health, Run, RunPage, RunQuery,
    RunRequest, RunRequestBody, RunStatus, StageView, Trigger, paths,
};
use serde::Deserialize;
use serde_json::Value;

use crate::chain::Chain;
use crate::engine::{CancelError, Engine, LogError, SubmitError, Submitted};
use crate::state::{RunFilter, StateError};
use crate::token::ApiToken;

/// The API's router over `engine`, guarded by `token`.
pub fn router(engine: Engine, token: ApiToken) -> Router {
    let api = Router::new()
        .route(paths::CHAINS, get(list_chains))
        .route(paths::CHAIN_RUNS, post(create_run))
        .route(paths::RUNS, get(list_runs))
        .route(paths::RUN, get(get_run))
        .route(paths::RUN_CANCEL, post(cancel_run))
        .route(paths::STAGE_LOG, get(get_log))
        .route(paths::GATES, get(get_gates))
        .route(paths::METRICS, get(metrics))
        .route_layer(middleware::from_fn_with_state(token, require_token))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .route(paths::HEALTHZ, get(healthz))
        .merge(api)
        .fallback(not_found)
        .with_state(engine)
}

/// An error response: `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn internal(err: &StateError) -> Self {
        tracing::error!(error = %crate::causes::error_chain(err), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error reading or writing the run database; see the runner's log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(err: SubmitError) -> Self {
        let status = match &err {
            SubmitError::UnknownChain { .. } => StatusCode::NOT_FOUND,
            SubmitError::Conflict { .. } => StatusCode::CONFLICT,
            SubmitError::MissingParams { .. }
            | SubmitError::NoConfig { .. }
            | SubmitError::DefaultConfig { .. } => StatusCode::BAD_REQUEST,
            SubmitError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            SubmitError::RunDir { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            SubmitError::State(state) => return Self::internal(state),
        };
        Self::new(status, crate::causes::error_chain(&err))
    }
}

async fn require_token(
    State(token): State<ApiToken>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>` header; the token is PIPELINES_TOKEN or the token file the runner printed at startup",
        ));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(given) if token.matches(given) => Ok(next.run(request).await),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid bearer token; check PIPELINES_TOKEN or the runner's token file",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "malformed `Authorization` header; expected `Bearer <token>`",
        )),
    }
}

async fn healthz(State(engine): State<Engine>) -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".to_owned(),
        chains: engine.chains().len(),
    })
}

async fn metrics(State(engine): State<Engine>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        engine.metrics(),
    )
        .into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route for `{} {}`; see the REST API in pipelines/README.md",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method `{}` is not allowed on `{}`",
            request.method(),
            request.uri().path()
        ),
    )
}

const BODY_SHAPE: &str = r#"expected {"config": {...}, "idempotency_key": "...", "params": {"NAME": "value"}, "force": false} (all optional)"#;

/// Reads a create-run body and checks it into a [`RunRequest`].
fn parse_run_request(body: &[u8]) -> Result<RunRequest, ApiError> {
    let body: RunRequestBody = if body.iter().all(u8::is_ascii_whitespace) {
        RunRequestBody::default()
    } else {
        serde_json::from_slice(body).map_err(|err| {
            ApiError::bad_request(format!("invalid JSON body: {err}; {BODY_SHAPE}"))
        })?
    };
    let config = match body.config {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "`config` must be a JSON object; {BODY_SHAPE}"
            )));
        }
    };
    if let Some(key) = &body.idempotency_key
        && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN)
    {
        return Err(ApiError::bad_request(format!(
            "`idempotency_key` must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes long"
        )));
    }
    let mut params = BTreeMap::new();
    for (name, value) in body.params {
        if !crate::placeholder::is_param_name(&name) {
            return Err(ApiError::bad_request(format!(
                "bad param name `{name}`; expected letters, digits, `_` or `-`"
            )));
        }
        let value = match value {
            Value::String(text) => text,
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "param `{name}` must be a string, number or boolean"
                )));
            }
        };
        params.insert(name, value);
    }
    Ok(RunRequest {
        config,
        idempotency_key: body.idempotency_key,
        params,
        force: body.force.unwrap_or(false),
    })
}

async fn create_run(
    State(engine): State<Engine>,
    Path(chain): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if engine.chains().get(&chain).is_none() {
        return Err(SubmitError::UnknownChain {
            known: engine
                .chains()
                .iter()
                .map(|c| format!("`{}`", c.name()))
                .collect::<Vec<_>>()
                .join(", "),
            name: chain,
        }
        .into());
    }
    let request = parse_run_request(&body)?;
    let submitted = engine.submit(&chain, request, Trigger::Api).await?;
    let (status, run) = match submitted {
        Submitted::Created(run) => (StatusCode::CREATED, run),
        Submitted::Existing(run) => (StatusCode::OK, run),
    };
    let location = paths::run_path(&run.id);
    let mut response = (status, axum::Json(run)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn get_run(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<axum::Json<Run>, ApiError> {
    match engine.run(&id) {
        Ok(Some(run)) => Ok(axum::Json(run)),
        Ok(None) => Err(run_not_found(&id)),
        Err(err) => Err(ApiError::internal(&err)),
    }
}

fn run_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("run `{id}` not found; list runs with GET {}", paths::RUNS),
    )
}

async fn list_runs(
    State(engine): State<Engine>,
    query: Result<Query<RunQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<RunPage>, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::bad_request(format!("bad query: {}", err.body_text())))?;
    let status = query
        .status
        .filter(|status| !status.is_empty())
        .map(|status| status.parse::<RunStatus>())
        .transpose()
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let limit = match query.limit.filter(|limit| !limit.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "bad `limit` `{text}`; expected a whole number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let filter = RunFilter {
        chain: query.chain.filter(|chain| !chain.is_empty()),
        status,
        limit,
        cursor: query.cursor.filter(|cursor| !cursor.is_empty()),
    };
    let page = engine
        .runs(filter)
        .await
        .map_err(|err| ApiError::internal(&err))?;
    Ok(axum::Json(page))
}

async fn cancel_run(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<axum::Json<Run>, ApiError> {
    match engine.cancel(&id).await {
        Ok(run) => Ok(axum::Json(run)),
        Err(CancelError::NotFound { id }) => Err(run_not_found(&id)),
        Err(err @ CancelError::Finished { .. }) => {
            Err(ApiError::new(StatusCode::CONFLICT, err.to_string()))
        }
        Err(CancelError::State(err)) => Err(ApiError::internal(&err)),
    }
}

async fn get_gates(
    State(engine): State<Engine>,
    query: Result<Query<GateQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<GateReport>, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::bad_request(format!("bad query: {}", err.body_text())))?;
    let chain = query.chain.filter(|chain| !chain.is_empty());
    if let Some(name) = &chain
        && engine.chains().get(name).is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "unknown chain `{name}`; list chains with GET {}",
                paths::CHAINS
            ),
        ));
    }
    let report = engine
        .gates(chain.as_deref())
        .await
        .map_err(|err| ApiError::internal(&err))?;
    Ok(axum::Json(report))
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    offset: Option<u64>,
}

async fn get_log(
    State(engine): State<Engine>,
    Path((id, stage)): Path<(String, String)>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query
        .map_err(|_| ApiError::bad_request("bad `offset`; expected a whole number of bytes"))?;
    let path = match engine.log_path(&id, &stage) {
        Ok(path) => path,
        Err(LogError::RunNotFound { id }) => return Err(run_not_found(&id)),
        Err(err @ LogError::StageNotFound { .. }) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, err.to_string()));
        }
        Err(LogError::State(err)) => return Err(ApiError::internal(&err)),
    };
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        // The stage has not started yet: its log is empty so far.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => {
            tracing::error!(error = %err, path = %path.display(), "reading a stage log failed");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the stage's log file; see the runner's log",
            ));
        }
    };
    let offset = usize::try_from(query.offset.unwrap_or(0))
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        bytes[offset..].to_vec(),
    )
        .into_response())
}

/// How the chain listing shows `chain`.
fn chain_view(chain: &Chain) -> ChainView {
    ChainView {
        name: chain.name().to_owned(),
        description: chain.description().to_owned(),
        file: chain.file().display().to_string(),
        schedule: chain.schedule().map(|s| s.expr().to_owned()),
        timezone: chain.schedule().map(|s| s.timezone().to_string()),
        next_scheduled_at: chain
            .schedule()
            .and_then(|s| s.next_after(chrono::Utc::now())),
        default_config: chain.default_config().map(|p| p.display().to_string()),
        concurrency: chain.concurrency(),
        params: chain.params().clone(),
        stages: chain
            .stages()
            .iter()
            .map(|stage| StageView {
                name: stage.name().to_owned(),
                after: stage.after().to_vec(),
                run: stage
                    .run()
                    .iter()
                    .map(|arg| arg.source().to_owned())
                    .collect(),
                workdir: stage.workdir().display().to_string(),
                timeout: stage
                    .timeout()
                    .map(|t| humantime::format_duration(t).to_string()),
                retries: stage.retries(),
                gate: stage.gate().map(|gate| runner_api::GateSpec {
                    min_new_links: gate.min_new_links,
                    or_after: gate
                        .or_after
                        .map(|d| humantime::format_duration(d).to_string()),
                    gate_retry: humantime::format_duration(gate.retry).to_string(),
                }),
                cost: stage.cost().map(|cost| cost.units()),
            })
            .collect(),
        budget: chain.budget().map(|budget| runner_api::BudgetSpec {
            limit: budget.limit.units(),
            per: humantime::format_duration(budget.per).to_string(),
        }),
    }
}

async fn list_chains(State(engine): State<Engine>) -> axum::Json<ChainList> {
    axum::Json(ChainList {
        chains: engine
            .chains()
            .iter()
            .map(|chain| chain_view(chain))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_parsing() {
        let request = parse_run_request(b"").unwrap();
        assert_eq!(request, RunRequest::default());
        let request = parse_run_request(
            br#"{"config": {"parameters": {"links": []}}, "idempotency_key": "k", "params": {"a": "x", "n": 3, "b": true}}"#,
        )
        .unwrap();
        assert_eq!(request.idempotency_key.as_deref(), Some("k"));
        assert_eq!(request.params["n"], "3");
        assert_eq!(request.params["b"], "true");
        assert!(request.config.unwrap().contains_key("parameters"));

        for (body, want) in [
            (&b"{"[..], "invalid JSON body"),
            (br#"{"config": [1]}"#, "`config` must be a JSON object"),
            (br#"{"confg": {}}"#, "unknown field `confg`"),
            (br#"{"idempotency_key": ""}"#, "`idempotency_key` must be"),
            (br#"{"params": {"a": [1]}}"#, "param `a` must be a string"),
            (br#"{"params": {"a b": "x"}}"#, "bad param name `a b`"),
        ] {
            let err = parse_run_request(body).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.contains(want), "{} lacks {want}", err.message);
        }
    }
}
