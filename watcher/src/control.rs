//! control.rs: the daemon's loopback HTTP endpoint (`/healthz`, `/readyz`, `/metrics`,
//! `/status`, `POST /retry`,
//! `POST /redeliver`, `GET /held`, `POST /release`, `POST /discard`) and the CLI's client for
//! it, used when `watcher run` holds the store's lock. It also serves the pages it is given (the
//! dashboard at `/`), behind the same guard. Who may call it: see [`guard`].

mod guard;

pub use guard::HEADER;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::delivery::Delivery;
use crate::error::WatcherError;
use crate::hold::{HeldAction, HeldSource, Selection};
use crate::outbox::RedeliverError;
use crate::status::StatusReport;
use crate::store::{Store, StoreError};

/// What the endpoint asks of the daemon (the watcher implements it).
pub trait Daemon: Send + Sync + 'static {
    /// Why the store failed, once it has (`/healthz` then answers 503).
    fn store_failure(&self) -> Option<String>;
    fn status(&self) -> impl Future<Output = Result<StatusReport, StoreError>> + Send;
    fn retry(&self, batch: Option<&str>) -> impl Future<Output = Result<usize, StoreError>> + Send;
    fn redeliver(
        &self,
        batch: &str,
        force: bool,
    ) -> impl Future<Output = Result<Delivery, RedeliverError>> + Send;
    /// The store, for the held items (`held`, `release`, `discard`).
    fn store(&self) -> &Store;
    /// Why the daemon is not ready (`starting`, `stopping`), if it is not (`/readyz`).
    fn not_ready(&self) -> Option<&'static str>;
    /// Why `/healthz` fails on ages (no recent successful poll, an old pending delivery).
    fn age_problem(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// The Prometheus text of `/metrics`.
    fn metrics(&self) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// Serves the endpoint, and `pages` (the dashboard) behind the same guard, until `cancel` fires.
pub async fn serve<D: Daemon>(
    listener: TcpListener,
    watcher: Arc<D>,
    pages: axum::Router,
    cancel: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "status endpoint listening");
    }
    let app = axum::Router::new()
        .route("/healthz", get(healthz::<D>))
        .route("/readyz", get(readyz::<D>))
        .route("/metrics", get(metrics::<D>))
        .route("/status", get(status::<D>))
        .route("/retry", post(retry::<D>))
        .route("/redeliver", post(redeliver::<D>))
        .route("/held", get(held::<D>))
        .route("/release", post(release::<D>))
        .route("/discard", post(discard::<D>))
        .with_state(watcher)
        .merge(pages)
        .layer(axum::middleware::from_fn(guard::guard));
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
}

/// 200 `ok`, or 503 with the reason: the store failed (the daemon is stopping), no poll
/// succeeded for `health_poll_age`, or a delivery has been pending for `health_delivery_age`.
async fn healthz<D: Daemon>(State(w): State<Arc<D>>) -> impl IntoResponse {
    let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
    if let Some(reason) = w.store_failure() {
        return unavailable(format!("store failing: {reason}"));
    }
    match w.age_problem().await {
        Ok(None) => (StatusCode::OK, "ok\n".to_string()),
        Ok(Some(why)) => unavailable(why),
        Err(e) => unavailable(format!("store failing: {}", crate::causes::one_line(&e))),
    }
}

/// 200 `ready` once the daemon schedules its sources; 503 `starting` before, `stopping` after.
async fn readyz<D: Daemon>(State(w): State<Arc<D>>) -> impl IntoResponse {
    match w.not_ready() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn metrics<D: Daemon>(State(w): State<Arc<D>>) -> axum::response::Response {
    match w.metrics().await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => internal(e).into_response(),
    }
}

fn internal(e: impl std::error::Error) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({"error": crate::causes::one_line(&e)})),
    )
}

async fn status<D: Daemon>(State(w): State<Arc<D>>) -> impl IntoResponse {
    match w.status().await {
        Ok(report) => Json(report).into_response(),
        Err(e) => internal(e).into_response(),
    }
}

#[derive(Deserialize)]
struct RetryQuery {
    batch: Option<String>,
}

#[derive(Deserialize)]
struct RedeliverQuery {
    batch: Option<String>,
    #[serde(default)]
    force: bool,
}

async fn retry<D: Daemon>(
    State(w): State<Arc<D>>,
    Query(q): Query<RetryQuery>,
) -> impl IntoResponse {
    match w.retry(q.batch.as_deref()).await {
        Ok(n) => Json(serde_json::json!({"requeued": n})).into_response(),
        Err(e) => internal(e).into_response(),
    }
}

async fn redeliver<D: Daemon>(
    State(w): State<Arc<D>>,
    Query(q): Query<RedeliverQuery>,
) -> impl IntoResponse {
    let Some(batch) = q.batch else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "missing ?batch=ID"})),
        )
            .into_response();
    };
    match w.redeliver(&batch, q.force).await {
        Ok(d) => {
            Json(serde_json::json!({"batch": d.batch_id, "idempotency_key": d.idempotency_key()}))
                .into_response()
        }
        Err(RedeliverError::Store(e)) => internal(e).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// The endpoint of each action on held items.
fn held_path(action: HeldAction) -> &'static str {
    match action {
        HeldAction::Release => "release",
        HeldAction::Discard => "discard",
    }
}

async fn held<D: Daemon>(State(w): State<Arc<D>>) -> impl IntoResponse {
    let store = w.store().clone();
    match sled_gate::blocking(move || crate::hold::list(&store)).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => internal(e).into_response(),
    }
}

#[derive(Deserialize)]
struct HoldQuery {
    #[serde(default)]
    all: bool,
    source: Option<String>,
    author: Option<String>,
}

/// `POST /release` and `POST /discard`: `?all=true` or `?source=URL[&author=NAME]`.
async fn release<D: Daemon>(w: State<Arc<D>>, q: Query<HoldQuery>) -> impl IntoResponse {
    on_held(w, q, HeldAction::Release).await
}

async fn discard<D: Daemon>(w: State<Arc<D>>, q: Query<HoldQuery>) -> impl IntoResponse {
    on_held(w, q, HeldAction::Discard).await
}

async fn on_held<D: Daemon>(
    State(w): State<Arc<D>>,
    Query(q): Query<HoldQuery>,
    action: HeldAction,
) -> axum::response::Response {
    let Some(selection) = Selection::from_query(q.all, q.source, q.author) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "missing ?all=true or ?source=URL"})),
        )
            .into_response();
    };
    match crate::hold::apply(w.store(), action, selection).await {
        Ok(n) => Json(serde_json::json!({ action.done(): n })).into_response(),
        Err(e) => internal(e).into_response(),
    }
}

/// The CLI's client: every request carries `X-Watcher-Control: 1` (see [`guard`]).
fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(HEADER, reqwest::header::HeaderValue::from_static("1"));
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("a plain client always builds")
}

fn daemon_error(addr: &str, e: impl std::error::Error) -> WatcherError {
    WatcherError::Daemon {
        addr: addr.to_string(),
        message: crate::causes::one_line(&e),
    }
}

/// Asks the daemon at `addr` for its status.
pub async fn remote_status(addr: std::net::SocketAddr) -> Result<StatusReport, WatcherError> {
    get_json(&format!("http://{addr}/status")).await
}

/// GETs `url` from the daemon and reads its JSON answer.
async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, WatcherError> {
    let resp = client()
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| daemon_error(url, e))?;
    resp.json().await.map_err(|e| daemon_error(url, e))
}

/// POSTs to `url` on the daemon with `query` and reads the count in `field` of its answer.
async fn post_count(
    url: &str,
    query: &[(&str, String)],
    field: &str,
) -> Result<usize, WatcherError> {
    let resp = client()
        .post(url)
        .query(query)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| daemon_error(url, e))?;
    let v: serde_json::Value = resp.json().await.map_err(|e| daemon_error(url, e))?;
    Ok(v[field].as_u64().unwrap_or(0) as usize)
}

/// Asks the daemon at `addr` to re-queue failed deliveries.
pub async fn remote_retry(
    addr: std::net::SocketAddr,
    batch: Option<&str>,
) -> Result<usize, WatcherError> {
    let query: Vec<_> = batch.map(|b| ("batch", b.to_owned())).into_iter().collect();
    post_count(&format!("http://{addr}/retry"), &query, "requeued").await
}

/// Asks the daemon at `addr` to redeliver `batch` (`force`: also a lost run); returns the new
/// idempotency key.
pub async fn remote_redeliver(
    addr: std::net::SocketAddr,
    batch: &str,
    force: bool,
) -> Result<String, WatcherError> {
    let url = format!("http://{addr}/redeliver");
    let force = if force { "true" } else { "false" };
    let resp = client()
        .post(&url)
        .query(&[("batch", batch), ("force", force)])
        .send()
        .await
        .map_err(|e| daemon_error(&url, e))?;
    let ok = resp.status().is_success();
    let v: serde_json::Value = resp.json().await.map_err(|e| daemon_error(&url, e))?;
    if !ok {
        return Err(WatcherError::Usage(
            v["error"]
                .as_str()
                .unwrap_or("redelivery refused")
                .to_string(),
        ));
    }
    Ok(v["idempotency_key"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Asks the daemon at `addr` for the held items.
pub async fn remote_held(addr: std::net::SocketAddr) -> Result<Vec<HeldSource>, WatcherError> {
    get_json(&format!("http://{addr}/held")).await
}

/// Asks the daemon at `addr` to release or discard the selected held items; returns how many.
pub async fn remote_on_held(
    addr: std::net::SocketAddr,
    action: HeldAction,
    selection: &Selection,
) -> Result<usize, WatcherError> {
    let url = format!("http://{addr}/{}", held_path(action));
    post_count(&url, &selection.query(), action.done()).await
}
