//! delivery.rs: the outbox: a receiver that is down, failed deliveries and `retry`, signing.

use crate::helpers::*;

const FEED: &str = "rubenerd-hugo.rss.xml";

#[tokio::test]
async fn receiver_down_then_back_delivers_once_with_the_same_key() {
    let t = spawn_one_author("Ruben", FEED).await;
    let (rx, cfg) = (&t.rx, &t.cfg);
    t.baseline_then_publish("https://rubenerd.com/fresh/", "Fresh")
        .await;

    rx.set_mode(Mode::Fail(503));
    let down = pass(cfg).await;
    assert_eq!(down.deliveries.len(), 1);
    assert!(down.deliveries[0].outcome.is_err());
    assert_eq!(down.problems().len(), 1, "a failed delivery is a problem");
    assert_eq!(status(cfg).await.pending, 1);

    rx.set_mode(Mode::Accept);
    let back = pass(cfg).await;
    assert!(back.deliveries[0].outcome.is_ok(), "{:?}", back.deliveries);
    let keys = rx.keys();
    assert!(keys.len() >= 2);
    assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
    assert_eq!(keys[0], back.deliveries[0].batch_id);

    let after = pass(cfg).await;
    assert!(after.deliveries.is_empty(), "delivered once");
}

#[tokio::test]
async fn a_receiver_that_never_answers_moves_to_failed_and_retry_requeues() {
    let t = spawn_one_author("Ruben", FEED).await;
    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    t.rewrite_config(&closed, "");
    t.baseline_then_publish("https://rubenerd.com/fresh/", "Fresh")
        .await;
    // max_attempts = 3 with zero delays: three passes exhaust it.
    for _ in 0..3 {
        let r = pass(&t.cfg).await;
        assert!(r.deliveries[0].outcome.is_err());
    }
    let w = open_watcher(&t.cfg);
    let status = w.status().await.unwrap();
    assert_eq!((status.pending, status.failed), (0, 1));
    let error = status.deliveries[0].last_error.clone().unwrap();
    assert!(error.contains("cannot connect"), "{error}");
    assert!(
        pass_with(&w).await.deliveries.is_empty(),
        "failed stays failed"
    );
    assert_eq!(w.retry(None).await.unwrap(), 1);
    assert_eq!(w.status().await.unwrap().pending, 1);
}

async fn pass_with(w: &watcher::watch::Watcher) -> watcher::watch::PassReport {
    w.once(ALL, |_, _, _| {}).await.unwrap()
}

#[tokio::test]
async fn deliveries_are_signed_when_a_secret_is_configured() {
    use hmac::{Hmac, Mac};
    let t = spawn_one_author("Ruben", FEED).await;
    let secret = t.dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    t.rewrite_config(
        &t.rx.url(),
        &format!("secret_file = \"{}\"", secret.display()),
    );
    t.baseline_then_publish("https://rubenerd.com/signed/", "Fresh")
        .await;
    pass(&t.cfg).await;
    let got = &t.rx.received()[0];
    let sig = got.headers["x-watcher-signature"].to_str().unwrap();
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .expect("t=<unix>,v1=<hex>");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&got.raw);
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1);
    assert!(!format!("{:?}", got.headers).contains("s3cret"));
}
