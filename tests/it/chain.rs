//! chain.rs: the scenarios: a new article reaches the chain's stages; a crash between publish and
//! delivery; the runner down then up; two authors in one batch window in both output formats; a
//! failing stage, then `redeliver` once it is fixed; a stage behind a closed gate, deferred.

use std::time::Duration;

use trigger_client::RunState;

use crate::harness::*;

#[tokio::test]
async fn a_new_article_reaches_the_demo_chain_through_the_embedded_runner() {
    let dir = tempfile::tempdir().unwrap();
    let t = serve_one_author(dir, LIZ, &embedded(&demo_chains(), "demo")).await;
    let cfg = &t.cfg;
    let (baseline, _) = pass(cfg).await;
    assert!(baseline.deliveries.is_empty());

    // One article page served next to the feed (the demo chain fetches it), one public link
    // (the tests' chain fetches from this machine only: refused and recorded).
    let page = "<html><head><title>Liz Marley | On watching</title></head><body><nav>Home Archive</nav><article><h1>On watching</h1><p>A watcher reads feeds so that nobody has to. It notices the new article and starts the chain at once.</p><p>The chain fetches the page and keeps its words. Those words become chunks and datasets.</p></article><footer>Liz's footer</footer></body></html>";
    t.feeds
        .set_bytes("/liz/on-watching", page.into(), "text/html; charset=utf-8");
    let served = t.feeds.url("/liz/on-watching");
    t.publish_new(&[
        "https://medium.com/@lizmarley/first-new?utm_source=rss",
        &served,
    ]);
    let (report, runs) = pass(cfg).await;
    assert_eq!(report.deliveries.len(), 1);
    let run = report.deliveries[0].outcome.clone().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1.as_ref().unwrap().state, RunState::Succeeded);

    let seen = config_seen(&t.embedded_runner_state(), &run);
    assert_eq!(seen["parameters"]["user_full_name"], "Liz Marley");
    let mut got: Vec<&str> = seen["parameters"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut want = vec!["https://medium.com/@lizmarley/first-new", served.as_str()];
    want.sort_unstable();
    assert_eq!(got, want, "exactly the new links, canonical");
    // The chain collected the served article's text, and recorded the link it could not fetch.
    let outputs = run_outputs(&t.embedded_runner_state(), &run);
    let docs = jsonl(&outputs.join("cleaned_documents.jsonl"));
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["author"], "Liz Marley");
    assert_eq!(docs[0]["title"], "On watching");
    assert_eq!(
        docs[0]["text"],
        "A watcher reads feeds so that nobody has to. It notices the new article and starts the chain at once.\n\nThe chain fetches the page and keeps its words. Those words become chunks and datasets."
    );
    let failed = jsonl(&outputs.join("failed_links.jsonl"));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["link"], "https://medium.com/@lizmarley/first-new");
    let instruct = jsonl(&outputs.join("instruct_dataset.jsonl"));
    assert_eq!(instruct.len(), 3);
    assert_eq!(
        instruct[0]["answer"],
        "It notices the new article and starts the chain at once."
    );
    let s = status(cfg).await;
    assert_eq!(s.deliveries[0].run_state.as_deref(), Some("succeeded"));
}

#[tokio::test]
async fn a_crash_between_publish_and_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = serve_one_author(dir, RUBEN, &embedded(&demo_chains(), "demo")).await;
    let cfg = &t.cfg;
    t.baseline_then_publish("https://rubenerd.com/crash-safe/")
        .await;
    // The real binary dies with SIGKILL after the outbox commit, before the trigger.
    let status = watcher_cmd(cfg)
        .args(["once", "--all"])
        .env(watcher::crash::ENV, "before-send")
        .status()
        .await
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));

    // The restarted watcher delivers the same batch, once, and the chain runs it.
    let (report, runs) = pass(cfg).await;
    assert_eq!(report.deliveries.len(), 1);
    assert_eq!(runs[0].1.as_ref().unwrap().state, RunState::Succeeded);
    let run = report.deliveries[0].outcome.clone().unwrap();
    let seen = config_seen(&t.embedded_runner_state(), &run);
    assert_eq!(
        seen["parameters"]["links"][0],
        "https://rubenerd.com/crash-safe/"
    );
    let (again, _) = pass(cfg).await;
    assert!(again.deliveries.is_empty(), "delivered once");
}

#[tokio::test]
async fn the_runner_down_then_up_gets_the_batch_once() {
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let token_file = dir.path().join("runner-token");
    std::fs::write(&token_file, "e2e-secret-token\n").unwrap();
    let trigger = format!(
        "kind = \"pipelines\"\nurl = \"http://{addr}\"\npipeline = \"demo\"\ntoken_file = \"{}\"",
        token_file.display()
    );
    let t = serve_one_author(dir, RUBEN, &trigger).await;
    let cfg = &t.cfg;
    t.baseline_then_publish("https://rubenerd.com/runner-was-down/")
        .await;

    let (down, _) = pass(cfg).await;
    assert!(down.deliveries[0].outcome.is_err(), "nothing listens yet");
    assert_eq!(status(cfg).await.pending, 1);

    let runner_state = t.dir.path().join("runner");
    let runner = spawn_runner_at(addr, &demo_chains(), &runner_state, "e2e-secret-token").await;
    let (up, _) = pass(cfg).await;
    let run = up.deliveries[0].outcome.clone().unwrap();
    assert_eq!(run.kind, "pipelines");
    // The watcher follows the run to its end through the trigger client.
    let w = open_watcher(cfg);
    let mut state = None;
    for _ in 0..200 {
        w.once(watcher::watch::OnceOptions::default(), |_, _, _| {})
            .await
            .unwrap();
        state = w.status().await.unwrap().deliveries[0].run_state.clone();
        if state.as_deref() == Some("succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state.as_deref(), Some("succeeded"));
    drop(w);
    let seen = config_seen(&runner_state, &run);
    assert_eq!(
        seen["parameters"]["links"][0],
        "https://rubenerd.com/runner-was-down/"
    );
    let runs = std::fs::read_dir(runner_state.join("runs"))
        .unwrap()
        .count();
    assert_eq!(runs, 1, "one run, whatever the retries");
    runner.stop().await;
}

async fn two_authors_publish(format: &str) -> (tempfile::TempDir, Vec<serde_json::Value>) {
    let feeds = spawn_feeds().await;
    let dir = tempfile::tempdir().unwrap();
    let (liz, ruben) = (publish_corpus(&feeds, &LIZ), publish_corpus(&feeds, &RUBEN));
    let cfg = write_config(
        dir.path(),
        &[
            (LIZ.name, feeds.url(LIZ.path)),
            (RUBEN.name, feeds.url(RUBEN.path)),
        ],
        &embedded(&demo_chains(), "demo"),
        format,
    );
    pass(&cfg).await;
    feeds.set_feed(
        LIZ.path,
        &with_new_item(&liz, "https://medium.com/@lizmarley/both"),
    );
    feeds.set_feed(
        RUBEN.path,
        &with_new_item(&ruben, "https://rubenerd.com/both/"),
    );
    let (report, runs) = pass(&cfg).await;
    assert!(
        runs.iter()
            .all(|(_, r)| r.as_ref().unwrap().state == RunState::Succeeded)
    );
    let seen = report
        .deliveries
        .iter()
        .map(|d| {
            config_seen(
                &dir.path().join("state/pipelines"),
                d.outcome.as_ref().unwrap(),
            )
        })
        .collect();
    (dir, seen)
}

#[tokio::test]
async fn two_authors_in_one_window_give_two_digital_data_etl_runs() {
    let (_dir, seen) = two_authors_publish("digital_data_etl").await;
    assert_eq!(seen.len(), 2);
    let mut names: Vec<&str> = seen
        .iter()
        .map(|s| s["parameters"]["user_full_name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Liz Marley", "Ruben Schade"]);
}

#[tokio::test]
async fn two_authors_in_one_window_give_one_end_to_end_data_run() {
    let (_dir, seen) = two_authors_publish("end_to_end_data").await;
    assert_eq!(seen.len(), 1);
    let authors = seen[0]["parameters"]["author_links"].as_array().unwrap();
    assert_eq!(authors.len(), 2);
    for a in authors {
        assert_eq!(a["links"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_failing_stage_fails_the_batch_and_redeliver_succeeds_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    // A chain whose only stage fails until a flag file exists.
    let flag = dir.path().join("fixed");
    let chains = python_stage_chain(
        dir.path(),
        "flaky",
        "import os, sys; sys.exit(0 if os.path.exists(sys.argv[1]) else 3)",
        &[&flag],
    );
    let t = serve_one_author(dir, RUBEN, &embedded(&chains, "flaky")).await;
    let cfg = &t.cfg;
    t.baseline_then_publish("https://rubenerd.com/flaky/").await;
    let (report, runs) = pass(cfg).await;
    assert_eq!(runs[0].1.as_ref().unwrap().state, RunState::Failed);
    let batch = report.deliveries[0].batch_id.clone();
    let s = status(cfg).await;
    assert_eq!(s.deliveries[0].run_state.as_deref(), Some("failed"));
    let rendered = s.render(chrono::Utc::now());
    assert!(rendered.contains("RUN FAILED"), "{rendered}");
    assert!(
        rendered.contains(&format!("watcher redeliver {batch}")),
        "{rendered}"
    );

    std::fs::write(&flag, "").unwrap();
    let out = watcher_cmd(cfg)
        .args(["redeliver", &batch])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{batch}-r1")));
    let (again, runs) = pass(cfg).await;
    assert_eq!(again.deliveries.len(), 1);
    assert_eq!(runs[0].1.as_ref().unwrap().state, RunState::Succeeded);
    assert_ne!(
        again.deliveries[0].outcome.as_ref().unwrap(),
        report.deliveries[0].outcome.as_ref().unwrap(),
        "a new run, not the failed one"
    );
    assert_eq!(
        status(cfg).await.deliveries[0].run_state.as_deref(),
        Some("succeeded")
    );
}

#[tokio::test]
async fn the_daemon_lets_a_running_stage_finish_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (started, finished) = (dir.path().join("started"), dir.path().join("finished"));
    let chains = python_stage_chain(
        dir.path(),
        "slow",
        "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(1.5); pathlib.Path(sys.argv[2]).touch()",
        &[&started, &finished],
    );
    let t = serve_one_author(dir, RUBEN, &embedded(&chains, "slow")).await;
    t.baseline_then_publish("https://rubenerd.com/slow/").await;
    // Make the source due at once for the daemon.
    edit_config(
        &t.cfg,
        "batch_window = \"0s\"",
        "batch_window = \"0s\"\ninterval = \"1m\"\nmin_interval = \"1s\"",
    );
    let w = open_watcher(&t.cfg);
    // Force a poll now: the baseline scheduled the next one 1m out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    w.once(all_sources(), |_, _, _| {}).await.unwrap();
    let daemon = tokio::spawn(w.run(listener, cancel.clone()));
    for _ in 0..100 {
        if started.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.exists(), "the stage started");
    assert!(!finished.exists());
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), daemon)
        .await
        .expect("the daemon stops")
        .unwrap()
        .unwrap();
    assert!(finished.exists(), "the running stage was let finish");
}

#[tokio::test]
async fn a_stage_behind_a_closed_gate_is_deferred_and_status_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let chains = dir.path().join("chains");
    std::fs::create_dir_all(&chains).unwrap();
    std::fs::write(
        chains.join("gated.toml"),
        r#"name = "gated"
[[stages]]
name = "etl"
run = ["true"]
[[stages]]
name = "datasets"
after = ["etl"]
gate = { min_new_links = 5 }
run = ["true"]
"#,
    )
    .unwrap();
    let t = serve_one_author(dir, RUBEN, &embedded(&chains, "gated")).await;
    let cfg = &t.cfg;
    t.baseline_then_publish("https://rubenerd.com/gated/").await;
    let (_, runs) = pass(cfg).await;
    let run = runs[0].1.as_ref().unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{run:?}");
    assert_eq!(
        run.message.as_deref(),
        Some("deferred: datasets (1 of 5 new links)")
    );
    let datasets = run.stages.iter().find(|s| s.name == "datasets").unwrap();
    assert!(datasets.is_deferred(), "{datasets:?}");
    let rendered = status(cfg).await.render(chrono::Utc::now());
    assert!(
        rendered.contains("run: deferred: datasets (1 of 5 new links)"),
        "{rendered}"
    );
}
