//! bench.rs: throughput and memory of whole passes over many sources on loopback, and the
//! daemon's CPU time per poll at 1,000 and 10,000 sources. Ignored by default; run in release and
//! read the numbers:
//!
//!   cargo test --release -p watcher --test it bench -- --ignored --nocapture
//!   cargo test --release -p watcher --test it bench_daemon_per_poll_cpu -- --ignored --nocapture

use std::time::{Duration, Instant};

use crate::helpers::*;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn bench_passes_over_a_thousand_sources() {
    const N: usize = 1000;
    let feeds = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let body = fixture("medium-lizmarley.rss.xml");
    let paths: Vec<String> = (0..N).map(|i| format!("/b{i}")).collect();
    for p in &paths {
        feeds.set_feed(p, &body);
    }
    let authors: Vec<AuthorFeeds> = (0..N)
        .map(|i| AuthorFeeds {
            name: Box::leak(format!("Author {i}").into_boxed_str()),
            feeds: vec![feeds.url(&paths[i])],
        })
        .collect();
    let cfg = write_config(dir.path(), &authors, &rx.url(), "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[fetch]", "[fetch]\n")
        .replace(
            "min_interval = \"0s\"",
            "min_interval = \"0s\"\nper_host = 32\nconcurrency = 32",
        );
    std::fs::write(&cfg, text).unwrap();

    let timed = |label: &str, t: Instant, polls: usize| {
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label:<34} {secs:>6.2} s  {:>7.0} sources/s  peak RSS {:>6.1} MiB",
            polls as f64 / secs,
            peak_rss_mib()
        );
    };
    let t = Instant::now();
    let r = pass(&cfg).await;
    timed("baseline (200, parse, commit)", t, r.polls.len());
    let t = Instant::now();
    let r = pass(&cfg).await;
    timed("unchanged (304)", t, r.polls.len());
    for p in &paths {
        feeds.set_feed(
            p,
            &publish_rss(&body, &format!("https://x.example{p}/new"), "New"),
        );
    }
    let t = Instant::now();
    let r = pass(&cfg).await;
    timed("one new article each (+ delivery)", t, r.polls.len());
    assert_eq!(r.deliveries.len(), N);
    assert_eq!(rx.received().len(), N);
}

/// CPU time this process has used (user + system), from `/proc/self/stat` (10 ms ticks).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("linux /proc");
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after = &stat[stat.rfind(')').expect("comm field") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, so 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // CLK_TCK is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// What one daemon measurement came to.
struct DaemonCpu {
    polls: usize,
    window: Duration,
    cpu: Duration,
}

impl DaemonCpu {
    fn ms_per_poll(&self) -> f64 {
        self.cpu.as_secs_f64() * 1000.0 / self.polls as f64
    }
}

/// Polls every source should make per second, whatever their number: each source's interval is
/// `n / POLLS_PER_SEC`, so the per-second work beside polling (delivery pass, sled flush) weighs
/// the same per poll at every `n`.
const POLLS_PER_SEC: usize = 500;

/// Runs the daemon over `n` sources that all answer 304 and measures the process's CPU time per
/// poll over `window`, after the baselines (one `once` pass) and one interval of warm-up. The feed
/// server runs in this process: its CPU (constant per request) is counted too.
async fn daemon_cpu_per_poll(n: usize, window: Duration) -> DaemonCpu {
    let feeds = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let body = fixture("medium-lizmarley.rss.xml");
    let paths: Vec<String> = (0..n).map(|i| format!("/d{i}")).collect();
    for p in &paths {
        feeds.set_feed(p, &body);
    }
    let authors: Vec<AuthorFeeds> = (0..n)
        .map(|i| AuthorFeeds {
            name: Box::leak(format!("Author {i}").into_boxed_str()),
            feeds: vec![feeds.url(&paths[i])],
        })
        .collect();
    let interval = Duration::from_secs_f64(n as f64 / POLLS_PER_SEC as f64);
    let cfg = write_config(dir.path(), &authors, &rx.url(), "");
    edit_config(
        &cfg,
        "interval = \"30m\"",
        &format!(
            "interval = \"{}ms\"\nper_host = 1000\nconcurrency = 1000",
            interval.as_millis()
        ),
    );
    let t = Instant::now();
    let baseline = pass(&cfg).await;
    assert_eq!(baseline.polls.len(), n);
    println!(
        "{n:>6} sources: baselines in {:.1} s; daemon polls each every {interval:?}",
        t.elapsed().as_secs_f64()
    );

    let w = watcher::watch::Watcher::open(load(&cfg)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(w.run(listener, cancel.clone()));
    tokio::time::sleep(interval.max(Duration::from_secs(2))).await;

    let (requests, cpu, t) = (feeds.total_requests(), process_cpu(), Instant::now());
    tokio::time::sleep(window).await;
    let measured = DaemonCpu {
        polls: feeds.total_requests() - requests,
        window: t.elapsed(),
        cpu: process_cpu() - cpu,
    };
    cancel.cancel();
    daemon.await.unwrap().unwrap();
    let last = feeds.requests(&paths[0]);
    assert!(
        last.last().unwrap().contains_key("if-none-match"),
        "the daemon's polls are conditional GETs (answered 304)"
    );
    measured
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn bench_daemon_per_poll_cpu() {
    const WINDOW: Duration = Duration::from_secs(20);
    let mut results = Vec::new();
    for n in [1_000, 10_000] {
        let m = daemon_cpu_per_poll(n, WINDOW).await;
        println!(
            "{n:>6} sources: {:>6} polls (304) in {:.1} s ({:>4.0}/s of {POLLS_PER_SEC}/s), CPU {:>6} ms, {:.3} ms CPU per poll",
            m.polls,
            m.window.as_secs_f64(),
            m.polls as f64 / m.window.as_secs_f64(),
            m.cpu.as_millis(),
            m.ms_per_poll()
        );
        results.push(m.ms_per_poll());
    }
    println!(
        "per-poll CPU at 10,000 sources / at 1,000: {:.2}",
        results[1] / results[0]
    );
}
