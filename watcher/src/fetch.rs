//! fetch.rs: one HTTP GET of a source, done politely: conditional GET with the stored validators,
//! timeouts, redirects followed by hand (so a 301/308 can move the source and a 302/307 cannot),
//! a body cap enforced while streaming (decompressed bytes count), the cache lifetime the server
//! declares, and one specific error per failure. Every request, each redirect hop included,
//! takes a slot of the request limits (`limits`) on the host it goes to, from sending until its
//! body is read. Every hop is held to the address rule (`ssrf`): IP literals are checked before
//! the request, names by the client's resolver; environment proxies are ignored.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_TYPE, ETAG, EXPIRES, HeaderMap, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};
use url::Url;

use crate::config::FetchSettings;
use crate::limits::Limits;
use crate::ssrf::{GuardedResolver, NetworkRule, Refused};

/// The default User-Agent: project, version and where to read about it.
pub fn default_user_agent() -> String {
    format!(
        "llm-twin-article-watcher/{} (+{})",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_REPOSITORY")
    )
}

/// Validators from the previous successful fetch.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A fetched body.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: StatusCode,
    /// The URL after redirects: the base for relative links.
    pub final_url: Url,
    pub content_type: Option<String>,
    pub validators: Validators,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub enum FetchOutcome {
    /// 304: nothing changed; no body was read.
    NotModified {
        headers: HeaderMap,
    },
    Fetched(Fetched),
}

/// A response plus what the redirects on the way said.
#[derive(Debug, Clone)]
pub struct Response {
    pub outcome: FetchOutcome,
    /// Set when every hop to the final URL was permanent (301/308): the source moved there.
    pub moved_to: Option<Url>,
}

impl Response {
    pub fn headers(&self) -> &HeaderMap {
        match &self.outcome {
            FetchOutcome::NotModified { headers } => headers,
            FetchOutcome::Fetched(f) => &f.headers,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "timed out after {0:?}; hint: the server is slow or unreachable, raise [fetch] timeout if it is just slow"
    )]
    Timeout(Duration),
    #[error("cannot connect; hint: check the URL and this machine's network")]
    Connect {
        #[source]
        source: reqwest::Error,
    },
    #[error("too many redirects (limit {0}); hint: point the source at the final URL")]
    Redirects(usize),
    #[error("redirect without a usable Location header (HTTP {0})")]
    BadRedirect(StatusCode),
    #[error("HTTP {status}{}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default())]
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    #[error(
        "body is larger than the {limit}-byte cap; cut off; hint: raise [fetch] {key} if this source is legitimately huge"
    )]
    TooLarge { limit: u64, key: &'static str },
    #[error("request failed")]
    Request {
        #[source]
        source: reqwest::Error,
    },
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("invalid HTTP client settings")]
    Client {
        #[source]
        source: reqwest::Error,
    },
}

/// A body cap and the `[fetch]` key it comes from (named in the error's hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub bytes: u64,
    pub key: &'static str,
}

/// The watcher's HTTP client (one per process, shared by every source).
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    settings: FetchSettings,
    /// Which addresses requests may reach.
    rule: Arc<NetworkRule>,
    /// Slots for requests in flight, in all and per host.
    requests: Arc<Limits>,
}

impl Fetcher {
    /// A client whose every request (each redirect hop too) takes a slot of `requests` on the
    /// host it goes to, and that reaches only the addresses `rule` permits.
    pub fn new(
        settings: &FetchSettings,
        rule: NetworkRule,
        requests: Arc<Limits>,
    ) -> Result<Fetcher, FetchError> {
        let rule = Arc::new(rule);
        let builder = match &settings.proxy {
            Some(proxy) => reqwest::Client::builder().proxy(
                reqwest::Proxy::all(proxy.as_str())
                    .map_err(|source| FetchError::Client { source })?,
            ),
            None => reqwest::Client::builder().no_proxy(),
        };
        let http = builder
            .dns_resolver(Arc::new(GuardedResolver::new(rule.clone())))
            .user_agent(
                settings
                    .user_agent
                    .clone()
                    .unwrap_or_else(default_user_agent),
            )
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| FetchError::Client { source })?;
        Ok(Fetcher {
            http,
            settings: settings.clone(),
            rule,
            requests,
        })
    }

    /// The `[fetch]` settings, limits included.
    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    /// The address rule requests are held to.
    pub fn rule(&self) -> &NetworkRule {
        &self.rule
    }

    /// The body cap of an ordinary response (`max_body_bytes`).
    pub fn body_cap(&self) -> Cap {
        Cap {
            bytes: self.settings.max_body_bytes,
            key: "max_body_bytes",
        }
    }

    /// GETs `url`, sending `validators` as If-None-Match / If-Modified-Since, following up to
    /// `max_redirects` redirects, the body capped at `max_body_bytes`.
    pub async fn get(&self, url: &Url, validators: &Validators) -> Result<Response, FetchError> {
        self.get_capped(url, validators, self.body_cap()).await
    }

    /// [`Fetcher::get`] with the body capped at `cap`. Each hop waits for a request slot on its
    /// host and holds it until the hop's body is read.
    pub async fn get_capped(
        &self,
        url: &Url,
        validators: &Validators,
        cap: Cap,
    ) -> Result<Response, FetchError> {
        let mut current = url.clone();
        let mut permanent = true;
        let mut moved_to = None;
        for _ in 0..=self.settings.max_redirects {
            self.rule.check_url(&current)?;
            let host = current.host_str().unwrap_or_default().to_ascii_lowercase();
            let _slots = self.requests.acquire(&host).await;
            let resp = self.send(&current, validators).await?;
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let next = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| current.join(loc).ok())
                    .ok_or(FetchError::BadRedirect(status))?;
                permanent &= matches!(
                    status,
                    StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
                );
                moved_to = permanent.then(|| next.clone());
                current = next;
                continue;
            }
            let outcome = self.finish(resp, cap).await?;
            let moved_to = moved_to.filter(|to| match self.rule.may_move(url, to) {
                Ok(()) => true,
                Err(why) => {
                    tracing::warn!(url = %to, reason = why, "permanent redirect not adopted as the source's new URL");
                    false
                }
            });
            return Ok(Response { outcome, moved_to });
        }
        Err(FetchError::Redirects(self.settings.max_redirects))
    }

    async fn send(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<reqwest::Response, FetchError> {
        let mut req = self.http.get(url.clone()).header(
            ACCEPT,
            "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8",
        );
        if let Some(etag) = &validators.etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            req = req.header(IF_MODIFIED_SINCE, lm);
        }
        req.send().await.map_err(|e| self.classify(e))
    }

    async fn finish(&self, resp: reqwest::Response, cap: Cap) -> Result<FetchOutcome, FetchError> {
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(FetchOutcome::NotModified {
                headers: resp.headers().clone(),
            });
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                status,
                retry_after: trigger_client::retry_after::from_headers(
                    resp.headers(),
                    std::time::SystemTime::now(),
                ),
            });
        }
        let final_url = resp.url().clone();
        let headers = resp.headers().clone();
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(String::from)
        };
        let content_type = header(CONTENT_TYPE);
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let body = self.read_capped(resp, cap).await?;
        Ok(FetchOutcome::Fetched(Fetched {
            status,
            final_url,
            content_type,
            validators,
            headers,
            body,
        }))
    }

    /// Reads the body chunk by chunk (after decompression) and stops at the cap.
    async fn read_capped(&self, resp: reqwest::Response, cap: Cap) -> Result<Bytes, FetchError> {
        let (limit, key) = (cap.bytes, cap.key);
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit, key });
        }
        // The declared length (within the cap) up front: no copies while the buffer grows.
        let declared = resp.content_length().unwrap_or(0).min(limit);
        let mut body = BytesMut::with_capacity(usize::try_from(declared).unwrap_or(0));
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.classify(e))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { limit, key });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    fn classify(&self, e: reqwest::Error) -> FetchError {
        if let Some(refused) = crate::ssrf::refused_in(&e) {
            FetchError::Refused(refused)
        } else if e.is_timeout() {
            FetchError::Timeout(self.settings.timeout)
        } else if e.is_connect() {
            FetchError::Connect { source: e }
        } else {
            FetchError::Request { source: e }
        }
    }
}

/// How long the response says it stays fresh: `Cache-Control: max-age` (or `s-maxage`), else
/// `Expires`. With the name of the header that said so.
pub fn cache_lifetime(headers: &HeaderMap) -> Option<(Duration, &'static str)> {
    if let Some(cc) = headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()) {
        let max_age = cc.split(',').find_map(|d| {
            let (k, v) = d.trim().split_once('=')?;
            matches!(
                k.trim().to_ascii_lowercase().as_str(),
                "max-age" | "s-maxage"
            )
            .then(|| v.trim().trim_matches('"').parse::<u64>().ok())
            .flatten()
        });
        if let Some(secs) = max_age {
            return Some((Duration::from_secs(secs), "Cache-Control max-age"));
        }
    }
    let expires = headers.get(EXPIRES)?.to_str().ok()?;
    let when = chrono::DateTime::parse_from_rfc2822(expires.trim()).ok()?;
    let left = (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()?;
    Some((left, "Expires"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetime_reads_max_age_then_expires() {
        let mut h = HeaderMap::new();
        assert_eq!(cache_lifetime(&h), None);
        let later = chrono::Utc::now() + chrono::Duration::seconds(600);
        h.insert(EXPIRES, later.to_rfc2822().parse().unwrap());
        let (d, what) = cache_lifetime(&h).unwrap();
        assert!((590..=600).contains(&d.as_secs()) && what == "Expires");
        h.insert(CACHE_CONTROL, "public, max-age=1800".parse().unwrap());
        assert_eq!(
            cache_lifetime(&h),
            Some((Duration::from_secs(1800), "Cache-Control max-age"))
        );
    }

    #[test]
    fn user_agent_names_project_version_and_repository() {
        let ua = default_user_agent();
        assert!(
            ua.contains(env!("CARGO_PKG_VERSION")) && ua.contains("https://"),
            "{ua}"
        );
    }
}
