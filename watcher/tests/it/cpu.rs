//! cpu.rs: the bounds of one poll: its overall deadline (`[fetch] poll_deadline`), the work
//! budget of its parsing (`[fetch] parse_budget`), parsing off the async workers, and polls in
//! flight stopped when the daemon shuts down.

use std::time::Duration;

use tokio::time::Instant;
use watcher::poll::PollOutcome;

use crate::helpers::*;

const FEED: &str = "rubenerd-hugo.rss.xml";

/// Adds `lines` to the `[fetch]` table of the config at `cfg`.
fn fetch_settings(cfg: &std::path::Path, lines: &str) {
    edit_config(
        cfg,
        "max_body_bytes = 1048576",
        &format!("max_body_bytes = 1048576\n{lines}"),
    );
}

/// A config with one author whose one source is a page read through `.p`, served as `body`.
fn page_source(scene: &Scene, body: String) -> std::path::PathBuf {
    scene.feeds.set(
        "/",
        Route::Feed {
            body,
            content_type: "text/html; charset=utf-8".into(),
        },
    );
    let path = scene.config(&[]);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[authors]]\nname = \"Deep\"\nsites = [{{ url = \"{}\", selector = \".p\" }}]\n",
        scene.feeds.url("/")
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// A page nested `depth` elements deep with one article link at the bottom: html5ever's tree
/// builder spends work quadratic in the depth on it.
fn deep_page(depth: usize) -> String {
    format!(
        "<!DOCTYPE html><body>{}<a class=\"p\" href=\"/post\">Post</a>",
        "<div>".repeat(depth)
    )
}

#[tokio::test]
async fn a_poll_past_its_deadline_fails_with_one_line_and_backs_off() {
    let t = spawn_one_author("Ruben", FEED).await;
    edit_config(&t.cfg, "timeout = \"5s\"", "timeout = \"60s\"");
    fetch_settings(&t.cfg, "poll_deadline = \"1s\"");
    // The server holds its answer far longer than the deadline (and the request timeout).
    t.feeds.set_delay(Duration::from_secs(30));
    let started = Instant::now();
    let report = pass(&t.cfg).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let PollOutcome::Failed { error } = &report.polls[0].outcome else {
        panic!("{:?}", report.polls[0].outcome)
    };
    insta::assert_snapshot!(error, @"the poll did not finish within its 1s deadline (`[fetch] poll_deadline`); the source is slow or endless: it is polled again later, with backoff");
    // Recorded as a failure of the source, which backs off.
    let status = status(&t.cfg).await;
    let source = &status.sources[0];
    assert_eq!(source.consecutive_failures, 1);
    assert_eq!(
        source.last_result.as_deref(),
        Some(format!("error: {error}").as_str())
    );
    assert!(source.next_due.is_some_and(|due| due > chrono::Utc::now()));
}

#[tokio::test]
async fn a_feed_over_the_parse_budget_fails_the_poll_with_one_line() {
    let t = spawn_one_author("Ruben", FEED).await;
    fetch_settings(&t.cfg, "parse_budget = 100000");
    // A feed wrapped in a page whose body carries large attributes, and many `<feed>`
    // elements outside the Atom namespace before it.
    let hostile = format!(
        "<html><body data-x=\"{}\">{}<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry/></feed></body></html>",
        "x".repeat(100_000),
        "<feed/>".repeat(50_000)
    );
    t.feeds.set_feed(FEED_PATH, &hostile);
    let report = pass(&t.cfg).await;
    let PollOutcome::Failed { error } = &report.polls[0].outcome else {
        panic!("{:?}", report.polls[0].outcome)
    };
    insta::assert_snapshot!(error, @"parsing stopped after 100000 work units (the per-poll `parse_budget`): the response is pathological (deeply nested, huge attributes or millions of elements); raise `[fetch] parse_budget` only if the source is genuine");
    // The same feed, served plain, is read within the same budget.
    t.feeds.set_feed(FEED_PATH, &t.original);
    let report = pass(&t.cfg).await;
    assert_eq!(
        report.polls[0].outcome,
        PollOutcome::Baseline { recorded: 10 }
    );
}

#[tokio::test]
async fn a_zero_deadline_or_budget_is_refused_naming_the_key() {
    let t = spawn_one_author("Ruben", FEED).await;
    fetch_settings(&t.cfg, "poll_deadline = \"0s\"\nparse_budget = 0");
    let err = watcher::config::Config::load(&t.cfg)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fetch.poll_deadline: expected a duration above zero")
            && err.contains("fetch.parse_budget: expected at least 1"),
        "{err}"
    );
}

/// The test runtime has one thread: a parse on it would stop this ticker for as long as it runs.
#[tokio::test]
async fn parsing_runs_off_the_async_workers() {
    let scene = spawn_scene().await;
    let cfg = page_source(&scene, deep_page(6_000));
    let w = open_watcher(&cfg);
    let stop = tokio_util::sync::CancellationToken::new();
    let ticker = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (mut last, mut longest) = (Instant::now(), Duration::ZERO);
            while !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                longest = longest.max(last.elapsed());
                last = Instant::now();
            }
            longest
        }
    });
    let started = Instant::now();
    let report = w.once(ALL, |_, _, _| {}).await.unwrap();
    let took = started.elapsed();
    stop.cancel();
    let longest_gap = ticker.await.unwrap();
    assert!(
        matches!(
            report.polls[0].outcome,
            PollOutcome::Baseline { recorded: 1 }
        ),
        "{:?}",
        report.polls[0].outcome
    );
    assert!(
        took > Duration::from_millis(300),
        "the parse is too quick to tell: {took:?}"
    );
    assert!(
        longest_gap < took / 3,
        "the runtime stalled {longest_gap:?} during a {took:?} poll"
    );
}

/// `watcher run` as a child, waiting until its endpoint answers.
async fn spawn_daemon(cfg: &std::path::Path) -> tokio::process::Child {
    let listen = load(cfg).watcher.listen.to_string();
    let daemon = watcher_cmd(cfg).arg("run").spawn().unwrap();
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("http://{listen}/healthz")).send().await
            && r.status().is_success()
        {
            return daemon;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("daemon never became healthy at {listen}");
}

/// SIGTERM to `daemon`; how long it took to exit, and whether it exited 0.
async fn terminate(daemon: &mut tokio::process::Child) -> (Duration, bool) {
    let pid = nix::unistd::Pid::from_raw(daemon.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(60), daemon.wait())
        .await
        .expect("the daemon exits after SIGTERM")
        .unwrap();
    (started.elapsed(), status.success())
}

#[tokio::test]
async fn sigterm_stops_a_poll_waiting_on_a_slow_server_and_records_nothing() {
    let t = spawn_one_author("Ruben", FEED).await;
    t.baseline_then_publish("https://rubenerd.com/slow/", "Slow")
        .await;
    edit_config(&t.cfg, "interval = \"30m\"", "interval = \"1s\"");
    // Neither the request timeout nor the deadline (5 minutes) would end this poll soon.
    edit_config(&t.cfg, "timeout = \"5s\"", "timeout = \"300s\"");
    t.feeds.set_delay(Duration::from_secs(600));
    let before = status(&t.cfg).await.sources[0].clone();

    let mut daemon = spawn_daemon(&t.cfg).await;
    let started = Instant::now();
    while t.feeds.requests(FEED_PATH).len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (took, ok) = terminate(&mut daemon).await;
    assert!(ok, "exit status");
    eprintln!("stopped {took:?} after SIGTERM");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");

    // Nothing partial: the poll in flight left no trace, and the store opens (flushed, unlocked).
    let after = status(&t.cfg).await.sources[0].clone();
    assert_eq!(after.items_known, before.items_known);
    assert_eq!(after.consecutive_failures, 0);
    assert_eq!(after.last_result, before.last_result);
    assert!(t.rx.received().is_empty());
    // The next pass finds the article and delivers it once.
    t.feeds.set_delay(Duration::ZERO);
    let next = pass(&t.cfg).await;
    assert_eq!(next.deliveries.len(), 1, "{:?}", next.problems());
    assert_eq!(t.rx.received().len(), 1);
}

#[tokio::test]
async fn sigterm_stops_a_parse_in_flight() {
    let scene = spawn_scene().await;
    // A parse that takes minutes before the default budget stops it.
    let cfg = page_source(&scene, deep_page(60_000));
    edit_config(&cfg, "interval = \"30m\"", "interval = \"1s\"");

    let mut daemon = spawn_daemon(&cfg).await;
    let started = Instant::now();
    while scene.feeds.requests("/").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Well into the parse.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (took, ok) = terminate(&mut daemon).await;
    assert!(ok, "exit status");
    eprintln!("stopped {took:?} after SIGTERM");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    // Nothing recorded for the source (its first poll never finished), and the store opens.
    let status = status(&cfg).await;
    assert!(
        status
            .sources
            .iter()
            .all(|s| s.items_known == 0 && s.consecutive_failures == 0),
        "{:?}",
        status.sources
    );
}
