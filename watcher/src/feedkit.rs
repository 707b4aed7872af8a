//! feedkit.rs: a loopback feed server and publish helpers, shared by `watcher demo`, the
//! watcher's integration tests and the end-to-end tests. Routes change while it runs; feeds
//! answer conditional GETs (an ETag derived from the body, 304 on `If-None-Match`); every request
//! is recorded (path, headers, arrival time on tokio's clock) so tests can count and inspect them.
//! It answers absolute-form requests too, so it can stand in as an HTTP proxy for fake hosts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Inserts a new RSS item (link, guid, title, description) before the first `<item>` of `feed`;
/// a feed without items is returned unchanged.
pub fn publish_rss(feed: &str, link: &str, title: &str) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let (link, title) = (esc(link), esc(title));
    let item = format!(
        "<item><title>{title}</title><link>{link}</link><guid>{link}</guid><description>{title} body</description></item>"
    );
    match feed.find("<item>") {
        Some(at) => format!("{}{item}{}", &feed[..at], &feed[at..]),
        None => feed.to_string(),
    }
}

/// How the feed server answers one path.
#[derive(Clone, Debug)]
pub enum Route {
    /// A feed body with an ETag derived from it; honours If-None-Match.
    Feed {
        body: String,
        content_type: String,
    },
    Status(u16),
    /// Raw bytes (gzip, other charsets).
    Bytes {
        body: Vec<u8>,
        content_type: String,
    },
    /// A status with headers (Retry-After, Location...).
    StatusWith(u16, Vec<(&'static str, String)>),
    /// 200 with a body that never ends.
    Endless,
}

/// One request the server got.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    at: tokio::time::Instant,
}

#[derive(Default)]
struct ServerState {
    routes: HashMap<String, Route>,
    requests: Vec<Seen>,
    in_flight: usize,
    max_in_flight: usize,
    delay: Duration,
    /// `Link` headers sent with a path's answer (a WebSub hub and self).
    links: HashMap<String, Vec<String>>,
}

/// A feed server on 127.0.0.1 whose routes change as the caller goes. Cheap to clone: every
/// clone is the same server.
#[derive(Clone)]
pub struct FeedServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
}

impl FeedServer {
    /// Binds 127.0.0.1 on a free port and serves until the runtime stops.
    pub async fn spawn() -> std::io::Result<FeedServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(ServerState::default()));
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(state.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "feed server stopped");
            }
        });
        Ok(FeedServer { addr, state })
    }

    fn state(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, route: Route) {
        self.state().routes.insert(path.into(), route);
    }

    /// Serves an RSS `body` at `path` (with an ETag; a changed body is a new version).
    pub fn set_feed(&self, path: &str, body: &str) {
        self.set(
            path,
            Route::Feed {
                body: body.into(),
                content_type: "application/rss+xml; charset=utf-8".into(),
            },
        );
    }

    pub fn set_bytes(&self, path: &str, body: Vec<u8>, content_type: &str) {
        self.set(
            path,
            Route::Bytes {
                body,
                content_type: content_type.into(),
            },
        );
    }

    /// The feed served at `path`, if it is one.
    pub fn feed(&self, path: &str) -> Option<String> {
        match self.state().routes.get(path) {
            Some(Route::Feed { body, .. }) => Some(body.clone()),
            _ => None,
        }
    }

    /// Adds a new item on top of the feed at `path` (see [`publish_rss`]).
    pub fn publish(&self, path: &str, link: &str, title: &str) {
        let feed = self.feed(path).unwrap_or_default();
        self.set_feed(path, &publish_rss(&feed, link, title));
    }

    /// What `pick` takes from every request made to `path`, in order.
    fn each_request_to<T>(
        &self,
        path: &str,
        pick: impl Fn(&HeaderMap, tokio::time::Instant) -> T,
    ) -> Vec<T> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .map(|r| pick(&r.headers, r.at))
            .collect()
    }

    /// Headers of every request made to `path`, in order.
    pub fn requests(&self, path: &str) -> Vec<HeaderMap> {
        self.each_request_to(path, |h, _| h.clone())
    }

    /// When each request to `path` arrived (tokio's clock, so paused tests see virtual time).
    pub fn times(&self, path: &str) -> Vec<tokio::time::Instant> {
        self.each_request_to(path, |_, t| t)
    }

    pub fn total_requests(&self) -> usize {
        self.state().requests.len()
    }

    /// The most requests ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }

    /// Sends `links` as `Link` headers (one each) with every answer for `path`.
    pub fn set_links(&self, path: &str, links: &[String]) {
        self.state().links.insert(path.into(), links.to_vec());
    }

    /// Every answer waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }
}

fn lock(state: &Mutex<ServerState>) -> MutexGuard<'_, ServerState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve(State(state): State<Arc<Mutex<ServerState>>>, req: Request) -> Response {
    // An absolute-form request (the server standing in as a proxy) has the same path.
    let path = req.uri().path().to_string();
    let (route, delay, links) = {
        let mut s = lock(&state);
        s.requests.push(Seen {
            path: path.clone(),
            headers: req.headers().clone(),
            at: tokio::time::Instant::now(),
        });
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        let links = s.links.get(&path).cloned().unwrap_or_default();
        (s.routes.get(&path).cloned(), s.delay, links)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    lock(&state).in_flight -= 1;
    let mut resp = answer(route, &req);
    for link in links {
        if let Ok(value) = HeaderValue::from_str(&link) {
            resp.headers_mut().append("link", value);
        }
    }
    resp
}

fn answer(route: Option<Route>, req: &Request) -> Response {
    let status =
        |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match route {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Route::Status(code)) => status(code).into_response(),
        Some(Route::StatusWith(code, headers)) => {
            let mut resp = status(code).into_response();
            for (name, value) in headers {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    resp.headers_mut()
                        .insert(HeaderName::from_static(name), value);
                }
            }
            resp
        }
        Some(Route::Bytes { body, content_type }) => {
            ([("content-type", content_type)], body).into_response()
        }
        Some(Route::Endless) => {
            let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
            let stream =
                futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Response::new(Body::from_stream(stream))
        }
        Some(Route::Feed { body, content_type }) => {
            let etag = format!("\"{:x}\"", content_tag(&body));
            let fresh = req
                .headers()
                .get("if-none-match")
                .is_some_and(|v| v.as_bytes() == etag.as_bytes());
            if fresh {
                return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
            }
            ([("content-type", content_type), ("etag", etag)], body).into_response()
        }
    }
}

/// A tag for a body (not cryptographic: it only has to change when the body does).
fn content_tag(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_items_go_on_top() {
        let feed = "<rss><channel><item><link>old</link></item></channel></rss>";
        let new = publish_rss(feed, "https://x/a&b", "A <b>");
        assert!(new.find("x/a&amp;b").unwrap() < new.find("old").unwrap());
        assert!(new.contains("A &lt;b>"));
        assert_eq!(publish_rss("<rss/>", "l", "t"), "<rss/>");
    }
}
