//! schedule.rs: polite, adaptive polling: Retry-After per source, error backoff, jitter, the
//! per-host limit, `once` respecting the schedule, 410 and redirects. Timed scenarios run the
//! daemon on a paused tokio clock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use watcher::poll::PollOutcome;

use crate::helpers::*;

/// A config with `n` feeds of one author at `paths`, and scheduling keys in `[watcher]`.
fn schedule_config(
    dir: &Path,
    feeds: &FeedServer,
    paths: &[String],
    watcher_keys: &str,
) -> PathBuf {
    let text = format!(
        r#"
[watcher]
state_dir = "state"
output_dir = "out"
listen = "127.0.0.1:{port}"
min_interval = "0s"
batch_window = "0s"
{watcher_keys}

[fetch]
timeout = "10m"

[trigger]
kind = "webhook"
url = "http://127.0.0.1:{closed}/hook"
retry_base_delay = "0s"

[[authors]]
name = "Many"
feeds = [{feeds}]
"#,
        port = free_port(),
        closed = free_port(),
        feeds = paths
            .iter()
            .map(|p| format!("\"{}\"", feeds.url(p)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let path = dir.join("watcher.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn spawn_daemon(cfg: &Path) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let w = watcher::watch::Watcher::open(load(cfg)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let handle = tokio::spawn(async move { w.run(listener, c).await.unwrap() });
    (cancel, handle)
}

/// A feed server whose one feed, at `/f`, is rubenerd's, and a config in a temp dir that polls
/// it with `watcher_keys`.
async fn one_rubenerd_feed(watcher_keys: &str) -> (FeedServer, tempfile::TempDir, PathBuf) {
    let feeds = spawn_feed_server().await;
    let dir = tempfile::tempdir().unwrap();
    feeds.set_feed("/f", &fixture("rubenerd-hugo.rss.xml"));
    let cfg = schedule_config(dir.path(), &feeds, &["/f".to_string()], watcher_keys);
    (feeds, dir, cfg)
}

/// Serves the fixture `fixture_name` at `n` paths `{prefix}0`, `{prefix}1`…, and returns them.
fn serve_copies(feeds: &FeedServer, fixture_name: &str, prefix: &str, n: usize) -> Vec<String> {
    let body = fixture(fixture_name);
    let paths: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    for p in &paths {
        feeds.set_feed(p, &body);
    }
    paths
}

/// The source whose URL ends with `suffix`.
fn source_ending<'a>(
    status: &'a watcher::status::StatusReport,
    suffix: &str,
) -> &'a watcher::status::SourceStatus {
    status
        .sources
        .iter()
        .find(|s| s.url.ends_with(suffix))
        .unwrap()
}

fn gaps(times: &[tokio::time::Instant]) -> Vec<u64> {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64().round() as u64)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retry_after_holds_one_source_while_its_neighbours_keep_their_schedule() {
    let feeds = spawn_feed_server().await;
    let dir = tempfile::tempdir().unwrap();
    let body = fixture("medium-lizmarley.rss.xml");
    feeds.set_feed("/a", &body);
    feeds.set_feed("/b", &body);
    feeds.set(
        "/throttled",
        Route::StatusWith(429, vec![("retry-after", "3600".into())]),
    );
    let paths = ["/a", "/b", "/throttled"].map(String::from);
    let cfg = schedule_config(
        dir.path(),
        &feeds,
        &paths,
        "interval = \"60s\"\nmax_interval = \"2h\"\njitter = 0.0",
    );
    let (cancel, daemon) = spawn_daemon(&cfg).await;

    tokio::time::sleep(Duration::from_secs(3500)).await;
    assert_eq!(
        feeds.times("/throttled").len(),
        1,
        "not asked again before 3600 s"
    );
    for neighbour in ["/a", "/b"] {
        let n = feeds.times(neighbour).len();
        assert!(
            (55..=60).contains(&n),
            "{neighbour} polled {n} times in 3500 s at 60 s: {:?}",
            gaps(&feeds.times(neighbour))
        );
    }
    tokio::time::sleep(Duration::from_secs(200)).await;
    let throttled = feeds.times("/throttled");
    assert_eq!(throttled.len(), 2);
    assert!(gaps(&throttled)[0] >= 3600, "{:?}", gaps(&throttled));
    cancel.cancel();
    daemon.await.unwrap();

    let status = status(&cfg).await;
    let t = source_ending(&status, "/throttled");
    assert_eq!(t.consecutive_failures, 0, "throttling is not a failure");
    assert_eq!(t.next_due_reason.as_deref(), Some("Retry-After"));
}

#[tokio::test(start_paused = true)]
async fn consecutive_errors_back_off_exponentially_and_the_source_is_still_polled() {
    let feeds = spawn_feed_server().await;
    let dir = tempfile::tempdir().unwrap();
    feeds.set("/broken", Route::Status(500));
    let cfg = schedule_config(
        dir.path(),
        &feeds,
        &["/broken".to_string()],
        "interval = \"60s\"\nmax_interval = \"2h\"\njitter = 0.0",
    );
    let (cancel, daemon) = spawn_daemon(&cfg).await;
    tokio::time::sleep(Duration::from_secs(7700)).await;
    cancel.cancel();
    daemon.await.unwrap();

    // Documented: interval × 2^failures, capped at max_interval.
    let got = gaps(&feeds.times("/broken"));
    let want = [120u64, 240, 480, 960, 1920, 3840];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.abs_diff(w) <= 2, "gaps {got:?}, want {want:?}");
    }
    let status = status(&cfg).await;
    let s = &status.sources[0];
    assert_eq!(s.consecutive_failures, 7);
    assert!(s.failing);
    assert_eq!(
        s.next_due_reason.as_deref(),
        Some("backoff after 7 failure(s), capped at max_interval")
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_a_hundred_sources() {
    let feeds = spawn_feed_server().await;
    let dir = tempfile::tempdir().unwrap();
    let paths = serve_copies(&feeds, "medium-lizmarley.rss.xml", "/f", 100);
    let cfg = schedule_config(
        dir.path(),
        &feeds,
        &paths,
        "interval = \"600s\"\njitter = 0.1",
    );
    // The baseline first: its 100 fsyncs run on sled's threads, and a paused clock races while
    // it waits for them. The daemon then polls on the schedule the baseline stored.
    pass(&cfg).await;
    let (cancel, daemon) = spawn_daemon(&cfg).await;
    tokio::time::sleep(Duration::from_secs(1400)).await;
    cancel.cancel();
    daemon.await.unwrap();
    let mut waits = Vec::new();
    for p in &paths {
        let times = feeds.times(p);
        assert!(times.len() >= 3, "{p} polled twice by the daemon");
        waits.push(gaps(&times[1..])[0]);
    }
    // 600 s ± 10%, each poll started on the daemon's 5 s grid (at most 5 s late, never early).
    assert!(waits.iter().all(|w| (535..=665).contains(w)), "{waits:?}");
    let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
    assert!(
        distinct.len() >= 15,
        "only {} distinct waits (of 25 grid slots): {waits:?}",
        distinct.len()
    );
}

#[tokio::test]
async fn one_host_never_sees_more_than_its_limit() {
    let feeds = spawn_feed_server().await;
    let dir = tempfile::tempdir().unwrap();
    let paths = serve_copies(&feeds, "rubenerd-hugo.rss.xml", "/h", 200);
    feeds.set_delay(Duration::from_millis(5));
    let cfg = schedule_config(dir.path(), &feeds, &paths, "concurrency = 32");
    let report = pass(&cfg).await;
    assert_eq!(report.polls.len(), 200);
    assert_eq!(feeds.total_requests(), 200);
    assert_eq!(
        feeds.max_in_flight(),
        2,
        "per_host = 2 (the default), and it is used"
    );
}

#[tokio::test]
async fn once_polls_only_the_sources_that_are_due() {
    let (feeds, _dir, cfg) = one_rubenerd_feed("").await;
    let due_only = watcher::watch::OnceOptions::default();
    let w = open_watcher(&cfg);
    let first = w.once(due_only, |_, _, _| {}).await.unwrap();
    assert_eq!(
        (first.polls.len(), first.not_due),
        (1, 0),
        "a fresh store polls everything"
    );
    let second = w.once(due_only, |_, _, _| {}).await.unwrap();
    assert_eq!((second.polls.len(), second.not_due), (0, 1));
    assert_eq!(feeds.times("/f").len(), 1);
    let forced = w.once(ALL, |_, _, _| {}).await.unwrap();
    assert_eq!(forced.polls.len(), 1, "--all polls it anyway");
}

#[tokio::test]
async fn gone_stops_a_source_and_permanent_redirects_move_it() {
    let feeds = spawn_feed_server().await;
    let dir = tempfile::tempdir().unwrap();
    let body = fixture("rubenerd-hugo.rss.xml");
    feeds.set("/gone", Route::Status(410));
    feeds.set(
        "/old",
        Route::StatusWith(301, vec![("location", "/new".into())]),
    );
    feeds.set(
        "/tmp",
        Route::StatusWith(302, vec![("location", "/target".into())]),
    );
    feeds.set_feed("/new", &body);
    feeds.set_feed("/target", &body);
    let paths = ["/gone", "/old", "/tmp"].map(String::from);
    let cfg = schedule_config(dir.path(), &feeds, &paths, "");
    let first = pass(&cfg).await;
    let gone = first
        .polls
        .iter()
        .find(|p| p.source.url.ends_with("/gone"))
        .unwrap();
    assert_eq!(gone.outcome, PollOutcome::Gone);
    assert!(first.problems().is_empty(), "{:?}", first.problems());
    let second = pass(&cfg).await;
    assert_eq!(
        second.polls.len(),
        2,
        "the gone source waits for its daily re-check, also with --all"
    );
    assert_eq!(second.not_due, 1);
    assert_eq!(feeds.times("/gone").len(), 1);
    assert_eq!(
        feeds.times("/old").len(),
        1,
        "after a 301 the new URL is polled directly"
    );
    assert_eq!(feeds.times("/new").len(), 2);
    assert_eq!(
        feeds.times("/tmp").len(),
        2,
        "a 302 does not move the source"
    );
    let status = status(&cfg).await;
    let g = source_ending(&status, "/gone");
    assert!(g.last_result.as_deref().unwrap().contains("gone (410)"));
}

#[tokio::test]
async fn a_feed_ttl_stretches_the_interval_also_after_304s() {
    // rubenerd's feed says <ttl>30</ttl> (minutes).
    let (_feeds, _dir, cfg) = one_rubenerd_feed("interval = \"5m\"").await;
    for _ in 0..2 {
        let report = pass(&cfg).await;
        let next = &report.polls[0].next;
        assert_eq!(
            (next.wait.as_secs(), next.reason.as_str()),
            (1800, "feed ttl")
        );
    }
    assert_eq!(pass(&cfg).await.polls[0].outcome, PollOutcome::NotModified);
}
