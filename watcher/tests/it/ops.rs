//! ops.rs: what an operator's tools see of the daemon: `/metrics` (Prometheus text, `watcher_`
//! names, no source URLs), `/readyz`, `/healthz` failing on the age of the last successful poll
//! and of the oldest pending delivery and recovering, and systemd's notify protocol on a real
//! `NOTIFY_SOCKET`: READY, watchdog pings that stop when the scheduler stalls, STOPPING.

use std::path::Path;
use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// GETs `path` from the daemon at `addr`: status and body.
async fn get(addr: &str, path: &str) -> (u16, String, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, r.text().await.unwrap())
}

/// The value of the sample `name` (with its labels, as written) in a Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Waits (up to 30 s) until `GET path` answers `status` with a body containing `want`.
async fn wait_for_answer(addr: &str, path: &str, status: u16, want: &str) -> String {
    for _ in 0..600 {
        let (code, _, body) = get(addr, path).await;
        if code == status && body.contains(want) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, _, body) = get(addr, path).await;
    panic!("{path} never answered {status} with `{want}`; last: {code} {body}");
}

/// Starts the daemon in-process on a port-0 listener: its address and the token that stops it.
async fn start_daemon(cfg: &Path) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cancel = CancellationToken::new();
    let w = open_watcher(cfg);
    let c = cancel.clone();
    let task = tokio::spawn(async move { w.run(listener, c).await.unwrap() });
    (addr, cancel, task)
}

#[tokio::test]
async fn metrics_count_polls_without_naming_sources_and_readyz_follows_the_daemon() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    t.baseline_then_publish("https://rubenerd.com/metrics/", "Metrics")
        .await;
    edit_config(&t.cfg, "interval = \"30m\"", "interval = \"1s\"");
    let (addr, cancel, task) = start_daemon(&t.cfg).await;
    wait_for_answer(&addr, "/readyz", 200, "ready").await;
    t.rx.wait_for(1).await;

    let mut text = String::new();
    for _ in 0..600 {
        text = get(&addr, "/metrics").await.2;
        if sample(
            &text,
            "watcher_delivery_attempts_total{outcome=\"started\"}",
        ) >= Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, content_type, _) = get(&addr, "/metrics").await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(
        sample(&text, "watcher_polls_total{result=\"new\"}") >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "watcher_new_items_total") >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "watcher_poll_duration_seconds_count") >= Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "watcher_deliveries{state=\"done\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "watcher_sources{state=\"failing\"}"),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(&text, "watcher_store_size_bytes") > Some(0.0),
        "{text}"
    );
    assert!(
        sample(&text, "watcher_last_successful_poll_age_seconds") < Some(60.0),
        "{text}"
    );
    assert!(text.contains("watcher_build_info{version=\""), "{text}");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("watcher_"), "{line}");
        assert!(
            !line.contains("127.0.0.1") && !line.contains("Ruben"),
            "{line}"
        );
    }

    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn healthz_fails_when_no_poll_succeeds_for_health_poll_age_and_recovers() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    pass(&t.cfg).await;
    edit_config(
        &t.cfg,
        "interval = \"30m\"",
        "interval = \"1s\"\nmax_interval = \"1s\"\nhealth_poll_age = \"2s\"",
    );
    let (addr, cancel, task) = start_daemon(&t.cfg).await;
    wait_for_answer(&addr, "/healthz", 200, "ok").await;

    t.feeds.set(FEED_PATH, Route::Status(500));
    let body = wait_for_answer(&addr, "/healthz", 503, "no poll succeeded for").await;
    assert!(body.contains("(health_poll_age 2s)"), "{body}");
    assert_eq!(body.trim_end().lines().count(), 1, "{body}");

    t.feeds.set_feed(FEED_PATH, &t.original);
    wait_for_answer(&addr, "/healthz", 200, "ok").await;
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn healthz_fails_while_a_delivery_stays_pending_past_health_delivery_age() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    t.baseline_then_publish("https://rubenerd.com/pending/", "Pending")
        .await;
    edit_config(
        &t.cfg,
        "interval = \"30m\"",
        "interval = \"1s\"\nhealth_delivery_age = \"1s\"",
    );
    // The receiver takes the request and never answers: the delivery stays pending.
    t.rx.set_mode(Mode::Hang);
    let (addr, cancel, task) = start_daemon(&t.cfg).await;
    let body = wait_for_answer(&addr, "/healthz", 503, "the oldest pending delivery is").await;
    assert!(body.contains("(health_delivery_age 1s)"), "{body}");
    // A clean stop would wait for the hung delivery: stop the daemon where it is.
    cancel.cancel();
    task.abort();
}

/// The notify messages received on `socket` within `wait`, one string per datagram.
async fn receive(socket: &UnixDatagram, wait: Duration) -> Vec<String> {
    let until = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, socket.recv(&mut buf)).await {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

/// Reads `socket` until a message containing `want` arrives (up to 30 s); returns what came.
async fn receive_until(socket: &UnixDatagram, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..300 {
        let got = receive(socket, Duration::from_millis(100)).await;
        let found = got.iter().any(|m| m.contains(want));
        seen.extend(got);
        if found {
            return seen;
        }
    }
    panic!("no `{want}` on the notify socket; got {seen:?}");
}

#[tokio::test]
async fn systemd_gets_ready_watchdog_pings_while_polls_progress_and_stopping() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    pass(&t.cfg).await;
    // Requests may hang for an hour, so a hung feed stalls the scheduler's polls.
    edit_config(
        &t.cfg,
        "interval = \"30m\"",
        "interval = \"1s\"\nmax_interval = \"1s\"",
    );
    edit_config(
        &t.cfg,
        "timeout = \"5s\"",
        "timeout = \"1h\"\npoll_deadline = \"1h\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let listen = load(&t.cfg).watcher.listen.to_string();
    let mut daemon = watcher_cmd(&t.cfg)
        .arg("run")
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1500000")
        .spawn()
        .unwrap();

    let first = receive_until(&socket, "READY=1").await;
    assert!(
        first
            .iter()
            .any(|m| m.contains("STATUS=watching 1 sources")),
        "{first:?}"
    );
    wait_healthy(&listen).await;
    // A poll ends every second (the feed's TTL capped by max_interval): the pings go on.
    let mut pings = 0;
    while pings < 4 {
        pings += receive_until(&socket, "WATCHDOG=1")
            .await
            .iter()
            .filter(|m| m.contains("WATCHDOG=1"))
            .count();
    }

    // The feed stops answering: the next poll never ends, and the pings stop.
    t.feeds.set_delay(Duration::from_secs(3600));
    let mut silent = false;
    for _ in 0..10 {
        let got = receive(&socket, Duration::from_secs(3)).await;
        if !got.iter().any(|m| m.contains("WATCHDOG=1")) {
            silent = true;
            break;
        }
    }
    assert!(
        silent,
        "the watchdog pings never stopped while the scheduler stalled"
    );
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon is still running"
    );

    sigterm(&daemon);
    receive_until(&socket, "STOPPING=1").await;
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .expect("the daemon stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_span_fields_and_text_stays_the_default() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    t.feeds.set(FEED_PATH, Route::Status(500));
    let feed_url = t.feeds.url(FEED_PATH);
    let run = |format: Option<&'static str>| {
        let mut cmd = watcher_cmd(&t.cfg);
        cmd.env("RUST_LOG", "watcher=info").args(["once", "--all"]);
        if let Some(format) = format {
            cmd.env("WATCHER_LOG_FORMAT", format);
        }
        cmd.output()
    };

    let out = run(Some("json")).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.starts_with("error: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let failed = logs
        .iter()
        .find(|l| l["fields"]["message"] == "poll failed")
        .unwrap_or_else(|| panic!("no `poll failed` event in {stderr}"));
    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["span"]["source"], feed_url.as_str(), "{failed}");
    assert_eq!(failed["spans"][0]["author"], "Ruben", "{failed}");

    let out = run(None).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("poll failed"))
        .unwrap_or_else(|| panic!("no `poll failed` line in {stderr}"));
    assert!(!line.starts_with('{'), "{line}");
    assert!(line.contains(&format!("source={feed_url}")), "{line}");
}

/// Runs `promtool check metrics` on `text`; panics with its report unless it is clean.
async fn promtool_check(text: &str) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus; scripts/ops/tools.sh prometheus installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real Prometheus (Debian's, started here on loopback) scrapes the daemon, whose embedded
/// runner ran the demo chain, and its query API returns the poll counter; `promtool check
/// metrics` finds nothing to say about the text. Run by `scripts/ops/check.sh` (`.ci/run`).
#[tokio::test]
#[ignore = "needs prometheus and promtool: scripts/ops/check.sh"]
async fn real_prometheus_scrapes_the_poll_counter() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    let chains = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/chains");
    // The demo chain that fetches from this machine only: the test stays offline.
    let chains = watcher::demo::offline_chains(&chains, &t.dir.path().join("chains")).unwrap();
    t.rewrite_config(
        "http://127.0.0.1:9/unused",
        &format!("chains_dir = {:?}", chains.display().to_string()),
    );
    edit_config(&t.cfg, "kind = \"webhook\"", "kind = \"embedded\"");
    edit_config(
        &t.cfg,
        "pipeline = \"digital_data_etl\"",
        "pipeline = \"demo\"",
    );
    edit_config(&t.cfg, "url = \"http://127.0.0.1:9/unused\"\n", "");
    edit_config(
        &t.cfg,
        "interval = \"30m\"",
        "interval = \"1s\"\nmax_interval = \"1s\"",
    );
    let (addr, cancel, task) = start_daemon(&t.cfg).await;
    // The baseline, then one new article: the embedded runner runs the demo chain for it.
    let mut text = String::new();
    for _ in 0..600 {
        text = get(&addr, "/metrics").await.2;
        if sample(&text, "watcher_polls_total{result=\"baseline\"}") == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample(&text, "watcher_polls_total{result=\"baseline\"}"),
        Some(1.0),
        "{text}"
    );
    t.publish("https://rubenerd.com/prometheus/", "Prometheus");

    // The demo run ends, so the text has the runner's series too.
    for _ in 0..1200 {
        text = get(&addr, "/metrics").await.2;
        if sample(&text, "watcher_runs{state=\"succeeded\"}") == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample(&text, "watcher_runs{state=\"succeeded\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "pipelines_runs_total{chain=\"demo\",status=\"succeeded\"}"
        ),
        Some(1.0),
        "{text}"
    );
    promtool_check(&text).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: watcher\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (Debian's; scripts/ops/tools.sh prometheus installs it)");
    let query = format!("http://{web}/api/v1/query?query=sum(watcher_polls_total)");
    let mut polls = 0.0;
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(&query).await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && let Some(value) = v["data"]["result"][0]["value"][1].as_str()
        {
            polls = value.parse().unwrap();
            if polls >= 2.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        polls >= 2.0,
        "Prometheus never returned the poll counter ({polls})"
    );
    prometheus.kill().await.unwrap();
    cancel.cancel();
    task.await.unwrap();
}
