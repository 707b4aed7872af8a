//! The `webhook` backend: POST a JSON body (the caller's opaque payload, or a default body) to
//! any receiver, with an `Idempotency-Key` header and an optional HMAC-SHA256 signature
//! (`X-Watcher-Signature: t=<unix>,v1=<hex>` over `timestamp + "." + body`); `status` works
//! when the receiver names a status URL on the webhook's own origin (another origin is never
//! asked: the token would go there).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use url::Url;

use super::{Backend, IdValue};
use crate::auth::Auth;
use crate::error::Error;
use crate::http::{Body, Call, Http, PerAttempt};
use crate::target::{Secret, TargetConfig};
use crate::{RunRequest, RunState, RunStatus};

/// The header carrying the idempotency key (the same on every retry).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-watcher-signature";

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`: the `X-Watcher-Signature`
/// value. Public so receivers (and tests) verify exactly what senders sign.
pub fn webhook_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

pub(crate) struct Webhook {
    url: Url,
    secret: Option<Secret>,
    auth: Auth,
    status_template: Option<String>,
    /// Status URLs the receiver named, by run id (this process only).
    status_urls: Mutex<HashMap<String, Named>>,
}

/// A status URL a receiver named.
#[derive(Clone)]
enum Named {
    /// On the webhook's origin: followed.
    Followed(Url),
    /// On another origin (kept as its ASCII serialization only): refused when asked.
    Foreign(String),
}

/// `scheme://host:port` (default port made explicit): what "same origin" compares. A URL
/// without a host (`data:`, `file:`) is its own opaque origin, equal to none.
fn origin(url: &Url) -> Option<(String, String, u16)> {
    let host = url.host_str()?;
    Some((
        url.scheme().to_owned(),
        host.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

/// Status URLs remembered at most (per process); a forgotten one makes `status` fall back to the
/// `status_url` template, or report the run as untracked.
const MAX_STATUS_URLS: usize = 10_000;

impl Webhook {
    pub(crate) fn new(target: &TargetConfig) -> Result<Self, Error> {
        let auth = match target.token()? {
            Some(token) => Auth::Bearer(token),
            None => Auth::None,
        };
        if let Some(template) = &target.status_url
            && !template.contains("{id}")
        {
            return Err(Error::Config {
                key: "status_url".into(),
                problem: format!("`{template}` must contain `{{id}}`"),
            });
        }
        Ok(Webhook {
            url: target.require_url()?,
            secret: target.signing_secret()?,
            auth,
            status_template: target.status_url.clone(),
            status_urls: Mutex::new(HashMap::new()),
        })
    }

    fn status_url_for(&self, id: &str) -> Result<Url, Error> {
        let named = self
            .status_urls
            .lock()
            .expect("not poisoned")
            .get(id)
            .cloned();
        match named {
            Some(Named::Followed(url)) => return Ok(url),
            Some(Named::Foreign(origin)) => {
                return Err(Error::ForeignStatusUrl {
                    origin,
                    expected: self.url.origin().ascii_serialization(),
                });
            }
            None => {}
        }
        let unsupported = || Error::Unsupported {
            kind: "webhook",
            message: format!(
                "the receiver named no status URL for run `{id}` (hint: set `status_url` in the target, a URL template with `{{id}}`)"
            ),
        };
        let template = self.status_template.as_ref().ok_or_else(unsupported)?;
        let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        Url::parse(&template.replace("{id}", &encoded)).map_err(|source| Error::BadUrl {
            key: "status_url".into(),
            template: template.clone(),
            source,
        })
    }
}

/// What a receiver may answer to the POST (every field optional).
#[derive(Deserialize, Default)]
struct Accepted {
    #[serde(default)]
    id: Option<IdValue>,
    #[serde(default)]
    run_id: Option<IdValue>,
    #[serde(default)]
    status_url: Option<String>,
}

/// What a status URL may answer.
#[derive(Deserialize)]
struct StatusBody {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl Backend for Webhook {
    async fn trigger(
        &self,
        http: &Http,
        pipeline: &str,
        req: &RunRequest,
    ) -> Result<String, Error> {
        let body = match &req.payload {
            Some(payload) => payload.clone(),
            None => json!({
                "pipeline": pipeline,
                "idempotency_key": req.idempotency_key,
                "config": req.config,
                "params": req.params,
            }),
        };
        let key = HeaderValue::from_str(&req.idempotency_key).map_err(|_| Error::Request {
            problem: format!(
                "the idempotency key `{}` cannot be sent as an HTTP header (hint: use visible ASCII only)",
                req.idempotency_key
            ),
        })?;
        let sign = |body: &[u8]| {
            let Some(secret) = &self.secret else {
                return Vec::new();
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs() as i64)
                .unwrap_or_default();
            let value = webhook_signature(secret.expose().as_bytes(), now, body);
            vec![(
                HeaderName::from_static(SIGNATURE_HEADER),
                HeaderValue::from_str(&value).expect("hex and digits are valid header text"),
            )]
        };
        let mut call = Call::post(self.url.clone(), Body::json(&body))
            .header(HeaderName::from_static(IDEMPOTENCY_HEADER), key);
        call.per_attempt = Some(&sign as &PerAttempt<'_>);
        let reply = http.send(&call, &self.auth).await?.success(&self.auth)?;

        let accepted: Accepted = if reply.body.iter().all(u8::is_ascii_whitespace) {
            Accepted::default()
        } else {
            serde_json::from_slice(&reply.body).unwrap_or_default()
        };
        let id = accepted
            .id
            .or(accepted.run_id)
            .map(IdValue::into_string)
            .unwrap_or_else(|| req.idempotency_key.clone());
        let status_url = accepted
            .status_url
            .and_then(|raw| reply.url.join(&raw).ok())
            .or_else(|| reply.location());
        if let Some(url) = status_url {
            let same = origin(&url).is_some_and(|o| Some(o) == origin(&self.url));
            let named = if same {
                Named::Followed(url)
            } else {
                tracing::warn!(
                    run_id = ?id,
                    origin = %url.origin().ascii_serialization(),
                    "the webhook receiver named a status URL on another origin; it will not be followed"
                );
                Named::Foreign(url.origin().ascii_serialization())
            };
            let mut urls = self.status_urls.lock().expect("not poisoned");
            // Bounded for a process that runs for months: the oldest runs are long finished.
            if urls.len() >= MAX_STATUS_URLS {
                urls.clear();
            }
            urls.insert(id.clone(), named);
        }
        Ok(id)
    }

    async fn status(&self, http: &Http, id: &str) -> Result<RunStatus, Error> {
        let url = self.status_url_for(id)?;
        let reply = http
            .send(&Call::new(Method::GET, url), &self.auth)
            .await?
            .success(&self.auth)?;
        let body: StatusBody = reply.json()?;
        let raw = body
            .status
            .or(body.state)
            .ok_or_else(|| reply.protocol("the status body has neither `status` nor `state`"))?;
        Ok(RunStatus {
            state: normalize(&raw),
            raw_state: raw,
            message: body.message.or(body.error),
            stages: Vec::new(),
        })
    }

    async fn cancel(&self, _http: &Http, _id: &str) -> Result<(), Error> {
        Err(Error::Unsupported {
            kind: "webhook",
            message: "the webhook kind cannot cancel runs: a webhook receiver has no cancel contract (hint: cancel it in the engine behind the receiver)".into(),
        })
    }
}

/// Maps the usual words receivers use; anything unknown counts as still running.
fn normalize(raw: &str) -> RunState {
    match raw.to_ascii_lowercase().as_str() {
        "queued" | "pending" | "scheduled" | "accepted" | "created" | "initializing" => {
            RunState::Queued
        }
        "succeeded" | "success" | "successful" | "completed" | "complete" | "done" | "ok" => {
            RunState::Succeeded
        }
        "failed" | "failure" | "error" | "errored" | "crashed" => RunState::Failed,
        "cancelled" | "canceled" | "stopped" | "aborted" => RunState::Cancelled,
        _ => RunState::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 's3cret'
        let signature = webhook_signature(b"s3cret", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            signature,
            "t=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn same_origin_means_scheme_host_and_port() {
        let url = |s: &str| Url::parse(s).unwrap();
        let hook = origin(&url("http://Hooks.example:80/in"));
        assert_eq!(origin(&url("http://hooks.example/runs/1?x")), hook);
        for other in [
            "https://hooks.example/runs/1",
            "http://hooks.example:8080/runs/1",
            "http://evil.example/runs/1",
            "data:text/plain,x",
        ] {
            assert_ne!(origin(&url(other)), hook, "{other}");
        }
    }

    #[test]
    fn normalizes_common_words() {
        assert_eq!(normalize("COMPLETED"), RunState::Succeeded);
        assert_eq!(normalize("canceled"), RunState::Cancelled);
        assert_eq!(normalize("pending"), RunState::Queued);
        assert_eq!(normalize("crunching"), RunState::Running);
    }
}
