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

#[tokio::test]
async fn an_item_linking_to_the_metadata_address_never_reaches_a_config() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    pass(&t.cfg).await;
    let metadata = "http://169.254.169.254/latest/meta-data/iam/";
    let good = "https://rubenerd.com/a-new-post/";
    let feed = publish_rss(
        &publish_rss(&t.original, metadata, "Metadata"),
        good,
        "Good",
    );
    t.feeds.set_feed(FEED_PATH, &feed);
    let report = pass(&t.cfg).await;
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    assert_eq!(
        delivered_links(&t.rx),
        [good],
        "the other item is delivered"
    );
    for entry in std::fs::read_dir(t.dir.path().join("out")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("169.254"), "{text}");
    }
    let status = status(&t.cfg).await;
    assert_eq!(status.sources[0].links_refused, 1);
    let text = status.render(chrono::Utc::now());
    assert!(text.contains("links refused 1"), "{text}");
}

#[tokio::test]
async fn allow_networks_lets_an_item_link_through() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    edit_config(
        &t.cfg,
        "[fetch]\n",
        "[fetch]\nallow_networks = [\"10.0.0.0/8\"]\n",
    );
    pass(&t.cfg).await;
    let lan = "http://10.1.2.3/post/";
    t.publish(lan, "On the LAN");
    pass(&t.cfg).await;
    assert_eq!(delivered_links(&t.rx), [lan]);
}

#[tokio::test]
async fn check_names_a_bad_allow_networks_entry() {
    let scene = spawn_scene().await;
    let cfg = scene.one_author_config("Ada", &["/feed"]);
    edit_config(
        &cfg,
        "[fetch]\n",
        "[fetch]\nallow_networks = [\"10.0.0.0/33\"]\n",
    );
    let err = watcher::config::Config::load(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("fetch.allow_networks") && err.contains("10.0.0.0/33"),
        "{err}"
    );
}

#[tokio::test]
async fn a_permanent_redirect_to_a_private_address_is_followed_but_not_adopted() {
    let scene = spawn_scene().await;
    let (port, hits) = spawn_counting_server().await;
    scene.feeds.set(
        "/old",
        Route::StatusWith(
            301,
            vec![("location", format!("http://127.0.0.2:{port}/feed.xml"))],
        ),
    );
    let cfg = scene.config(&[scene.author("Ada", &["/old"])]);
    edit_config(
        &cfg,
        "[fetch]\n",
        "[fetch]\nallow_networks = [\"127.0.0.2/32\"]\n",
    );
    for _ in 0..2 {
        let report = pass(&cfg).await;
        assert!(report.problems().is_empty(), "{:?}", report.problems());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(
        scene.feeds.times("/old").len(),
        2,
        "the source kept its URL"
    );
    assert_eq!(status(&cfg).await.sources[0].current_url, None);
}
