//! helpers.rs: the test harness: a feed server (the shared kit, `watcher::feedkit`) and a webhook
//! receiver on 127.0.0.1:0, config files in temp dirs (zero retry delays), real fixture feeds, and
//! the watcher binary as a child.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use tokio::sync::Notify;

pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/corpus/public")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub use watcher::feedkit::{FeedServer, Route, publish_rss};

/// A feed server on 127.0.0.1:0 (the shared kit, `watcher::feedkit`).
pub async fn spawn_feed_server() -> FeedServer {
    FeedServer::spawn().await.unwrap()
}

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Accept,
    Fail(u16),
    /// Records the request, then never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    pub raw: bytes::Bytes,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
    notify: Arc<Notify>,
}

impl Receiver {
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Idempotency keys of every request, in order.
    pub fn keys(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.headers["idempotency-key"].to_str().unwrap().to_string())
            .collect()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let notified = self.notify.notified();
                if self.received.lock().unwrap().len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("receiver got the requests in time");
    }
}

pub async fn spawn_receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rx = Receiver {
        addr,
        mode: Arc::new(Mutex::new(Mode::Accept)),
        received: Arc::default(),
        notify: Arc::default(),
    };
    let state = rx.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(rx): State<Receiver>, headers: HeaderMap, body: bytes::Bytes| async move {
                    let mode = *rx.mode.lock().unwrap();
                    let raw = body;
                    let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
                    rx.received
                        .lock()
                        .unwrap()
                        .push(Received { headers, body, raw });
                    rx.notify.notify_waiters();
                    match mode {
                        Mode::Accept => (
                            StatusCode::ACCEPTED,
                            axum::Json(serde_json::json!({"id": "r1"})),
                        )
                            .into_response(),
                        Mode::Fail(code) => {
                            (StatusCode::from_u16(code).unwrap(), "receiver says no")
                                .into_response()
                        }
                        Mode::Hang => {
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                    }
                },
            ),
        )
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    rx
}

/// A port that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One author and their feed URLs.
pub struct AuthorFeeds<'a> {
    pub name: &'a str,
    pub feeds: Vec<String>,
}

/// Writes a watcher.toml into `dir` (state and output beside it, zero retry delays).
pub fn write_config(dir: &Path, authors: &[AuthorFeeds], hook_url: &str, extra: &str) -> PathBuf {
    let mut text = format!(
        r#"
[watcher]
state_dir = "state"
output_dir = "out"
interval = "30m"
batch_window = "0s"
min_interval = "0s"
listen = "127.0.0.1:{port}"

[fetch]
timeout = "5s"
max_body_bytes = 1048576

[trigger]
kind = "webhook"
url = "{hook_url}"
pipeline = "digital_data_etl"
max_attempts = 3
retry_base_delay = "0s"
retry_max_delay = "0s"
{extra}
"#,
        port = free_port()
    );
    for a in authors {
        text.push_str(&format!(
            "\n[[authors]]\nname = \"{}\"\nfeeds = [{}]\n",
            a.name,
            a.feeds
                .iter()
                .map(|f| format!("\"{f}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let path = dir.join("watcher.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn load(path: &Path) -> watcher::config::Config {
    watcher::config::Config::load(path).unwrap()
}

/// Opens the store of the watcher configured at `config` (no other watcher may hold it).
pub fn open_watcher(config: &Path) -> watcher::watch::Watcher {
    watcher::watch::Watcher::open(load(config)).unwrap()
}

/// `status` of the watcher configured at `config`, its store opened and closed again.
pub async fn status(config: &Path) -> watcher::status::StatusReport {
    open_watcher(config).status().await.unwrap()
}

/// Replaces `from` with `to` in the config file at `config`.
pub fn edit_config(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap().replace(from, to);
    std::fs::write(config, text).unwrap();
}

/// A feed server, a webhook receiver, and a temp dir for watcher.toml, its state and output.
pub struct Scene {
    pub feeds: FeedServer,
    pub rx: Receiver,
    pub dir: tempfile::TempDir,
}

pub async fn spawn_scene() -> Scene {
    Scene {
        feeds: spawn_feed_server().await,
        rx: spawn_receiver().await,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Scene {
    /// An author whose feeds are `paths` on the scene's feed server.
    pub fn author<'a>(&self, name: &'a str, paths: &[&str]) -> AuthorFeeds<'a> {
        AuthorFeeds {
            name,
            feeds: paths.iter().map(|p| self.feeds.url(p)).collect(),
        }
    }

    /// watcher.toml in the temp dir for `authors`, delivering to the receiver.
    pub fn config(&self, authors: &[AuthorFeeds]) -> PathBuf {
        write_config(self.dir.path(), authors, &self.rx.url(), "")
    }

    /// watcher.toml in the temp dir for one author whose feeds are `paths`, delivering to the
    /// receiver.
    pub fn one_author_config(&self, name: &str, paths: &[&str]) -> PathBuf {
        self.config(&[self.author(name, paths)])
    }
}

/// Where [`OneAuthor`]'s feed is served.
pub const FEED_PATH: &str = "/feed";

/// A [`Scene`] with a config for one author whose one feed, at [`FEED_PATH`], serves a fixture.
pub struct OneAuthor {
    pub feeds: FeedServer,
    pub rx: Receiver,
    pub dir: tempfile::TempDir,
    pub cfg: PathBuf,
    /// The fixture feed as first served.
    pub original: String,
    name: String,
}

/// Serves the fixture `fixture_name` at [`FEED_PATH`] and writes a config for one author `name`
/// with that feed, delivering to the receiver. No pass has run yet.
pub async fn spawn_one_author(name: &str, fixture_name: &str) -> OneAuthor {
    let scene = spawn_scene().await;
    let original = fixture(fixture_name);
    scene.feeds.set_feed(FEED_PATH, &original);
    let cfg = scene.one_author_config(name, &[FEED_PATH]);
    let Scene { feeds, rx, dir } = scene;
    OneAuthor {
        feeds,
        rx,
        dir,
        cfg,
        original,
        name: name.into(),
    }
}

impl OneAuthor {
    /// Writes the config again for the same author, delivering to `hook_url` with `extra` lines
    /// in `[trigger]`.
    pub fn rewrite_config(&self, hook_url: &str, extra: &str) {
        let author = AuthorFeeds {
            name: &self.name,
            feeds: vec![self.feeds.url(FEED_PATH)],
        };
        write_config(self.dir.path(), &[author], hook_url, extra);
    }

    /// Serves the original feed with one new item on top.
    pub fn publish(&self, link: &str, title: &str) {
        self.feeds
            .set_feed(FEED_PATH, &publish_rss(&self.original, link, title));
    }

    /// The baseline pass, then one new item: the next pass finds exactly that article.
    pub async fn baseline_then_publish(&self, link: &str, title: &str) {
        pass(&self.cfg).await;
        self.publish(link, title);
    }
}

/// `once --all`: every source, due or not.
pub const ALL: watcher::watch::OnceOptions = watcher::watch::OnceOptions {
    backfill: false,
    dry_run: false,
    all: true,
};

/// One `once --all` pass in-process.
pub async fn pass(config: &Path) -> watcher::watch::PassReport {
    let w = watcher::watch::Watcher::open(load(config)).unwrap();
    w.once(ALL, |_, _, _| {}).await.unwrap()
}

/// The watcher binary as a child process.
pub fn watcher_cmd(config: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_watcher"));
    cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
    cmd.kill_on_drop(true);
    cmd
}

/// Links listed in a generated config file.
pub fn config_links(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    v["parameters"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// Waits until the daemon listening on `addr` answers `/healthz`.
pub async fn wait_healthy(addr: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("daemon never became healthy at {addr}");
}

/// Sends SIGTERM to the running `child`.
pub fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("the child is running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

/// Sends SIGTERM to the daemon `child` and waits (up to 20 s) for it to exit 0.
pub async fn stop_with_sigterm(child: &mut tokio::process::Child) {
    sigterm(child);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("daemon stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// `watcher status --json` of the watcher configured at `config`, through the binary (so through
/// the daemon when one holds the store), parsed.
pub async fn status_json(config: &Path) -> serde_json::Value {
    let out = watcher_cmd(config)
        .args(["status", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Links delivered so far, over every request the receiver got.
pub fn delivered_links(rx: &Receiver) -> Vec<String> {
    rx.received()
        .iter()
        .flat_map(|r| {
            r.body["config"]["parameters"]["links"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|l| l.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits (up to 30 s, looking every 20 ms) until `done` holds; panics naming `what` otherwise.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = tokio::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
