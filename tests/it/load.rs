//! load.rs: the watcher daemon under load (issue 17): the real `watcher run` binary with the
//! embedded runner (the real-world shape: the watcher's store and the runner's state share one
//! process) and 300 sources on a loopback feed server, each polled every second. After their
//! baselines every source gets a new article at once, three rounds; `/healthz` and `/status` are
//! asked every 50 ms throughout and must answer within 1 s. The chain's one stage copies the
//! config each run reads, so the test counts what reached the chain: every new article exactly
//! once, none missing, none twice.
//!
//! A hang fails the test with a message saying where, never hangs it: every wait has a deadline
//! and the daemon is killed when the test ends. Ignored by plain `cargo test`; `scripts/load.sh`
//! runs it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::harness::{watcher_bin, with_new_item};

const SOURCES: usize = 300;
const ROUNDS: usize = 3;
/// Items in each feed before the rounds (the baseline).
const BASELINE_ITEMS: usize = 3;

const ASK_EVERY: Duration = Duration::from_millis(50);
/// `/healthz` and `/status` must answer within this.
const BUDGET: Duration = Duration::from_secs(1);
/// The control endpoint silent this long: the daemon hangs; the test stops waiting.
const HANG_AFTER: Duration = Duration::from_secs(10);
/// How long the baselines, and then each round, may take.
const PHASE_WITHIN: Duration = Duration::from_secs(120);
/// While waiting for a phase: how often to say how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// After the last round: how long to keep watching for a second delivery of anything.
const SETTLE: Duration = Duration::from_secs(3);
/// The whole test.
const DEADLINE: Duration = Duration::from_secs(600);

/// One stage, four runs at a time: copies the config the run reads to `@OUT@/<run id>.json`.
const COLLECT: &str = r#"name = "collect"
concurrency = 4
[[stages]]
name = "collect"
run = ["cp", "{config}", "@OUT@/{run_id}.json"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: scripts/load.sh"]
async fn the_daemon_delivers_every_article_once_to_hundreds_of_sources_and_keeps_answering() {
    match tokio::time::timeout(DEADLINE, daemon_under_load()).await {
        Ok(()) => {}
        Err(_) => panic!(
            "the load test did not end within {DEADLINE:?}; the daemon hangs or falls far behind (issue 17)"
        ),
    }
}

async fn daemon_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = spawn_conditional_feeds().await;
    let originals: Vec<String> = (0..SOURCES).map(feed).collect();
    for (i, body) in originals.iter().enumerate() {
        feeds.publish(&path(i), body.clone());
    }
    let out = dir.path().join("collected");
    std::fs::create_dir_all(&out).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = write_load_config(dir.path(), &feeds, &out, &listen);

    let mut daemon = tokio::process::Command::new(watcher_bin())
        .arg("--config")
        .arg(&config)
        .arg("--quiet")
        .arg("run")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let control = Arc::new(Control::new(&listen));
    wait_healthy(&control, &mut daemon).await;
    let started = Instant::now();
    let asking = [
        tokio::spawn(ask(control.clone(), "/healthz")),
        tokio::spawn(ask(control.clone(), "/status")),
    ];

    wait_for(&control, "the baselines", |status| {
        let sources = status["sources"].as_array().unwrap();
        let done = sources
            .iter()
            .filter(|s| s["items_known"] == BASELINE_ITEMS as u64)
            .count();
        (done == SOURCES)
            .then_some(())
            .ok_or(format!("{done} of {SOURCES} sources have their baseline"))
    })
    .await;
    println!("daemon: {SOURCES} baselines in {:?}", started.elapsed());

    let mut expected: Vec<String> = Vec::new();
    for round in 1..=ROUNDS {
        let published = Instant::now();
        let mut bodies = Vec::with_capacity(SOURCES);
        for (i, original) in originals.iter().enumerate() {
            let body = (1..=round).fold(original.clone(), |feed, r| {
                with_new_item(&feed, &article(i, r))
            });
            bodies.push(body);
            expected.push(article(i, round));
        }
        // Every source at once.
        for (i, body) in bodies.into_iter().enumerate() {
            feeds.publish(&path(i), body);
        }
        let want = expected.len();
        wait_for(&control, &format!("round {round}"), |status| {
            let links = collected(&out).values().sum::<usize>();
            let idle = status["staged"] == 0 && status["pending"] == 0;
            (links >= want && idle).then_some(()).ok_or(format!(
                "{links} of {want} links reached the chain; status: staged {}, pending {}, failed {}, done {}",
                status["staged"], status["pending"], status["failed"], status["done"]
            ))
        })
        .await;
        println!(
            "daemon: round {round}: {SOURCES} new articles delivered in {:?}",
            published.elapsed()
        );
    }
    // Anything delivered twice would show up now.
    tokio::time::sleep(SETTLE).await;
    control.check();
    let status = control
        .status()
        .await
        .unwrap_or_else(|err| control.hang(&format!("the final /status: {err}")));
    assert_eq!(status["failed"], 0, "failed deliveries: {status:#}");
    assert_eq!(
        status["done"],
        SOURCES * ROUNDS,
        "one delivery per source and round"
    );
    assert_delivered_once(&out, &expected);

    control.stop.cancel();
    for task in asking {
        task.await.unwrap();
    }
    control.check();
    for (endpoint, samples) in control.samples.lock().unwrap().iter() {
        println!("daemon: {endpoint} {}", Latencies::of(samples.clone()));
        let slow: Vec<_> = samples.iter().filter(|l| **l > BUDGET).collect();
        assert!(
            slow.is_empty(),
            "{endpoint} took longer than {BUDGET:?} {} time(s): {slow:?}",
            slow.len()
        );
    }
    println!(
        "daemon: the feed server answered {} polls with 200 and {} with 304",
        feeds.full.load(Ordering::Relaxed),
        feeds.not_modified.load(Ordering::Relaxed)
    );
    stop(daemon).await;
}

fn path(source: usize) -> String {
    format!("/feed/{source:03}")
}

fn article(source: usize, round: usize) -> String {
    format!("https://load.example/{source:03}/round-{round}")
}

/// A small RSS feed for `source` with `BASELINE_ITEMS` items.
fn feed(source: usize) -> String {
    let items: String = (0..BASELINE_ITEMS)
        .map(|n| {
            let link = format!("https://load.example/{source:03}/base-{n}");
            format!("<item><title>Base {n}</title><link>{link}</link><guid>{link}</guid></item>")
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Author {source:03}</title><link>https://load.example/{source:03}</link><description>load</description>{items}</channel></rss>"#
    )
}

/// watcher.toml for `SOURCES` authors, one feed each, polled every second, delivering to the
/// embedded runner's `collect` chain (which copies each run's config into `out`).
fn write_load_config(dir: &Path, feeds: &ConditionalFeeds, out: &Path, listen: &str) -> PathBuf {
    let chains = dir.join("chains");
    std::fs::create_dir_all(&chains).unwrap();
    std::fs::write(
        chains.join("collect.toml"),
        COLLECT.replace("@OUT@", &out.to_string_lossy()),
    )
    .unwrap();
    let mut text = format!(
        r#"[watcher]
state_dir = "state"
output_dir = "configs"
listen = "{listen}"
interval = "1s"
min_interval = "1s"
concurrency = 32
per_host = 32
batch_window = "0s"

[fetch]
timeout = "5s"

[trigger]
kind = "embedded"
pipeline = "collect"
chains_dir = "{chains}"
retry_base_delay = "1s"
retry_max_delay = "2s"
follow_interval = "1s"
shutdown_grace = "10s"
"#,
        chains = chains.display()
    );
    for i in 0..SOURCES {
        text.push_str(&format!(
            "\n[[authors]]\nname = \"Author {i:03}\"\nfeeds = [\"{}\"]\n",
            feeds.url(&path(i))
        ));
    }
    let config = dir.join("watcher.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// Feeds served with an ETag: a poll that sends the current one gets a 304, as most polls of
/// real feeds do; the test edits the feeds while the daemon polls them.
#[derive(Clone)]
struct ConditionalFeeds {
    addr: SocketAddr,
    /// Body and ETag per path.
    bodies: Arc<Mutex<HashMap<String, (String, String)>>>,
    /// Answers: 200s and 304s.
    full: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
}

impl ConditionalFeeds {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn publish(&self, path: &str, body: String) {
        static VERSION: AtomicUsize = AtomicUsize::new(0);
        let etag = format!("\"v{}\"", VERSION.fetch_add(1, Ordering::SeqCst));
        self.bodies
            .lock()
            .unwrap()
            .insert(path.to_owned(), (body, etag));
    }
}

async fn spawn_conditional_feeds() -> ConditionalFeeds {
    async fn serve(
        State(feeds): State<ConditionalFeeds>,
        uri: Uri,
        headers: HeaderMap,
    ) -> Response {
        let Some((body, etag)) = feeds.bodies.lock().unwrap().get(uri.path()).cloned() else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if headers
            .get("if-none-match")
            .is_some_and(|given| given.as_bytes() == etag.as_bytes())
        {
            feeds.not_modified.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
        }
        feeds.full.fetch_add(1, Ordering::Relaxed);
        (
            [
                ("content-type", "application/rss+xml".to_owned()),
                ("etag", etag),
            ],
            body,
        )
            .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feeds = ConditionalFeeds {
        addr: listener.local_addr().unwrap(),
        bodies: Arc::default(),
        full: Arc::default(),
        not_modified: Arc::default(),
    };
    let app = axum::Router::new()
        .fallback(serve)
        .with_state(feeds.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    feeds
}

/// A port that nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Links per occurrence count in the configs the chain's runs read.
fn collected(out: &Path) -> BTreeMap<String, usize> {
    let mut links = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        // `cp` may be half-way through a file; it is read again on the next check.
        let Ok(config) = serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()) else {
            continue;
        };
        for link in config["parameters"]["links"].as_array().unwrap() {
            *links.entry(link.as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    links
}

fn assert_delivered_once(out: &Path, expected: &[String]) {
    let got = collected(out);
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "links delivered more than once: {twice:?}"
    );
    let missing: Vec<_> = expected.iter().filter(|l| !got.contains_key(*l)).collect();
    assert!(missing.is_empty(), "links never delivered: {missing:?}");
    let unexpected: Vec<_> = got.keys().filter(|l| !expected.contains(l)).collect();
    assert!(
        unexpected.is_empty(),
        "links nobody published: {unexpected:?}"
    );
    let runs = std::fs::read_dir(out).unwrap().count();
    assert_eq!(runs, expected.len(), "one run per new article");
}

/// The daemon's control endpoint, and what asking it has measured.
struct Control {
    url: String,
    http: reqwest::Client,
    /// Latencies per endpoint (a miss counts as the budget).
    samples: Mutex<BTreeMap<&'static str, Vec<Duration>>>,
    /// Set with the first failure; cancels everyone.
    failure: Mutex<Option<String>>,
    abort: CancellationToken,
    stop: CancellationToken,
}

impl Control {
    fn new(listen: &str) -> Self {
        Self {
            url: format!("http://{listen}"),
            http: reqwest::Client::builder().timeout(BUDGET).build().unwrap(),
            samples: Mutex::new(BTreeMap::new()),
            failure: Mutex::new(None),
            abort: CancellationToken::new(),
            stop: CancellationToken::new(),
        }
    }

    fn fail(&self, message: String) {
        self.failure.lock().unwrap().get_or_insert(message);
        self.abort.cancel();
    }

    /// Panics with the first failure, if any.
    fn check(&self) {
        if let Some(message) = self.failure.lock().unwrap().clone() {
            panic!("{message}");
        }
    }

    fn hang(&self, what: &str) -> ! {
        self.check();
        panic!("{what}; the daemon hangs (issue 17: sled transaction vs flush)");
    }

    /// `GET /status`, with a longer timeout than the budget (the budget is checked by `ask`).
    async fn status(&self) -> Result<Value, reqwest::Error> {
        self.http
            .get(format!("{}/status", self.url))
            .timeout(HANG_AFTER)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }
}

async fn wait_healthy(control: &Control, daemon: &mut tokio::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = control
            .http
            .get(format!("{}/healthz", control.url))
            .send()
            .await
            && response.status().is_success()
        {
            return;
        }
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!("`watcher run` exited with {status} before it answered /healthz");
        }
        assert!(
            Instant::now() < deadline,
            "`watcher run` never answered /healthz at {}",
            control.url
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks `endpoint` every `ASK_EVERY` and records how long it took; fails the test when it is
/// silent for `HANG_AFTER`.
async fn ask(control: Arc<Control>, endpoint: &'static str) {
    let url = format!("{}{endpoint}", control.url);
    let mut last_answer = Instant::now();
    let mut ticks = tokio::time::interval(ASK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = control.stop.cancelled() => return,
            _ = control.abort.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let started = Instant::now();
        let answered = match control.http.get(&url).send().await {
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        };
        let took = started.elapsed();
        control
            .samples
            .lock()
            .unwrap()
            .entry(endpoint)
            .or_default()
            .push(if answered { took } else { took.max(BUDGET) });
        if answered {
            last_answer = Instant::now();
        } else if last_answer.elapsed() > HANG_AFTER {
            control.fail(format!(
                "{endpoint} has not answered for {HANG_AFTER:?}; the daemon hangs (issue 17: sled transaction vs flush)"
            ));
            return;
        }
    }
}

/// Asks `/status` every 250 ms until `done` says so (or says how far it got).
async fn wait_for(control: &Control, what: &str, done: impl Fn(&Value) -> Result<(), String>) {
    let started = Instant::now();
    let mut next_report = started + PROGRESS_EVERY;
    loop {
        control.check();
        let status = control.status().await.unwrap_or_else(|err| {
            control.hang(&format!("/status while waiting for {what}: {err}"))
        });
        let progress = match done(&status) {
            Ok(()) => return,
            Err(progress) => progress,
        };
        if Instant::now() >= next_report {
            next_report += PROGRESS_EVERY;
            println!("daemon: {what}, after {:?}: {progress}", started.elapsed());
        }
        assert!(
            started.elapsed() < PHASE_WITHIN,
            "{what} did not complete within {PHASE_WITHIN:?}: {progress}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// SIGTERM, then wait for a clean exit.
async fn stop(mut daemon: tokio::process::Child) {
    let pid = daemon.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .expect("`watcher run` stops within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "`watcher run` exited with {status}");
}

/// p50, p99 and max of some latencies.
struct Latencies {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Latencies {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: usize| {
            samples
                .get(samples.len().saturating_sub(1) * q / 100)
                .copied()
                .unwrap_or_default()
        };
        Self {
            count: samples.len(),
            p50: at(50),
            p99: at(99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.1}ms p99={:.1}ms max={:.1}ms",
            self.count,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}
