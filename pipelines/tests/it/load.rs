//! load.rs: the run-request storm (issue 17) against the real `pipelines serve` binary, a child
//! process so it can be SIGKILLed: 400 run requests from 32 clients, one in ten repeating an
//! earlier idempotency key; `/healthz` polled every 50 ms; a SIGKILL once half the requests are
//! answered (runs queued), then a restart on the same state dir and port while the clients retry
//! with the same keys. Every key ends as exactly one run, succeeded or "interrupted by restart";
//! every answer for a key names that run; `/healthz` answers within 1 s while the server is up.
//!
//! A hang fails the test with a message saying where, never hangs it: each request has a timeout,
//! `/healthz` silent for `HANG_AFTER` aborts the storm, and the whole test has a deadline.
//! Ignored by plain `cargo test`; `scripts/load.sh` runs it.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Dirs, TOKEN};

/// One quick real process per run, four at a time: hundreds of requests build a queue.
const STORM: &str = r#"
name = "storm"
concurrency = 4
[[stages]]
name = "work"
run = ["sleep", "0.1"]
"#;
const CONCURRENCY: usize = 4;

const REQUESTS: usize = 400;
const CLIENTS: usize = 32;
/// Every tenth request repeats an earlier key (with the same body).
const REPEAT_EVERY: usize = 10;
/// The server is SIGKILLed once this many requests have been answered.
const KILL_AFTER: usize = REQUESTS / 2;
/// How long the server stays down before the restart (clients see refused connections).
const DOWN_FOR: Duration = Duration::from_millis(300);

const HEALTH_EVERY: Duration = Duration::from_millis(50);
/// Every `/healthz` must answer within this while the server is up.
const HEALTH_BUDGET: Duration = Duration::from_secs(1);
/// `/healthz` silent this long while the server is up: the runner hangs; abort the storm.
const HANG_AFTER: Duration = Duration::from_secs(10);
/// A run request (or a run listing) without an answer after this long is a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients retry failed connections (the kill window) for at most this long.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// After the last request: how long the queue may take to drain.
const DRAIN_WITHIN: Duration = Duration::from_secs(120);
/// The whole test.
const DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "load test: scripts/load.sh"]
async fn a_run_request_storm_with_a_kill_mid_queue_ends_with_one_run_per_key() {
    match tokio::time::timeout(DEADLINE, storm()).await {
        Ok(()) => {}
        Err(_) => panic!(
            "the storm did not end within {DEADLINE:?}; the runner hangs (issue 17: sled transaction vs flush)"
        ),
    }
}

async fn storm() {
    let dirs = Dirs::new(&[("storm", STORM)]);
    let mut server = spawn_serve(&dirs, "127.0.0.1:0").await;
    let listen = server.url.trim_start_matches("http://").to_owned();
    let storm = Arc::new(Storm::new(server.url.clone()));
    storm.up(true);

    let health = tokio::spawn(poll_health(storm.clone()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(storm.clone())))
        .collect();

    // Mid-queue: SIGKILL, then the same state dir and port again.
    while storm.answered.load(Ordering::SeqCst) < KILL_AFTER {
        storm.check();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let queued = storm
        .runs(Some("queued"))
        .await
        .unwrap_or_else(|err| storm.hang(&format!("listing queued runs before the kill: {err}")))
        .len();
    storm.up(false);
    server.process.start_kill().unwrap();
    server.process.wait().await.unwrap();
    let killed_at = storm.answered.load(Ordering::SeqCst);
    println!("storm: SIGKILL after {killed_at} answers with {queued} run(s) queued");
    assert!(
        queued > 0,
        "no run was queued at the kill; the storm is too small for this machine"
    );
    tokio::time::sleep(DOWN_FOR).await;
    let restarted = Instant::now();
    let server = spawn_serve(&dirs, &listen).await;
    println!("storm: restarted in {:?}", restarted.elapsed());
    storm.up(true);

    for client in clients {
        client.await.unwrap();
    }
    storm.check();
    let runs = drain(&storm).await;
    storm.stop.cancel();
    health.await.unwrap();
    storm.check();
    assert_one_run_per_key(&storm, &runs);

    let requests = storm
        .answers
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.latency)
        .collect();
    println!("storm: run requests {}", Latencies::of(requests));
    let health = storm.health.lock().unwrap().clone();
    println!("storm: /healthz {}", Latencies::of(health.clone()));
    let slow: Vec<_> = health.iter().filter(|l| **l > HEALTH_BUDGET).collect();
    assert!(
        slow.is_empty(),
        "/healthz took longer than {HEALTH_BUDGET:?} {} time(s): {slow:?}",
        slow.len()
    );
    assert!(
        health.len() > 100,
        "too few /healthz samples: {}",
        health.len()
    );
    stop(server).await;
}

/// What the clients, the health poller and the test share.
struct Storm {
    url: String,
    http: reqwest::Client,
    /// The key number of each request, in order.
    plan: Vec<usize>,
    next: AtomicUsize,
    answered: AtomicUsize,
    answers: Mutex<Vec<Answer>>,
    /// Latencies of `/healthz` while the server was up (timeouts count as the budget).
    health: Mutex<Vec<Duration>>,
    /// `Some(generation)` while a server is up; `None` from just before the kill to the restart.
    server: Mutex<Option<usize>>,
    servers_started: AtomicUsize,
    /// Set with the first failure; cancels everyone.
    failure: Mutex<Option<String>>,
    abort: CancellationToken,
    /// Stops the health poller at the end.
    stop: CancellationToken,
}

#[derive(Debug)]
struct Answer {
    key: usize,
    status: StatusCode,
    run: Value,
    latency: Duration,
}

impl Storm {
    fn new(url: String) -> Self {
        Self {
            url,
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap(),
            plan: plan(),
            next: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            answers: Mutex::new(Vec::new()),
            health: Mutex::new(Vec::new()),
            server: Mutex::new(None),
            servers_started: AtomicUsize::new(0),
            failure: Mutex::new(None),
            abort: CancellationToken::new(),
            stop: CancellationToken::new(),
        }
    }

    /// A server is up (a new generation) or down.
    fn up(&self, up: bool) {
        let generation = self
            .servers_started
            .fetch_add(usize::from(up), Ordering::SeqCst);
        *self.server.lock().unwrap() = up.then_some(generation);
    }

    fn generation(&self) -> Option<usize> {
        *self.server.lock().unwrap()
    }

    /// Records the first failure and stops the storm.
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

    /// Fails the test: the runner stopped answering while doing `what`.
    fn hang(&self, what: &str) -> ! {
        self.check();
        panic!(
            "{what}; the runner hangs after {} answered run requests (issue 17: sled transaction vs flush)",
            self.answered.load(Ordering::SeqCst)
        );
    }

    /// Every run of the storm chain (with `status` if given), following the pages.
    async fn runs(&self, status: Option<&str>) -> Result<Vec<Value>, reqwest::Error> {
        let mut runs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("chain", "storm".to_owned()), ("limit", "500".to_owned())];
            if let Some(status) = status {
                query.push(("status", status.to_owned()));
            }
            if let Some(cursor) = cursor {
                query.push(("cursor", cursor));
            }
            let page: Value = self
                .http
                .get(format!("{}/api/v1/runs", self.url))
                .query(&query)
                .bearer_auth(TOKEN)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            runs.extend(page["runs"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(runs),
            }
        }
    }
}

/// The key number of each request: unique keys in order, and every `REPEAT_EVERY`th request
/// repeats an earlier key, alternately a recent one (likely still in flight) and an older one.
fn plan() -> Vec<usize> {
    let mut plan = Vec::with_capacity(REQUESTS);
    let mut unique = 0;
    for i in 0..REQUESTS {
        if i % REPEAT_EVERY == REPEAT_EVERY - 1 {
            let repeat = i / REPEAT_EVERY;
            let key = if repeat % 2 == 0 {
                unique - 1 - repeat % 5
            } else {
                (repeat * 37) % unique
            };
            plan.push(key);
        } else {
            plan.push(unique);
            unique += 1;
        }
    }
    plan
}

fn body(key: usize) -> Value {
    json!({
        "config": {"parameters": {"request": key, "links": [format!("https://storm.example/{key}")]}},
        "idempotency_key": key_name(key),
    })
}

fn key_name(key: usize) -> String {
    format!("storm-{key:03}")
}

/// One client: takes the next request until none are left.
async fn client(storm: Arc<Storm>) {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    loop {
        let i = storm.next.fetch_add(1, Ordering::SeqCst);
        if i >= storm.plan.len() {
            return;
        }
        let Some(answer) = submit(&storm, &http, storm.plan[i]).await else {
            return;
        };
        storm.answers.lock().unwrap().push(answer);
        storm.answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sends one run request, retrying failed connections (the kill window) with the same key;
/// `None` once the storm is aborted.
async fn submit(storm: &Storm, http: &reqwest::Client, key: usize) -> Option<Answer> {
    let url = format!("{}/api/v1/chains/storm/runs", storm.url);
    let body = body(key);
    let first = Instant::now();
    loop {
        let started = Instant::now();
        let attempt = async {
            let response = http
                .post(&url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        };
        let result = tokio::select! {
            _ = storm.abort.cancelled() => return None,
            result = attempt => result,
        };
        match result {
            Ok((status, text)) => {
                let run = serde_json::from_str(&text).unwrap_or(Value::String(text));
                return Some(Answer {
                    key,
                    status,
                    run,
                    latency: started.elapsed(),
                });
            }
            Err(err) if err.is_timeout() => {
                storm.fail(format!(
                    "the run request for `{}` got no answer within {REQUEST_TIMEOUT:?}; the runner hangs after {} answered run requests (issue 17: sled transaction vs flush)",
                    key_name(key),
                    storm.answered.load(Ordering::SeqCst)
                ));
                return None;
            }
            Err(err) if first.elapsed() > RETRY_FOR => {
                storm.fail(format!(
                    "the run request for `{}` still fails after {RETRY_FOR:?} of retries: {err:#}",
                    key_name(key)
                ));
                return None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Asks `/healthz` every `HEALTH_EVERY` while a server is up and records how long it took; a
/// sample that spans the kill is dropped. Aborts the storm when it is silent for `HANG_AFTER`.
async fn poll_health(storm: Arc<Storm>) {
    let http = reqwest::Client::builder()
        .timeout(HEALTH_BUDGET)
        .build()
        .unwrap();
    let url = format!("{}/healthz", storm.url);
    let mut last_answer = (storm.generation(), Instant::now());
    let mut ticks = tokio::time::interval(HEALTH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = storm.stop.cancelled() => return,
            _ = storm.abort.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let generation = storm.generation();
        if generation.is_none() {
            continue;
        }
        if last_answer.0 != generation {
            last_answer = (generation, Instant::now());
        }
        let started = Instant::now();
        let answered = match http.get(&url).send().await {
            Ok(response) => response.status().is_success(),
            Err(_) => false,
        };
        let took = started.elapsed();
        if storm.generation() != generation {
            continue;
        }
        storm.health.lock().unwrap().push(if answered {
            took
        } else {
            took.max(HEALTH_BUDGET)
        });
        if answered {
            last_answer.1 = Instant::now();
        } else if last_answer.1.elapsed() > HANG_AFTER {
            storm.fail(format!(
                "/healthz has not answered for {HANG_AFTER:?}; the runner hangs after {} answered run requests (issue 17: sled transaction vs flush)",
                storm.answered.load(Ordering::SeqCst)
            ));
            return;
        }
    }
}

/// Waits until every unique key has a run and none is queued or running; returns the runs.
async fn drain(storm: &Storm) -> Vec<Value> {
    let unique = storm.plan.iter().max().unwrap() + 1;
    let started = Instant::now();
    loop {
        storm.check();
        let runs = storm
            .runs(None)
            .await
            .unwrap_or_else(|err| storm.hang(&format!("listing runs while they drain: {err}")));
        let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
        for run in &runs {
            *by_status
                .entry(run["status"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        let busy = by_status.get("queued").unwrap_or(&0) + by_status.get("running").unwrap_or(&0);
        if runs.len() >= unique && busy == 0 {
            println!(
                "storm: drained in {:?} after the last request: {by_status:?}",
                started.elapsed()
            );
            return runs;
        }
        assert!(
            started.elapsed() < DRAIN_WITHIN,
            "the runs did not drain within {DRAIN_WITHIN:?}: {} run(s) for {unique} keys, {by_status:?}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every key is exactly one run, succeeded or interrupted by the restart, and every answer for
/// a key named that run.
fn assert_one_run_per_key(storm: &Storm, runs: &[Value]) {
    let mut by_key: HashMap<String, Vec<&Value>> = HashMap::new();
    for run in runs {
        let key = run["idempotency_key"]
            .as_str()
            .unwrap_or_else(|| panic!("a run without a key: {run:#}"));
        by_key.entry(key.to_owned()).or_default().push(run);
    }
    let unique = storm.plan.iter().max().unwrap() + 1;
    let twice: Vec<_> = by_key.iter().filter(|(_, runs)| runs.len() > 1).collect();
    assert!(twice.is_empty(), "keys with more than one run: {twice:#?}");
    assert_eq!(by_key.len(), unique, "every key has a run");
    let mut interrupted = 0;
    for (key, runs) in &by_key {
        let run = runs[0];
        match run["status"].as_str() {
            Some("succeeded") => {}
            Some("failed")
                if run["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("interrupted by restart")) =>
            {
                interrupted += 1;
            }
            _ => panic!("run for `{key}` neither succeeded nor was interrupted: {run:#}"),
        }
    }
    println!(
        "storm: {unique} keys, {} succeeded, {interrupted} interrupted by restart",
        unique - interrupted
    );
    assert!(
        interrupted <= CONCURRENCY,
        "{interrupted} runs interrupted, but only {CONCURRENCY} can be in a stage at the kill"
    );

    let answers = storm.answers.lock().unwrap();
    assert_eq!(answers.len(), REQUESTS, "every request was answered");
    let mut created: HashMap<usize, usize> = HashMap::new();
    for answer in answers.iter() {
        assert!(
            matches!(answer.status, StatusCode::CREATED | StatusCode::OK),
            "`{}` answered {}: {}",
            key_name(answer.key),
            answer.status,
            answer.run
        );
        if answer.status == StatusCode::CREATED {
            *created.entry(answer.key).or_default() += 1;
        }
        let run = by_key[&key_name(answer.key)][0];
        assert_eq!(
            answer.run["id"],
            run["id"],
            "an answer for `{}` names another run than the key's",
            key_name(answer.key)
        );
    }
    let created_twice: Vec<_> = created.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        created_twice.is_empty(),
        "keys answered 201 Created more than once: {created_twice:?}"
    );
}

/// A running `pipelines serve`.
struct Serve {
    process: tokio::process::Child,
    url: String,
}

/// Starts `pipelines serve` on `listen` as a child process and waits for its address.
async fn spawn_serve(dirs: &Dirs, listen: &str) -> Serve {
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipelines"))
        .args([
            "serve",
            "--listen",
            listen,
            "--kill-grace",
            "300ms",
            "--chains",
        ])
        .arg(&dirs.chains)
        .arg("--state-dir")
        .arg(&dirs.state)
        .env("PIPELINES_TOKEN", TOKEN)
        .env("PIPELINES_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("pipelines runner listening on ") {
                return url.to_owned();
            }
        }
        panic!("`pipelines serve --listen {listen}` exited before listening");
    })
    .await
    .expect("`pipelines serve` prints its address within 30 s");
    // Keep draining stdout so the runner never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Serve { process, url }
}

/// SIGTERM, then wait for a clean exit.
async fn stop(mut server: Serve) {
    let pid = server.process.id().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), server.process.wait())
        .await
        .expect("`pipelines serve` stops within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "`pipelines serve` exited with {status}");
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
