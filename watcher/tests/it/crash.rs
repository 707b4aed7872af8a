//! crash.rs: the watcher process killed with SIGKILL around the send: nothing is lost and the
//! receiver never sees a second idempotency key for one batch.

use std::time::Duration;

use crate::helpers::*;

/// One author, the baseline done, and one new article the next pass will deliver.
async fn one_article_to_deliver() -> OneAuthor {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    t.baseline_then_publish("https://rubenerd.com/crash/", "Crash")
        .await;
    t
}

#[tokio::test]
async fn killed_after_the_outbox_commit_the_next_pass_sends_the_same_batch_once() {
    let t = one_article_to_deliver().await;
    let (rx, cfg) = (&t.rx, &t.cfg);
    let status = watcher_cmd(cfg)
        .args(["once", "--all"])
        .env(watcher::crash::ENV, "before-send")
        .status()
        .await
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the child died of SIGKILL");
    assert!(
        rx.received().is_empty(),
        "nothing was sent before the crash"
    );

    let report = pass(cfg).await;
    assert_eq!(report.deliveries.len(), 1);
    assert!(report.deliveries[0].outcome.is_ok());
    assert_eq!(rx.keys(), vec![report.deliveries[0].batch_id.clone()]);
    assert!(pass(cfg).await.deliveries.is_empty());
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test]
async fn killed_after_the_send_the_receiver_sees_the_same_key_again() {
    let t = one_article_to_deliver().await;
    let (rx, cfg) = (&t.rx, &t.cfg);
    rx.set_mode(Mode::Hang);
    let mut child = watcher_cmd(cfg).args(["once", "--all"]).spawn().unwrap();
    rx.wait_for(1).await;
    // The request is in flight and unanswered: the delivery is not marked done yet.
    child.start_kill().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());

    rx.set_mode(Mode::Accept);
    let report = pass(cfg).await;
    assert!(report.deliveries[0].outcome.is_ok());
    let keys = rx.keys();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0], keys[1],
        "the same Idempotency-Key, never a new one"
    );
    assert_eq!(keys[0], report.deliveries[0].batch_id);
}
