//! faults.rs: honest faults: a run whose engine stops answering is lost only after
//! `run_lost_after` (and then redelivered only with `--force`), and a source that answered 410
//! is asked again daily for 30 days before it is stopped for good.

use std::time::Duration;

use crate::helpers::*;
use watcher::poll::PollOutcome;
use watcher::store::{Store, source_key};

const FEED: &str = "rubenerd-hugo.rss.xml";

/// `watcher redeliver ARGS` as a child process: (exit code, stdout + stderr).
async fn redeliver_cmd(cfg: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = watcher_cmd(cfg)
        .arg("redeliver")
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn an_engine_down_for_a_while_loses_no_run_and_a_lost_run_needs_force() {
    let t = spawn_one_author("Ruben", FEED).await;
    // The receiver starts runs, but the status URL it names answers nothing: the engine is down.
    let status_url = format!("http://127.0.0.1:{}/runs/{{id}}", free_port());
    let extra = format!("status_url = \"{status_url}\"\nfollow_interval = \"0s\"");
    t.rewrite_config(&t.rx.url(), &extra);
    t.baseline_then_publish("https://rubenerd.com/lost/", "Lost")
        .await;
    let delivered = pass(&t.cfg).await;
    let batch = delivered.deliveries[0].batch_id.clone();
    assert!(delivered.deliveries[0].outcome.is_ok());
    // Far more failed status checks than the old limit of 20: the run is not lost, it may run.
    for _ in 0..25 {
        pass(&t.cfg).await;
    }
    let report = status(&t.cfg).await;
    let run_state = serde_json::to_value(&report.deliveries[0]).unwrap()["run_state"].clone();
    assert_ne!(run_state, "lost", "{report:?}");
    let (code, text) = redeliver_cmd(&t.cfg, &[&batch]).await;
    assert_eq!(
        code,
        Some(2),
        "a run that may be running is not started again: {text}"
    );

    // Past run_lost_after the run counts as lost; a redelivery then needs --force.
    t.rewrite_config(&t.rx.url(), &format!("{extra}\nrun_lost_after = \"1s\""));
    pass(&t.cfg).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pass(&t.cfg).await;
    let report = status(&t.cfg).await;
    let d = serde_json::to_value(&report.deliveries[0]).unwrap();
    assert_eq!(d["run_state"], "lost", "{d}");
    let table = watcher_cmd(&t.cfg).arg("status").output().await.unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(&format!("`watcher redeliver {batch} --force`")),
        "{table}"
    );
    // Asked through the daemon that holds the store, as a user would while it runs.
    let listener = tokio::net::TcpListener::bind(load(&t.cfg).watcher.listen)
        .await
        .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(open_watcher(&t.cfg).run(listener, cancel.clone()));
    let (code, text) = redeliver_cmd(&t.cfg, &[&batch]).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--force"), "{text}");
    let (code, text) = redeliver_cmd(&t.cfg, &[&batch, "--force"]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("{batch}-r1")), "{text}");
    t.rx.wait_for(2).await;
    assert_eq!(t.rx.keys()[1], format!("{batch}-r1"));
    cancel.cancel();
    daemon.await.unwrap().unwrap();
}

/// Moves the stored schedule of the source at `path` as if `days` had passed since its first 410.
async fn age_gone_source(cfg: &std::path::Path, url: &str, days: i64) {
    let config = load(cfg);
    let store = Store::open(&config.watcher.state_dir).unwrap();
    let key = source_key("Ruben", url);
    let state = store.source(&key).unwrap().unwrap();
    let now = chrono::Utc::now();
    let mut v = serde_json::to_value(&state).unwrap();
    v["gone_since"] = serde_json::json!(now - chrono::Duration::days(days));
    v["last_poll"] = serde_json::json!(now - chrono::Duration::days(1));
    v["next_due"] = serde_json::json!(now - chrono::Duration::seconds(1));
    let state = serde_json::from_value(v).unwrap();
    store.put_source(&key, &state).await.unwrap();
    store.flush().await.unwrap();
}

#[tokio::test]
async fn a_gone_source_is_asked_again_daily_for_30_days_then_stopped() {
    let t = spawn_one_author("Ruben", FEED).await;
    let url = t.feeds.url(FEED_PATH);
    t.feeds.set(FEED_PATH, Route::Status(410));
    let first = pass(&t.cfg).await;
    assert_eq!(first.polls[0].outcome, PollOutcome::Gone);
    assert_eq!(first.polls[0].next.wait.as_secs(), 24 * 3600);
    // Not before its daily re-check, even with --all.
    assert!(pass(&t.cfg).await.polls.is_empty());

    // A day later it is asked again; still gone.
    age_gone_source(&t.cfg, &url, 1).await;
    let again = pass(&t.cfg).await;
    assert_eq!(
        again.polls.len(),
        1,
        "a gone source is asked again after a day"
    );
    assert_eq!(again.polls[0].outcome, PollOutcome::Gone);

    // The site came back: the source is polled as before.
    t.feeds.set_feed(FEED_PATH, &t.original);
    age_gone_source(&t.cfg, &url, 2).await;
    let back = pass(&t.cfg).await;
    assert!(
        matches!(back.polls[0].outcome, PollOutcome::Baseline { .. }),
        "{:?}",
        back.polls[0].outcome
    );
    let state = Store::open(&load(&t.cfg).watcher.state_dir)
        .unwrap()
        .source(&source_key("Ruben", &url))
        .unwrap()
        .unwrap();
    assert!(!state.gone);

    // Gone for 30 days: stopped for good.
    t.feeds.set(FEED_PATH, Route::Status(410));
    pass(&t.cfg).await;
    age_gone_source(&t.cfg, &url, 30).await;
    let stopped = pass(&t.cfg).await;
    assert!(stopped.polls.is_empty(), "{:?}", stopped.polls);
    assert_eq!(stopped.not_due, 1);

    // A source stored as gone before `gone_since` existed counts from its last poll.
    {
        let store = Store::open(&load(&t.cfg).watcher.state_dir).unwrap();
        let key = source_key("Ruben", &url);
        let mut v = serde_json::to_value(store.source(&key).unwrap().unwrap()).unwrap();
        let now = chrono::Utc::now();
        v.as_object_mut().unwrap().remove("gone_since");
        v["last_poll"] = serde_json::json!(now - chrono::Duration::days(29));
        v["next_due"] = serde_json::json!(now - chrono::Duration::seconds(1));
        store
            .put_source(&key, &serde_json::from_value(v).unwrap())
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    assert_eq!(pass(&t.cfg).await.polls[0].outcome, PollOutcome::Gone);
    let state = Store::open(&load(&t.cfg).watcher.state_dir)
        .unwrap()
        .source(&source_key("Ruben", &url))
        .unwrap()
        .unwrap();
    let since = state.gone_since.unwrap();
    assert!(
        chrono::Utc::now() - since > chrono::Duration::days(28),
        "{since}"
    );
}

/// Opens the raw sled db of the watcher configured at `cfg` (the watcher closed it), waiting
/// briefly for its background flusher to let go.
fn raw_db(cfg: &std::path::Path) -> sled::Db {
    let path = load(cfg).watcher.state_dir.join("db");
    for _ in 0..100 {
        match sled::open(&path) {
            Ok(db) => return db,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    panic!("cannot open {}", path.display());
}

#[tokio::test]
async fn an_unreadable_staged_record_is_skipped_and_the_others_are_delivered() {
    let t = spawn_one_author("Ruben", FEED).await;
    t.baseline_then_publish("https://rubenerd.com/good/", "Good")
        .await;
    {
        // Poll only: the new article is staged, not batched yet.
        let w = open_watcher(&t.cfg);
        let opts = watcher::poll::PollOptions {
            backfill: false,
            trigger_on_update: false,
            dry_run: false,
        };
        let report = w.poll(&w.sources()[0], opts).await.unwrap();
        assert!(matches!(report.outcome, PollOutcome::Polled { .. }));
    }
    {
        // A record nobody can read, staged before the good one.
        let db = raw_db(&t.cfg);
        let staged = db.open_tree("staged").unwrap();
        staged
            .insert(0u64.to_be_bytes(), &b"{\"author\": 1"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let report = pass(&t.cfg).await;
    assert_eq!(report.deliveries.len(), 1, "{:?}", report.deliveries);
    assert!(report.deliveries[0].outcome.is_ok());
    let links = t.rx.received()[0].body["config"]["parameters"]["links"].clone();
    assert_eq!(links, serde_json::json!(["https://rubenerd.com/good/"]));
    // Reported, kept for inspection, and blocking nothing.
    let report = status(&t.cfg).await;
    assert_eq!(report.unreadable, ["staged/0"]);
    assert!(
        report
            .render(chrono::Utc::now())
            .contains("UNREADABLE: 1 store record(s) skipped (staged/0)"),
        "{report:?}"
    );
    t.publish("https://rubenerd.com/next/", "Next");
    let next = pass(&t.cfg).await;
    assert_eq!(next.deliveries.len(), 1, "{:?}", next.deliveries);
    assert_eq!(t.rx.received().len(), 2);
}

/// A feed server with rubenerd's feed, and a config for the embedded runner whose chain `long`
/// has one stage that writes its pid to `<dir>/stage.pid` and sleeps for 5 minutes.
async fn long_embedded_chain() -> (FeedServer, tempfile::TempDir, std::path::PathBuf) {
    let feeds = spawn_feed_server().await;
    feeds.set_feed(FEED_PATH, &fixture(FEED));
    let dir = tempfile::tempdir().unwrap();
    let chains = dir.path().join("chains");
    std::fs::create_dir_all(&chains).unwrap();
    let pid_file = dir.path().join("stage.pid");
    std::fs::write(
        chains.join("long.toml"),
        format!(
            r#"name = "long"

[[stages]]
name = "train"
run = ["sh", "-c", "echo $$ > {}; exec sleep 300"]
timeout = "2h"
"#,
            pid_file.display()
        ),
    )
    .unwrap();
    let cfg = dir.path().join("watcher.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[watcher]
state_dir = "state"
output_dir = "out"
min_interval = "0s"
listen = "127.0.0.1:{port}"

[trigger]
kind = "embedded"
pipeline = "long"
chains_dir = "chains"
shutdown_grace = "1s"

[[authors]]
name = "Ruben"
feeds = ["{feed}"]
"#,
            port = free_port(),
            feed = feeds.url(FEED_PATH)
        ),
    )
    .unwrap();
    (feeds, dir, cfg)
}

#[tokio::test]
async fn check_warns_when_an_embedded_chain_outlasts_wait_timeout() {
    let (_feeds, _dir, cfg) = long_embedded_chain().await;
    let out = watcher_cmd(&cfg).arg("check").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: trigger.wait_timeout: a run of chain `long` may take up to 2h"),
        "{stdout}"
    );
    assert!(stdout.contains("`pipelines serve`"), "{stdout}");
    assert!(stdout.contains("kind = \"pipelines\""), "{stdout}");
    // Within wait_timeout: no warning.
    edit_config(
        &cfg,
        "shutdown_grace = \"1s\"",
        "shutdown_grace = \"1s\"\nwait_timeout = \"3h\"",
    );
    let out = watcher_cmd(&cfg).arg("check").output().await.unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("warning"));
}

#[tokio::test]
async fn once_on_sigterm_stops_the_embedded_stages_and_flushes_the_store() {
    let (feeds, dir, cfg) = long_embedded_chain().await;
    let baseline = watcher_cmd(&cfg).args(["once", "--all"]).status().await;
    assert!(baseline.unwrap().success());
    feeds.publish(FEED_PATH, "https://rubenerd.com/long/", "Long");
    let mut once = watcher_cmd(&cfg).args(["once", "--all"]).spawn().unwrap();
    let pid_file = dir.path().join("stage.pid");
    let stage_pid =
        || -> Option<i32> { std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok() };
    eventually("the stage started", || stage_pid().is_some()).await;
    let stage_pid = stage_pid().unwrap();
    sigterm(&once);
    let status = tokio::time::timeout(Duration::from_secs(20), once.wait())
        .await
        .expect("once stops after SIGTERM within the shutdown grace")
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "a run cut short is a problem: {status:?}"
    );
    let stage_alive = std::fs::read_to_string(format!("/proc/{stage_pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "));
    assert!(
        !stage_alive,
        "the stage (pid {stage_pid}) was stopped with the runner"
    );
    // The store was flushed and released: the delivery and its run are recorded.
    let report = status_json(&cfg).await;
    assert_eq!(report["done"], 1, "{report}");
}

#[tokio::test]
async fn once_on_sigterm_while_polling_lets_the_poll_finish_and_delivers_nothing() {
    let t = spawn_one_author("Ruben", FEED).await;
    t.baseline_then_publish("https://rubenerd.com/slow/", "Slow")
        .await;
    t.feeds.set_delay(Duration::from_secs(2));
    let once = watcher_cmd(&t.cfg)
        .args(["once", "--all"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The poll is in flight (the server holds its answer for 2 s).
    eventually("the feed is polled", || {
        t.feeds.requests(FEED_PATH).len() >= 2
    })
    .await;
    sigterm(&once);
    let out = tokio::time::timeout(Duration::from_secs(20), once.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("1 new"),
        "the poll in flight finished: {stdout}"
    );
    assert!(stdout.contains("interrupted by a signal"), "{stdout}");
    assert!(
        t.rx.received().is_empty(),
        "nothing delivered after the signal"
    );
    // What it found is staged, durable: the next pass delivers it.
    t.feeds.set_delay(Duration::ZERO);
    let next = pass(&t.cfg).await;
    assert_eq!(next.deliveries.len(), 1);
    assert_eq!(t.rx.received().len(), 1);
}
