//! daemon.rs: `watcher run` as a real process: it delivers, answers `status` over its loopback
//! endpoint while it holds the store, refuses a second daemon with the first one's pid, and
//! exits 0 on SIGTERM.

use crate::helpers::*;

#[tokio::test]
async fn run_delivers_serves_status_refuses_a_twin_and_stops_on_sigterm() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    let (rx, cfg) = (&t.rx, &t.cfg);
    // Baseline in-process first, then publish, so the daemon's first poll finds one article.
    t.baseline_then_publish("https://rubenerd.com/daemon/", "Daemon")
        .await;
    // Make the source due now (the baseline pass scheduled it 30m out): a fresh state would
    // baseline again, so instead lower the interval for this run.
    edit_config(cfg, "interval = \"30m\"", "interval = \"1s\"");
    let listen = load(cfg).watcher.listen.to_string();

    let mut daemon = watcher_cmd(cfg).arg("run").spawn().unwrap();
    wait_healthy(&listen).await;
    rx.wait_for(1).await;
    assert_eq!(
        rx.received()[0].body["config"]["parameters"]["links"][0],
        "https://rubenerd.com/daemon/"
    );

    let status = status_json(cfg).await;
    assert_eq!(status["sources"][0]["author"], "Ruben");
    assert_eq!(status["sources"][0]["items_known"], 11);

    let twin = watcher_cmd(cfg).arg("run").output().await.unwrap();
    assert_eq!(twin.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&twin.stderr);
    let pid = daemon.id().unwrap();
    assert!(stderr.contains(&format!("in use by pid {pid}")), "{stderr}");

    stop_with_sigterm(&mut daemon).await;
    assert_eq!(rx.received().len(), 1, "delivered exactly once");
}
