//! dashboard.rs: the watcher's web page at `/` on the daemon's loopback endpoint (`GET /`,
//! `GET /dashboard/live` for the live part, `GET /dashboard/config?batch=ID`,
//! `POST /dashboard/poll?source=URL&author=NAME`, `POST /dashboard/run`). It is the status report,
//! the held items and the outbox rendered as HTML ([`page`]); its buttons call the endpoint's
//! own actions (`/retry`, `/redeliver`, `/release`, `/discard`) plus "Poll now" (a request the
//! daemon loop answers: [`PollRequest`]) and "Run now" ([`manual`]). The endpoint's guard
//! (`control/guard.rs`) covers every route: loopback `Host`, no foreign `Origin`, the
//! `X-Watcher-Control` header on every POST.

mod html;
pub mod manual;
pub mod page;
pub mod runs;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use trigger_client::{Kind, RunHandle};

use crate::config::Config;
use crate::control::Daemon;
use crate::deliver::Deliverer;
use manual::{ConfigChoice, ConfigOptions, Manual};
use page::{Form as RunForm, View};
use runs::Runs;

/// A config file larger than this is not shown.
const CONFIG_SHOWN_MAX: u64 = 1 << 20;

/// "Poll now" for one source, sent to the daemon loop.
#[derive(Debug)]
pub struct PollRequest {
    /// The source's store key (`store::source_key`).
    pub key: String,
    pub reply: oneshot::Sender<PollAnswer>,
}

/// What the daemon did with a [`PollRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollAnswer {
    /// The source is polled now.
    Scheduled,
    /// It is being polled already, or stopped for good (410 for 30 days).
    NotWaiting,
    /// No such source in the config.
    Unknown,
}

/// The dashboard's own state: the trigger for "Run now", where configs are, the runs started
/// here, ended runs remembered, and the way to the daemon loop.
pub struct Dashboard {
    deliverer: Arc<Deliverer>,
    output_dir: PathBuf,
    /// How the form names the chain's default config; `None`: nothing to offer.
    default_config: Option<String>,
    target: String,
    manual: Manual,
    runs: Runs,
    poll: mpsc::Sender<PollRequest>,
}

impl Dashboard {
    /// The dashboard of the watcher configured by `config`; the receiver is for the daemon loop,
    /// which answers "Poll now".
    pub fn new(
        config: &Config,
        deliverer: Arc<Deliverer>,
        store: Arc<crate::store::Store>,
    ) -> (Dashboard, mpsc::Receiver<PollRequest>) {
        let (poll, requests) = mpsc::channel(16);
        let chain = deliverer.pipeline().to_owned();
        let (target, default_config) = match (&config.trigger.embedded, deliverer.kind()) {
            (Some(embedded), _) => {
                let default = pipelines::chain::load(&embedded.chains_dir)
                    .ok()
                    .and_then(|chains| {
                        chains
                            .get(&chain)
                            .and_then(|c| c.default_config().map(|p| p.display().to_string()))
                    })
                    .map(|p| format!("the chain's default_config ({p})"));
                (
                    format!("the `{chain}` chain on the embedded runner"),
                    default,
                )
            }
            (None, Kind::Pipelines) => (
                format!("the `{chain}` chain on a pipelines runner"),
                Some("the chain's default_config (on the runner)".to_owned()),
            ),
            (None, kind) => (
                format!("`{chain}` on {kind}"),
                Some("no config (the engine's defaults)".to_owned()),
            ),
        };
        let dashboard = Dashboard {
            deliverer,
            output_dir: config.watcher.output_dir.clone(),
            default_config,
            target,
            manual: Manual::new(store),
            runs: Runs::default(),
            poll,
        };
        (dashboard, requests)
    }
}

struct Shared<D> {
    daemon: Arc<D>,
    dash: Arc<Dashboard>,
}

impl<D> Clone for Shared<D> {
    fn clone(&self) -> Self {
        Shared {
            daemon: self.daemon.clone(),
            dash: self.dash.clone(),
        }
    }
}

/// The dashboard's routes, for the daemon's endpoint (which puts its guard around them).
pub fn router<D: Daemon>(daemon: Arc<D>, dash: Arc<Dashboard>) -> axum::Router {
    use pipelines::dashboard::html::{SCRIPT, SCRIPT_PATH, STYLE, STYLE_PATH};
    axum::Router::new()
        .route("/", get(index::<D>))
        .route(page::LIVE_PATH, get(live::<D>))
        .route("/dashboard/config", get(config_file::<D>))
        .route("/dashboard/poll", post(poll_now::<D>))
        .route("/dashboard/run", post(run_now::<D>))
        .route(STYLE_PATH, get(|| async { asset("text/css", STYLE) }))
        .route(
            SCRIPT_PATH,
            get(|| async { asset("text/javascript", SCRIPT) }),
        )
        .with_state(Shared { daemon, dash })
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// An HTML response with the dashboard's security headers.
fn html(body: String) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    secure(&mut response);
    response
}

fn secure(response: &mut Response) {
    for (name, value) in pipelines::dashboard::html::SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, header::HeaderValue::from_static(value));
    }
}

fn message(status: StatusCode, text: String) -> Response {
    (status, Json(serde_json::json!({ "message": text }))).into_response()
}

/// Reads everything a rendering shows.
async fn view<D: Daemon>(s: &Shared<D>) -> Result<View, Response> {
    let status = s.daemon.status().await.map_err(|e| {
        message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the store: {}", crate::causes::one_line(&e)),
        )
    })?;
    let shown: Vec<String> = status
        .deliveries
        .iter()
        .map(|d| d.batch_id.clone())
        .collect();
    let store = s.daemon.store().clone();
    let read = sled_gate::blocking(move || {
        let held = crate::hold::list(&store)?;
        let mut links = HashMap::new();
        for (_, d) in store.deliveries()? {
            if shown.contains(&d.batch_id) {
                let urls = d
                    .items
                    .iter()
                    .take(page::LINKS_SHOWN)
                    .map(|i| i.url.clone())
                    .collect();
                links.insert(d.batch_id, urls);
            }
        }
        Ok::<_, crate::store::StoreError>((held, links))
    })
    .await;
    let (held, links) = read.map_err(|e| {
        message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the store: {}", crate::causes::one_line(&e)),
        )
    })?;
    let manual = s.dash.manual.list().map_err(|e| {
        message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the store: {}", crate::causes::one_line(&e)),
        )
    })?;
    let handles: Vec<RunHandle> = manual
        .iter()
        .map(|m| m.handle.clone())
        .chain(
            status
                .deliveries
                .iter()
                .rev()
                .filter_map(|d| d.run.as_deref()?.parse().ok()),
        )
        .collect();
    let runs = s.dash.runs.views(&s.dash.deliverer, handles).await;
    Ok(View {
        now: chrono::Utc::now(),
        status,
        held,
        links,
        runs,
        manual,
        target: s.dash.target.clone(),
    })
}

async fn index<D: Daemon>(State(s): State<Shared<D>>) -> Response {
    let view = match view(&s).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let output_dir = s.dash.output_dir.clone();
    let generated = tokio::task::spawn_blocking(move || manual::generated_configs(&output_dir))
        .await
        .unwrap_or_default();
    let form = RunForm {
        key: manual::new_key(),
        options: ConfigOptions {
            generated,
            default: s.dash.default_config.clone(),
        },
    };
    html(page::page(&view, &form))
}

async fn live<D: Daemon>(State(s): State<Shared<D>>) -> Response {
    match view(&s).await {
        Ok(v) => html(page::live(&v)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct BatchQuery {
    batch: String,
}

/// The config file of a batch the outbox holds (only those: no path comes from the request).
async fn config_file<D: Daemon>(
    State(s): State<Shared<D>>,
    Query(q): Query<BatchQuery>,
) -> Response {
    let status = match s.daemon.status().await {
        Ok(status) => status,
        Err(e) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::causes::one_line(&e),
            );
        }
    };
    let Some(d) = status.deliveries.iter().find(|d| d.batch_id == q.batch) else {
        return message(
            StatusCode::NOT_FOUND,
            format!(
                "no batch `{}` among those the page lists",
                crate::printable::printable(&q.batch)
            ),
        );
    };
    let path = PathBuf::from(&d.config_path);
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(&path)?
            .take(CONFIG_SHOWN_MAX)
            .read_to_string(&mut text)?;
        Ok::<_, std::io::Error>(text)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    match read {
        Ok(text) => {
            let mut r =
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
            secure(&mut r);
            r
        }
        Err(e) => message(
            StatusCode::NOT_FOUND,
            format!("cannot read `{}`: {e}", d.config_path),
        ),
    }
}

#[derive(Deserialize)]
struct SourceQuery {
    source: String,
    author: String,
}

async fn poll_now<D: Daemon>(State(s): State<Shared<D>>, Query(q): Query<SourceQuery>) -> Response {
    let (reply, answer) = oneshot::channel();
    let request = PollRequest {
        key: crate::store::source_key(&q.author, &q.source),
        reply,
    };
    if s.dash.poll.try_send(request).is_err() {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is busy or stopping; try again in a moment".into(),
        );
    }
    let shown = crate::printable::printable(&q.source);
    match answer.await {
        Ok(PollAnswer::Scheduled) => message(StatusCode::OK, format!("polling {shown} now")),
        Ok(PollAnswer::NotWaiting) => message(
            StatusCode::CONFLICT,
            format!("{shown} is being polled right now, or it is stopped (410 Gone for 30 days)"),
        ),
        Ok(PollAnswer::Unknown) => message(
            StatusCode::NOT_FOUND,
            format!("no source {shown} of that author in the config"),
        ),
        Err(_) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is stopping".into(),
        ),
    }
}

#[derive(Deserialize)]
struct RunNow {
    key: String,
    config: String,
}

/// "Run now": starts the chain with the chosen config under the form's one-time key.
async fn run_now<D: Daemon>(State(s): State<Shared<D>>, Form(f): Form<RunNow>) -> Response {
    let choice = match ConfigChoice::parse(&f.config) {
        Ok(c) => c,
        Err(e) => return message(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let started = s
        .dash
        .manual
        .start(&s.dash.deliverer, &s.dash.output_dir, &f.key, choice)
        .await;
    match started {
        Ok((run, new)) => {
            let text = if new {
                format!("run {} started with {}", run.handle, run.config)
            } else {
                format!("already started by this form: run {}", run.handle)
            };
            let body = serde_json::json!({
                "message": crate::printable::printable(&text),
                "run": crate::printable::printable(&run.handle.to_string()),
                "new": new,
                "key": manual::new_key(),
            });
            let status = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(body)).into_response()
        }
        Err(e) => {
            let status = match e {
                manual::RunNowError::Trigger(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::BAD_REQUEST,
            };
            message(status, crate::causes::one_line(&e))
        }
    }
}
