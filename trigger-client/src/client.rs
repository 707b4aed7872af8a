//! The public [`Client`] and the one HTTP transport every backend sends through.
//!
//! The transport owns what is common to all engines: the single `reqwest::Client` (User-Agent,
//! timeouts), credentials (static bearer/basic, or a login token refreshed once on a 401),
//! the response body cap, turning statuses into errors, and the retry loop. Backends only
//! describe requests ([`Call`]) and read replies ([`Reply`]).

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

use crate::backend::AnyBackend;
use crate::error::{Error, is_transient_status};
use crate::retry::{RetryPolicy, with_retries};
use crate::retry_after;
use crate::target::{Kind, Secret, TargetConfig};
use crate::{RunHandle, RunRequest, RunStatus};

/// The User-Agent every request carries.
pub(crate) const USER_AGENT: &str = concat!(
    "trigger-client/",
    env!("CARGO_PKG_VERSION"),
    " (+",
    env!("CARGO_PKG_REPOSITORY"),
    ")"
);

/// Responses larger than this are refused rather than buffered.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Starts, follows and cancels runs on one target, retrying transient failures.
///
/// Cheap to share: wrap it in an `Arc` to use it from several tasks.
pub struct Client {
    http: Http,
    backend: AnyBackend,
    default_pipeline: Option<String>,
    poll_interval: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("kind", &self.http.kind)
            .field("policy", &self.http.policy)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Validates `target` and reads its secrets (env vars or files). No network I/O.
    pub fn new(target: &TargetConfig) -> Result<Client, Error> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(target.connect_timeout())
            .timeout(target.request_timeout())
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|source| Error::HttpClient { source })?;
        let http = Http {
            client,
            kind: target.kind,
            policy: RetryPolicy::default(),
        };
        Ok(Client {
            http,
            backend: AnyBackend::new(target)?,
            default_pipeline: target.pipeline.clone(),
            poll_interval: target.poll_interval(),
        })
    }

    /// Replaces the retry policy (default: [`RetryPolicy::default`]).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.http.policy = policy;
        self
    }

    /// Replaces how often [`Client::wait`] polls (default: the target's `poll_interval`, 2s).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The engine this client talks to.
    pub fn kind(&self) -> Kind {
        self.http.kind
    }

    /// Starts one run. Retried requests carry the same idempotency key, so the engine starts
    /// at most one run per key; asking again with the same key returns the same run.
    pub async fn trigger(&self, req: &RunRequest) -> Result<RunHandle, Error> {
        let pipeline = self.pipeline_for(req)?;
        if req.idempotency_key.trim().is_empty() {
            return Err(Error::Request {
                problem: "the idempotency key is empty (hint: pass the batch id, or let the CLI derive one)".into(),
            });
        }
        let span = tracing::info_span!("trigger", kind = %self.kind(), pipeline = %pipeline, idempotency_key = %req.idempotency_key);
        async {
            let id = self.backend.trigger(&self.http, &pipeline, req).await?;
            let handle = RunHandle::new(self.kind(), id);
            tracing::info!(run_id = %handle, "run started");
            Ok(handle)
        }
        .instrument(span)
        .await
    }

    /// The run's current state.
    pub async fn status(&self, run: &RunHandle) -> Result<RunStatus, Error> {
        self.check_handle(run)?;
        let span = tracing::debug_span!("status", run_id = %run);
        self.backend
            .status(&self.http, &run.id)
            .instrument(span)
            .await
    }

    /// Polls until the run is terminal or `timeout` passes, calling `on_change` with the first
    /// status and with every change. A run that ends failed or cancelled is `Ok` here: look at
    /// the returned state. An engine that stops answering for a while (each poll already
    /// retried) is waited out until the deadline; other errors end the wait at once.
    pub async fn wait(
        &self,
        run: &RunHandle,
        timeout: Duration,
        mut on_change: impl FnMut(&RunStatus),
    ) -> Result<RunStatus, Error> {
        self.check_handle(run)?;
        let span = tracing::info_span!("wait", run_id = %run);
        async {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut last: Option<RunStatus> = None;
            loop {
                let status = match self.backend.status(&self.http, &run.id).await {
                    Ok(status) => status,
                    Err(err) if outage(&err) && tokio::time::Instant::now() < deadline => {
                        tracing::warn!(error = %err, "cannot read the run's state; still waiting");
                        tokio::time::sleep(
                            self.poll_interval
                                .min(deadline - tokio::time::Instant::now()),
                        )
                        .await;
                        continue;
                    }
                    Err(err) => return Err(err),
                };
                if last.as_ref() != Some(&status) {
                    tracing::info!(state = %status.state, raw_state = %status.raw_state, "run state");
                    on_change(&status);
                    last = Some(status.clone());
                }
                if status.state.is_terminal() {
                    return Ok(status);
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(Error::WaitTimeout {
                        run: run.to_string(),
                        state: status.state.to_string(),
                        timeout,
                    });
                }
                tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
            }
        }
        .instrument(span)
        .await
    }

    /// Asks the engine to cancel the run (not every engine can: webhook cannot).
    pub async fn cancel(&self, run: &RunHandle) -> Result<(), Error> {
        self.check_handle(run)?;
        let span = tracing::info_span!("cancel", run_id = %run);
        self.backend
            .cancel(&self.http, &run.id)
            .instrument(span)
            .await
    }

    fn pipeline_for(&self, req: &RunRequest) -> Result<String, Error> {
        if !req.pipeline.trim().is_empty() {
            return Ok(req.pipeline.clone());
        }
        self.default_pipeline.clone().ok_or_else(|| Error::Request {
            problem: format!(
                "no pipeline named (hint: pass one, or set `pipeline` in the {} target)",
                self.kind()
            ),
        })
    }

    fn check_handle(&self, run: &RunHandle) -> Result<(), Error> {
        if run.kind == self.kind().as_str() {
            return Ok(());
        }
        Err(Error::BadHandle {
            handle: run.to_string(),
            problem: format!(
                "it is a `{}` run but the target is `{}`",
                run.kind,
                self.kind()
            ),
        })
    }
}

/// True for errors that mean "the engine is unreachable for now", not "the answer is no".
fn outage(err: &Error) -> bool {
    err.is_transient() || matches!(err, Error::Exhausted { .. })
}

/// The transport: one `reqwest::Client`, the retry policy, and the engine kind for messages.
pub(crate) struct Http {
    client: reqwest::Client,
    pub(crate) kind: Kind,
    policy: RetryPolicy,
}

/// A request body.
pub(crate) enum Body {
    Empty,
    /// Serialized JSON (sent byte-for-byte identical on every attempt).
    Json(Bytes),
    /// `application/x-www-form-urlencoded` fields (may hold secrets: never logged).
    Form(Vec<(String, String)>),
}

impl Body {
    pub(crate) fn json(value: &impl serde::Serialize) -> Body {
        // Serializing a `serde_json::Value` or a plain struct cannot fail.
        Body::Json(Bytes::from(serde_json::to_vec(value).unwrap_or_default()))
    }
}

/// Headers computed for each attempt from the body bytes (e.g. a fresh signature timestamp).
pub(crate) type PerAttempt<'a> = dyn Fn(&[u8]) -> Vec<(HeaderName, HeaderValue)> + Send + Sync + 'a;

/// One request as a backend describes it. Deliberately not `Debug`: bodies may hold secrets.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: Url,
    pub body: Body,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub per_attempt: Option<&'a PerAttempt<'a>>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, url: Url) -> Self {
        Call {
            method,
            url,
            body: Body::Empty,
            headers: Vec::new(),
            per_attempt: None,
        }
    }

    pub(crate) fn get(url: Url) -> Self {
        Call::new(Method::GET, url)
    }

    pub(crate) fn post(url: Url, body: Body) -> Self {
        Call {
            body,
            ..Call::new(Method::POST, url)
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A response that is not transient: 2xx, 3xx, or a 4xx the backend may want to interpret.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub method: Method,
    pub url: Url,
    kind: &'static str,
}

impl Reply {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON, or a protocol error naming what was expected.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Json {
            kind: self.kind,
            method: self.method.to_string(),
            url: redact(&self.url),
            start: snippet(&self.body, 120),
            source,
        })
    }

    /// A protocol error about this reply.
    pub(crate) fn protocol(&self, problem: impl Into<String>) -> Error {
        Error::Protocol {
            kind: self.kind,
            method: self.method.to_string(),
            url: redact(&self.url),
            problem: problem.into(),
        }
    }

    /// The engine's own error text: `detail`, `error`, `message` or `exception_message` from a
    /// JSON body (in any of the shapes FastAPI, ZenML, Airflow and the runner use), else the
    /// body's first line(s).
    pub(crate) fn engine_message(&self) -> String {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&self.body)
            && let Some(message) = message_from_json(&value)
        {
            return message;
        }
        let text = snippet(&self.body, 500);
        if text.is_empty() {
            format!("empty body ({})", reason(self.status))
        } else {
            text
        }
    }

    /// This reply as an error: 401/403 become [`Error::Auth`] with a hint from `auth`.
    pub(crate) fn error(&self, auth: &Auth) -> Error {
        let method = self.method.to_string();
        let url = redact(&self.url);
        if matches!(self.status, 401 | 403) {
            return Error::Auth {
                kind: self.kind,
                method,
                url,
                status: self.status,
                message: self.engine_message(),
                hint: auth.hint(self.status),
            };
        }
        Error::Status {
            kind: self.kind,
            method,
            url,
            status: self.status,
            message: self.engine_message(),
            retry_after: None,
        }
    }

    /// `Ok(self)` for 2xx, else [`Reply::error`].
    pub(crate) fn success(self, auth: &Auth) -> Result<Reply, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.error(auth))
        }
    }

    /// The `Location` header resolved against the request URL.
    pub(crate) fn location(&self) -> Option<Url> {
        let value = self.headers.get(header::LOCATION)?.to_str().ok()?;
        self.url.join(value).ok()
    }
}

/// Credentials a backend attaches to its calls.
pub(crate) enum Auth {
    None,
    Bearer(Secret),
    Basic {
        user: String,
        password: Secret,
    },
    /// A token obtained by a login call, cached, and refreshed once when a call gets a 401.
    Login(Login),
}

/// How to obtain a token: a POST whose JSON answer has `access_token`.
pub(crate) struct Login {
    pub url: Url,
    pub form: bool,
    pub fields: Vec<(&'static str, LoginField)>,
    /// Describes the credentials for hints ("user `admin` with the password from env var `X`").
    pub describe: String,
    token: tokio::sync::Mutex<Option<Secret>>,
}

/// One login form/JSON field.
pub(crate) enum LoginField {
    Plain(String),
    Secret(Secret),
}

impl Login {
    pub(crate) fn new(
        url: Url,
        form: bool,
        fields: Vec<(&'static str, LoginField)>,
        describe: String,
    ) -> Self {
        Login {
            url,
            form,
            fields,
            describe,
            token: tokio::sync::Mutex::new(None),
        }
    }
}

/// What one attempt authenticates with.
enum Credentials {
    None,
    Bearer(Secret),
    Basic(String, Secret),
}

impl Auth {
    fn hint(&self, status: u16) -> String {
        let what = if status == 403 {
            "are not allowed to do this"
        } else {
            "were refused"
        };
        match self {
            Auth::None => "the server wants credentials; set `token_env` (or `username` and `password_env`) in the target".into(),
            Auth::Bearer(secret) => format!("the token from {} {what}; check or renew it", secret.origin()),
            Auth::Basic { user, password } => format!(
                "user `{user}` with the password from {} {what}",
                password.origin()
            ),
            Auth::Login(login) => format!("{} {what}", login.describe),
        }
    }
}

impl Http {
    /// Sends `call` with `auth`, retrying transient failures per the policy. Returns every
    /// non-transient reply (the backend decides what a 4xx means).
    pub(crate) async fn send(&self, call: &Call<'_>, auth: &Auth) -> Result<Reply, Error> {
        let what = format!("{} {}", call.method, call.url.path());
        with_retries(&self.policy, self.kind.as_str(), &what, |_| {
            self.attempt(call, auth)
        })
        .await
    }

    /// One attempt; with a login token, a 401 triggers one fresh login and one resend.
    async fn attempt(&self, call: &Call<'_>, auth: &Auth) -> Result<Reply, Error> {
        let Auth::Login(login) = auth else {
            let credentials = match auth {
                Auth::Bearer(token) => Credentials::Bearer(token.clone()),
                Auth::Basic { user, password } => {
                    Credentials::Basic(user.clone(), password.clone())
                }
                _ => Credentials::None,
            };
            return self.send_once(call, &credentials).await;
        };
        let mut cached = login.token.lock().await;
        let token = match cached.as_ref() {
            Some(token) => token.clone(),
            None => {
                let token = self.login(login, auth).await?;
                *cached = Some(token.clone());
                token
            }
        };
        drop(cached);
        let reply = self
            .send_once(call, &Credentials::Bearer(token.clone()))
            .await?;
        if reply.status != 401 {
            return Ok(reply);
        }
        tracing::info!("token refused (401), logging in again");
        let mut cached = login.token.lock().await;
        // Another task may have refreshed it meanwhile.
        let fresh = match cached.as_ref() {
            Some(current) if current.expose() != token.expose() => current.clone(),
            _ => {
                let fresh = self.login(login, auth).await?;
                *cached = Some(fresh.clone());
                fresh
            }
        };
        drop(cached);
        self.send_once(call, &Credentials::Bearer(fresh)).await
    }

    /// Performs the login call (with retries) and returns its `access_token`.
    async fn login(&self, login: &Login, auth: &Auth) -> Result<Secret, Error> {
        let plain = |field: &LoginField| match field {
            LoginField::Plain(value) => value.clone(),
            LoginField::Secret(secret) => secret.expose().to_owned(),
        };
        let body = if login.form {
            Body::Form(
                login
                    .fields
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), plain(value)))
                    .collect(),
            )
        } else {
            let map: serde_json::Map<String, serde_json::Value> = login
                .fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), plain(value).into()))
                .collect();
            Body::json(&map)
        };
        let call = Call::post(login.url.clone(), body);
        let what = format!("login {}", login.url.path());
        let reply = with_retries(&self.policy, self.kind.as_str(), &what, |_| {
            self.send_once(&call, &Credentials::None)
        })
        .await?
        .success(auth)?;
        #[derive(serde::Deserialize)]
        struct Token {
            access_token: String,
        }
        let token: Token = reply.json()?;
        tracing::debug!("logged in");
        Ok(Secret::new(
            token.access_token,
            format!("a login at `{}`", redact(&login.url)),
        ))
    }

    /// Sends once. Transient statuses become errors (with `Retry-After`); others are returned.
    async fn send_once(&self, call: &Call<'_>, credentials: &Credentials) -> Result<Reply, Error> {
        let mut request = self.client.request(call.method.clone(), call.url.clone());
        let body_bytes: &[u8] = match &call.body {
            Body::Json(bytes) => bytes,
            _ => &[],
        };
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        if let Some(per_attempt) = call.per_attempt {
            for (name, value) in per_attempt(body_bytes) {
                request = request.header(name, value);
            }
        }
        request = match &call.body {
            Body::Empty => request,
            Body::Json(bytes) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Form(fields) => request.form(fields),
        };
        request = match credentials {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token.expose()),
            Credentials::Basic(user, password) => request.basic_auth(user, Some(password.expose())),
        };
        let response = request
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| self.transport_error(&call.method, &call.url, err))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = self.read_capped(&call.method, &call.url, response).await?;
        let reply = Reply {
            status,
            headers,
            body,
            method: call.method.clone(),
            url: call.url.clone(),
            kind: self.kind.as_str(),
        };
        tracing::debug!(method = %call.method, url = %redact(&call.url), status, "response");
        if is_transient_status(status) {
            let retry_after = retry_after::from_headers(&reply.headers, SystemTime::now());
            return Err(Error::Status {
                kind: self.kind.as_str(),
                method: call.method.to_string(),
                url: redact(&call.url),
                status,
                message: reply.engine_message(),
                retry_after,
            });
        }
        Ok(reply)
    }

    async fn read_capped(
        &self,
        method: &Method,
        url: &Url,
        mut response: reqwest::Response,
    ) -> Result<Bytes, Error> {
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_error(method, url, err))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Error::Protocol {
                    kind: self.kind.as_str(),
                    method: method.to_string(),
                    url: redact(url),
                    problem: format!("the response is larger than {} MiB", MAX_BODY >> 20),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    fn transport_error(&self, method: &Method, url: &Url, err: reqwest::Error) -> Error {
        let kind = self.kind.as_str();
        let err = err.without_url();
        let (method, url) = (method.to_string(), redact(url));
        if err.is_connect() {
            Error::Connect {
                kind,
                url,
                source: err,
            }
        } else if err.is_timeout() {
            Error::Timeout {
                kind,
                method,
                url,
                source: err,
            }
        } else if err.is_builder() {
            Error::Build {
                method,
                url,
                source: err,
            }
        } else {
            Error::Transport {
                kind,
                method,
                url,
                source: err,
            }
        }
    }
}

/// A URL for messages and logs: any password in it is replaced.
pub(crate) fn redact(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut clean = url.clone();
    // A URL with a password has a host, so it can always take another one.
    match clean.set_password(Some("redacted")) {
        Ok(()) => clean.to_string(),
        Err(()) => "<a URL with a password>".to_owned(),
    }
}

/// The first `max` characters of a body, lossily decoded, whitespace collapsed.
fn snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > max {
        let cut: String = collapsed.chars().take(max).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("unknown status")
}

/// Finds the human message in the JSON error shapes engines use.
fn message_from_json(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let object = value.as_object()?;
    for key in ["detail", "error", "message", "exception_message", "title"] {
        let Some(field) = object.get(key) else {
            continue;
        };
        match field {
            Value::String(text) if !text.is_empty() => return Some(text.clone()),
            // ZenML: ["ExceptionClass", "message"]
            Value::Array(items) if items.len() == 2 && items.iter().all(Value::is_string) => {
                return Some(format!(
                    "{}: {}",
                    items[0].as_str().unwrap_or_default(),
                    items[1].as_str().unwrap_or_default()
                ));
            }
            // FastAPI validation: [{"loc": [...], "msg": "..."}]
            Value::Array(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .filter_map(|item| {
                        let msg = item.get("msg")?.as_str()?;
                        let loc = item
                            .get("loc")
                            .and_then(Value::as_array)
                            .map(|loc| {
                                loc.iter()
                                    .map(|part| match part {
                                        Value::String(s) => s.clone(),
                                        other => other.to_string(),
                                    })
                                    .collect::<Vec<_>>()
                                    .join(".")
                            })
                            .unwrap_or_default();
                        Some(if loc.is_empty() {
                            msg.to_owned()
                        } else {
                            format!("{loc}: {msg}")
                        })
                    })
                    .collect();
                if !parts.is_empty() {
                    return Some(parts.join("; "));
                }
            }
            // Airflow 409: {"reason": ..., "message": ...}; nested {"error": {"message": ...}}
            Value::Object(_) => {
                if let Some(message) = message_from_json(field) {
                    return Some(message);
                }
                if let Some(reason) = field.get("reason").and_then(Value::as_str) {
                    return Some(reason.to_owned());
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_from_engine_error_shapes() {
        let cases = [
            (
                json!({"detail": "Deployment not found"}),
                "Deployment not found",
            ),
            (
                json!({"detail": ["CredentialsNotValid", "Authentication error: invalid username or password"]}),
                "CredentialsNotValid: Authentication error: invalid username or password",
            ),
            (
                json!({"detail": [{"type": "missing", "loc": ["body", "logical_date"], "msg": "Field required"}]}),
                "body.logical_date: Field required",
            ),
            (
                json!({"detail": {"reason": "Unique constraint violation", "message": "Serious error when handling your request."}}),
                "Serious error when handling your request.",
            ),
            (json!({"error": "unknown chain `x`"}), "unknown chain `x`"),
            (json!({"exception_message": "Unauthorized"}), "Unauthorized"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                message_from_json(&value).as_deref(),
                Some(expected),
                "{value}"
            );
        }
    }

    #[test]
    fn redact_hides_url_passwords() {
        let url = Url::parse("http://admin:hunter2@127.0.0.1:4200/api").unwrap();
        assert!(!redact(&url).contains("hunter2"));
    }

    #[test]
    fn user_agent_names_project_and_version() {
        assert!(USER_AGENT.starts_with("trigger-client/0."));
        assert!(USER_AGENT.contains("github.com"));
    }
}
