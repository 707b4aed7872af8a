//! websub/hub.rs: the requests a subscriber sends a hub: `hub.mode=subscribe` (with the callback,
//! the secret, the lease asked, and `hub.verify=sync`/`async` for hubs of the 0.3 draft) and
//! `hub.mode=unsubscribe`. The hub's URL comes from the network, so the address rule (`ssrf`)
//! applies to it as to any fetch; the secret goes only over https or to a host the rule trusts
//! (a configured source's, or a private address the operator allowed).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use url::{Host, Url};

use crate::config::FetchSettings;
use crate::ssrf::{GuardedResolver, NetworkRule, Refused};

/// How much of a hub's error answer is kept (printable) for `status`.
const ERROR_BODY: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(
        "the hub `{hub}` is plain http on a public host: the subscription secret would travel in \
         clear; hint: the feed should name an https hub"
    )]
    Cleartext { hub: String },
    #[error("the hub answered HTTP {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("the request to the hub failed")]
    Request {
        #[source]
        source: reqwest::Error,
    },
    #[error("invalid HTTP client settings")]
    Client {
        #[source]
        source: reqwest::Error,
    },
}

/// How the hub took a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// 202: it verifies later.
    Later,
    /// 204 (or another 2xx): verified already (a synchronous hub).
    Done,
}

/// A subscription request.
#[derive(Debug, Clone)]
pub enum Request<'a> {
    Subscribe {
        topic: &'a Url,
        callback: &'a Url,
        secret: &'a str,
        lease: Duration,
    },
    Unsubscribe {
        topic: &'a Url,
        callback: &'a Url,
    },
}

/// The client for hubs: the fetcher's address rule, timeouts and User-Agent; no redirects.
#[derive(Clone)]
pub struct HubClient {
    http: reqwest::Client,
    rule: Arc<NetworkRule>,
}

impl HubClient {
    pub fn new(settings: &FetchSettings, rule: NetworkRule) -> Result<HubClient, HubError> {
        let rule = Arc::new(rule);
        let http = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(rule.clone())))
            .user_agent(
                (settings.user_agent.clone()).unwrap_or_else(crate::fetch::default_user_agent),
            )
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| HubError::Client { source })?;
        Ok(HubClient { http, rule })
    }

    /// Sends `request` to `hub`.
    pub async fn send(&self, hub: &Url, request: Request<'_>) -> Result<Accepted, HubError> {
        self.rule.check_url(hub)?;
        let form: Vec<(&str, String)> = match request {
            Request::Subscribe {
                topic,
                callback,
                secret,
                lease,
            } => {
                if !self.secret_may_go_to(hub) {
                    return Err(HubError::Cleartext {
                        hub: crate::printable::printable(hub.as_str()),
                    });
                }
                vec![
                    ("hub.mode", "subscribe".into()),
                    ("hub.topic", topic.to_string()),
                    ("hub.callback", callback.to_string()),
                    ("hub.secret", secret.to_owned()),
                    ("hub.lease_seconds", lease.as_secs().to_string()),
                    ("hub.verify", "sync".into()),
                    ("hub.verify", "async".into()),
                ]
            }
            Request::Unsubscribe { topic, callback } => vec![
                ("hub.mode", "unsubscribe".into()),
                ("hub.topic", topic.to_string()),
                ("hub.callback", callback.to_string()),
                ("hub.verify", "sync".into()),
                ("hub.verify", "async".into()),
            ],
        };
        let resp = (self.http.post(hub.clone()).form(&form).send())
            .await
            .map_err(|source| match crate::ssrf::refused_in(&source) {
                Some(refused) => HubError::Refused(refused),
                None => HubError::Request { source },
            })?;
        let status = resp.status();
        match status {
            StatusCode::ACCEPTED => Ok(Accepted::Later),
            s if s.is_success() => Ok(Accepted::Done),
            _ => {
                let body = head_of(resp, 4096).await;
                Err(HubError::Status {
                    status,
                    body: crate::printable::printable_within(body.trim(), ERROR_BODY),
                })
            }
        }
    }

    /// Whether the secret may travel to `hub`: over https, or to a host the rule trusts or a
    /// non-public address it permits (a hub on the operator's own network).
    fn secret_may_go_to(&self, hub: &Url) -> bool {
        if hub.scheme() == "https" {
            return true;
        }
        let host = hub.host_str().unwrap_or_default();
        let ip = match hub.host() {
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        self.rule.trusts_host(host)
            || ip.is_some_and(|ip| crate::ssrf::is_non_public(ip) && self.rule.permits(ip))
    }
}

/// The first `cap` bytes of an error answer, as text (lossy).
async fn head_of(mut resp: reqwest::Response, cap: usize) -> String {
    let mut body = Vec::new();
    while body.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(cap - body.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}
