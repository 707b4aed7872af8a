//! The test harness: loopback servers on port 0, a request recorder, targets and clients with
//! zero retry delays, and logs behind `TEST_LOG=1`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use trigger_client::{Client, Kind, RetryPolicy, TargetConfig};
use url::Url;

/// Starts `router` on 127.0.0.1:0 and returns its base URL (`http://127.0.0.1:PORT/`).
pub async fn spawn(router: Router) -> Url {
    init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Url::parse(&format!("http://{addr}/")).unwrap()
}

/// A loopback address on which nothing listens.
pub async fn closed_port_url() -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    Url::parse(&format!("http://{addr}/hook")).unwrap()
}

/// Logs to the test output when `TEST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("trigger_client=debug")
            .with_test_writer()
            .try_init();
    }
}

/// One request as a test server saw it.
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
}

/// Every request a test server saw, in order.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    pub fn record(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Seen {
        let seen = Seen {
            method,
            uri,
            headers,
            body,
        };
        self.0.lock().unwrap().push(seen.clone());
        seen
    }

    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A target of `kind` at `base.join(path)`.
pub fn target(kind: Kind, base: &Url, path: &str) -> TargetConfig {
    TargetConfig::new(kind, base.join(path).unwrap())
}

/// A client with 4 attempts and no delays.
pub fn client(target: &TargetConfig) -> Client {
    Client::new(target)
        .unwrap()
        .with_retry(RetryPolicy::immediate(4))
        .with_poll_interval(std::time::Duration::from_millis(10))
}
