//! The one HTTP transport every backend sends through: the single `reqwest::Client`
//! (User-Agent, timeouts), credentials per attempt (static bearer/basic, or a login token
//! renewed before it expires and refreshed once on a 401), redirects (followed only within the
//! request's own origin), the response body cap, transient statuses turned into errors (with
//! `Retry-After`), and the retry loop around it all. Backends describe requests ([`Call`]) and
//! read [`Reply`]s.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::Method;
use reqwest::header::{self, HeaderName, HeaderValue};
use tokio::time::Instant;
use url::Url;

use crate::auth::{Auth, Login, LoginField, Token};
use crate::error::{Error, is_transient_status};
use crate::reply::Reply;
use crate::retry::{RetryPolicy, with_retries};
use crate::retry_after;
use crate::target::{Kind, Secret, TargetConfig, redact};

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

/// Redirects followed per request (all within the request's origin).
const MAX_REDIRECTS: usize = 5;

/// An engine's answer never chooses where we connect: a redirect is followed only to the origin
/// the request went to (scheme, host and port), at most [`MAX_REDIRECTS`] times; any other
/// redirect comes back as its 3xx, which [`Http::send`] turns into [`Error::Redirected`].
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(Url::origin);
        if first.is_some_and(|origin| origin != attempt.url().origin()) {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
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

/// What one attempt authenticates with.
enum Credentials {
    None,
    Bearer(Secret),
    Basic(String, Secret),
}

impl Http {
    /// The transport for `target`: its timeouts, its kind, the default retry policy.
    pub(crate) fn new(target: &TargetConfig) -> Result<Http, Error> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(target.connect_timeout())
            .timeout(target.request_timeout())
            .redirect(same_origin_redirects())
            .build()
            .map_err(|source| Error::HttpClient { source })?;
        Ok(Http {
            client,
            kind: target.kind,
            policy: RetryPolicy::default(),
        })
    }

    pub(crate) fn policy(&self) -> RetryPolicy {
        self.policy
    }

    pub(crate) fn set_policy(&mut self, policy: RetryPolicy) {
        self.policy = policy;
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
            Some(token) if !token.is_stale(Instant::now()) => token.secret.clone(),
            stale => {
                if stale.is_some() {
                    tracing::debug!("token about to expire, logging in again");
                }
                let token = self.login(login, auth).await?;
                let secret = token.secret.clone();
                *cached = Some(token);
                secret
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
            Some(current) if current.secret.expose() != token.expose() => current.secret.clone(),
            _ => {
                let fresh = self.login(login, auth).await?;
                let secret = fresh.secret.clone();
                *cached = Some(fresh);
                secret
            }
        };
        drop(cached);
        self.send_once(call, &Credentials::Bearer(fresh)).await
    }

    /// Performs the login call (with retries) and returns its `access_token` with its
    /// `expires_in` (seconds), when the answer gives one.
    async fn login(&self, login: &Login, auth: &Auth) -> Result<Token, Error> {
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
        let asked = Instant::now();
        let what = format!("login {}", login.url.path());
        let reply = with_retries(&self.policy, self.kind.as_str(), &what, |_| {
            self.send_once(&call, &Credentials::None)
        })
        .await?
        .success(auth)?;
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: String,
            #[serde(default)]
            expires_in: Option<f64>,
        }
        let answer: Answer = reply.json()?;
        let expires_in = answer
            .expires_in
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
            .map(|seconds| Duration::from_secs_f64(seconds.min(1e9)));
        tracing::debug!(expires_in = ?expires_in, "logged in");
        let secret = Secret::new(
            answer.access_token,
            format!("a login at `{}`", redact(&login.url)),
        );
        Ok(Token::new(secret, asked, expires_in))
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
        if (300..400).contains(&status) {
            return Err(Error::Redirected {
                kind: self.kind.as_str(),
                method: call.method.to_string(),
                url: redact(&call.url),
                status,
                location: crate::reply::location(&reply.headers, &call.url),
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_project_and_version() {
        assert!(USER_AGENT.starts_with("trigger-client/0."));
        assert!(USER_AGENT.contains("github.com"));
    }
}
