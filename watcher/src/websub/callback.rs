//! websub/callback.rs: the callback server hubs talk to. It is public, so it serves only
//! `GET`/`POST /websub/<id>` (404 for anything else), reads headers within
//! [`HEADER_TIMEOUT`] and a delivery's body within [`BODY_TIMEOUT`] and `[fetch] max_body_bytes`,
//! ends every connection after [`CONNECTION_TIMEOUT`], and serves at most `[websub]
//! max_connections` at once. A delivery is answered as soon as its signature is checked: 202
//! for good and bad signatures alike (a bad one is counted, not acted on), 404 for a callback
//! that does not exist (or no longer takes deliveries), 413 for a body over the cap.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::verify::Query as VerifyQuery;
use super::{Delivered, Push};

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a delivery's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one connection is served, whatever it does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// At shutdown, how long connections in flight may finish.
const DRAIN: Duration = Duration::from_secs(2);

/// The length of a callback id (hex of 24 random bytes).
const ID_LEN: usize = 48;

/// Serves callbacks on `listener` until `cancel`.
pub async fn serve(listener: TcpListener, push: Arc<Push>, cancel: CancellationToken) {
    let app = router(push.clone());
    let slots = Arc::new(Semaphore::new(push.settings().max_connections));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "callback server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

fn router(push: Arc<Push>) -> Router {
    Router::new()
        .route("/websub/{id}", get(verification).post(delivery))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(push)
}

fn is_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A hub's verification: exactly 200 and the bare challenge for a matching pending request.
async fn verification(
    State(push): State<Arc<Push>>,
    Path(id): Path<String>,
    query: Result<Query<VerifyQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !is_id(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match push.verification(&id, &query).await {
        Ok(Some(challenge)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            challenge,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            error!(error = %crate::causes::one_line(&e), "callback server: cannot read or store a subscription");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A delivery: the raw body, bounded, its signature checked.
async fn delivery(
    State(push): State<Arc<Push>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received = tokio::time::Instant::now();
    if !is_id(&id) {
        push.count_delivery(Delivered::Unknown.label());
        return StatusCode::NOT_FOUND.into_response();
    }
    let cap = usize::try_from(push.max_body()).unwrap_or(usize::MAX);
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, cap)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            push.count_delivery("too_large");
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
        Err(_) => {
            push.count_delivery("too_slow");
            return StatusCode::REQUEST_TIMEOUT.into_response();
        }
    };
    let signature = headers.get("x-hub-signature").map(|v| v.as_bytes());
    let delivered = push.delivery(&id, signature, &body, received).await;
    if let Ok(outcome) = delivered {
        push.count_delivery(outcome.label());
    }
    match delivered {
        Ok(Delivered::Accepted | Delivered::Dropped) => StatusCode::ACCEPTED.into_response(),
        Ok(Delivered::Unknown) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            error!(error = %crate::causes::one_line(&e), "callback server: cannot read or store a subscription");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
