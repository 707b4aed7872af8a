//! bench.rs: throughput and memory of whole passes over many sources on loopback. Ignored by
//! default; run in release and read the numbers:
//!
//!   cargo test --release -p watcher --test it bench -- --ignored --nocapture

use std::time::Instant;

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
