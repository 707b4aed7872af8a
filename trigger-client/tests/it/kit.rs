//! The fake-engine kit every contract test builds its engine with: an axum router on
//! 127.0.0.1:0, a log of every request (method, URI, headers, body) before any check, an
//! authorization check (static header values or a rule over the engine's state) and scripted
//! failures by request number. A fake only writes what its engine does with a request.

use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde_json::json;
use trigger_client::{Kind, TargetConfig};
use url::Url;

/// An engine's state as its handlers see it (`State<Shared<S>>`).
pub type Shared<S> = Arc<Mutex<S>>;

/// Starts describing a fake engine whose handlers share `state`.
pub fn fake_engine<S: Send + 'static>(state: S) -> Builder<S> {
    Builder {
        state: Arc::new(Mutex::new(state)),
        router: Router::new(),
        auth: None,
        failures: Vec::new(),
    }
}

/// A running fake engine: its base URL, its state and every request it received.
pub struct FakeEngine<S> {
    /// `http://127.0.0.1:PORT/`.
    pub url: Url,
    state: Shared<S>,
    seen: Recorder,
}

impl<S> FakeEngine<S> {
    /// The engine's state (do not hold the guard across an `.await`).
    pub fn state(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap()
    }

    /// Every request, in order, rejected or failed ones included.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.all()
    }

    /// The requests whose method is `method` and whose path ends with `path_suffix`.
    pub fn requests_to(&self, method: Method, path_suffix: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|seen| seen.method == method && seen.uri.path().ends_with(path_suffix))
            .collect()
    }

    /// The JSON bodies of [`requests_to`](Self::requests_to).
    pub fn bodies_to(&self, method: Method, path_suffix: &str) -> Vec<serde_json::Value> {
        self.requests_to(method, path_suffix)
            .iter()
            .map(Seen::json)
            .collect()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.seen.count()
    }

    /// A target of `kind` at `path` below this engine.
    pub fn target(&self, kind: Kind, path: &str) -> TargetConfig {
        crate::helpers::target(kind, &self.url, path)
    }
}

/// The `Authorization` values an engine accepts, or a rule over its state.
pub struct Auth<S> {
    check: Arc<AuthCheck<S>>,
    open: Vec<&'static str>,
}

/// The refusal for a request with this `Authorization` value (if any), or `None` to let it in.
type AuthCheck<S> = dyn Fn(&S, Option<&str>) -> Option<Response> + Send + Sync;

impl<S> Auth<S> {
    /// Accepts exactly these `Authorization` values; anything else gets `reject()`.
    pub fn accept(values: &[String], reject: fn() -> Response) -> Self {
        let values = values.to_vec();
        Auth::rule(move |_, header| match header {
            Some(header) if values.iter().any(|value| value == header) => None,
            _ => Some(reject()),
        })
    }

    /// A rule over the engine's state and the `Authorization` value (if any): the refusal,
    /// or `None` to let the request in.
    pub fn rule(
        check: impl Fn(&S, Option<&str>) -> Option<Response> + Send + Sync + 'static,
    ) -> Self {
        Auth {
            check: Arc::new(check),
            open: Vec::new(),
        }
    }

    /// Requests to this exact path need no credentials (login and health routes).
    pub fn open(mut self, path: &'static str) -> Self {
        self.open.push(path);
        self
    }
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Basic <base64(user:password)>`.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// 401 `{"detail": "Not authenticated"}` (FastAPI's answer).
pub fn not_authenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"detail": "Not authenticated"})),
    )
        .into_response()
}

/// Describes a fake engine; [`Builder::spawn`] starts it.
pub struct Builder<S> {
    state: Shared<S>,
    router: Router<Shared<S>>,
    auth: Option<Auth<S>>,
    failures: Vec<Failure>,
}

/// A scripted answer for some request numbers (0-based, counted over all requests).
struct Failure {
    requests: Box<dyn Fn(usize) -> bool + Send + Sync>,
    respond: Box<dyn Fn() -> Response + Send + Sync>,
}

impl<S: Send + 'static> Builder<S> {
    /// Serves `path` with `handler` (axum path syntax, e.g. `/api/runs/{id}`).
    pub fn route(mut self, path: &str, handler: MethodRouter<Shared<S>>) -> Self {
        self.router = self.router.route(path, handler);
        self
    }

    /// Checks every request's credentials before its handler (after it is recorded).
    pub fn auth(mut self, auth: Auth<S>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Answers the requests numbered in `requests` with `respond()` instead of the handler.
    pub fn fail(
        mut self,
        requests: impl RangeBounds<usize> + Send + Sync + 'static,
        respond: impl Fn() -> Response + Send + Sync + 'static,
    ) -> Self {
        self.failures.push(Failure {
            requests: Box::new(move |n| requests.contains(&n)),
            respond: Box::new(respond),
        });
        self
    }

    /// Binds 127.0.0.1:0 and serves until the test's runtime ends.
    pub async fn spawn(self) -> FakeEngine<S> {
        let seen = Recorder::default();
        let mut router = self.router;
        if let Some(auth) = self.auth {
            // Only on matched routes: an unknown path stays a 404, as on a real engine.
            let gate = Arc::new((self.state.clone(), auth));
            router = router.route_layer(axum::middleware::from_fn_with_state(gate, authorize::<S>));
        }
        let front = Arc::new(Front {
            seen: seen.clone(),
            failures: self.failures,
        });
        let router = router
            .with_state(self.state.clone())
            .layer(axum::middleware::from_fn_with_state(front, record));
        FakeEngine {
            url: crate::helpers::spawn(router).await,
            state: self.state,
            seen,
        }
    }
}

/// What every request meets first: the log, then the scripted failures.
struct Front {
    seen: Recorder,
    failures: Vec<Failure>,
}

async fn record(State(front): State<Arc<Front>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap();
    let number = front.seen.record(Seen {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    if let Some(failure) = front.failures.iter().find(|f| (f.requests)(number)) {
        return (failure.respond)();
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// The credentials check of routed requests.
async fn authorize<S>(
    State(gate): State<Arc<(Shared<S>, Auth<S>)>>,
    request: Request,
    next: Next,
) -> Response {
    let (state, auth) = &*gate;
    if !auth.open.contains(&request.uri().path()) {
        let header = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok());
        let refusal = (auth.check)(&state.lock().unwrap(), header);
        if let Some(refusal) = refusal {
            return refusal;
        }
    }
    next.run(request).await
}

/// One request as a fake engine saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The query string's pairs.
    pub fn query(&self) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect()
    }

    /// The form-encoded body's pairs.
    pub fn form(&self) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

/// Every request a fake engine saw, in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    /// Records `seen`; returns its number (0-based).
    fn record(&self, seen: Seen) -> usize {
        let mut all = self.0.lock().unwrap();
        all.push(seen);
        all.len() - 1
    }

    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Standard base64 with padding (only for `Basic` headers).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn basic_headers_match_known_values() {
    assert_eq!(basic("admin", "ci-secret"), "Basic YWRtaW46Y2ktc2VjcmV0");
    assert_eq!(
        basic("admin", "admin-pass"),
        "Basic YWRtaW46YWRtaW4tcGFzcw=="
    );
    assert_eq!(base64(b"ab"), "YWI=");
}
