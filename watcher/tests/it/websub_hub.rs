//! websub_hub.rs: push through a real hub, Flask-WebSub 0.4.1 on loopback, started by
//! `scripts/engines/websub.sh run -- cargo test -p watcher --test it real_websub -- --ignored`
//! (which sets WEBSUB_HUB_URL; without it the test prints a note and passes, except under
//! CI=true). The feed names the hub in `Link` headers (this hub delivers only then); the daemon
//! subscribes, the hub verifies; a publish reaches the trigger through the hub's signed delivery
//! (the poll interval is an hour, so nothing else could find it); with a 4-second lease the
//! subscription is renewed and a later publish still arrives.

use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::websub::start_daemon;

fn hub_url() -> Option<String> {
    if let Some(url) = std::env::var("WEBSUB_HUB_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!(
            "CI=true but WEBSUB_HUB_URL is not set: run this test under `scripts/engines/websub.sh run -- ...`"
        );
    }
    eprintln!(
        "WEBSUB_HUB_URL is not set: skipped (run it under scripts/engines/websub.sh run -- ...)"
    );
    None
}

/// Asks the hub to tell its subscribers that `topic` changed (it fetches it and delivers it).
async fn publish(hub: &str, topic: &str) {
    let resp = reqwest::Client::new()
        .post(hub)
        .form(&[("hub.mode", "publish"), ("hub.topic", topic)])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "publish: {}", resp.status());
}

#[tokio::test]
#[ignore = "needs the real hub: scripts/engines/websub.sh run -- cargo test ... -- --ignored"]
async fn real_websub_hub_delivers_a_published_article_once_and_the_lease_is_renewed() {
    let Some(hub) = hub_url() else { return };
    let scene = spawn_scene().await;
    let feed_url = scene.feeds.url("/feed");
    scene.feeds.set_feed(
        "/feed",
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Real hub</title><link>https://real.example/</link>
<item><title>First</title><link>https://real.example/first</link><guid>https://real.example/first</guid></item></channel></rss>"#,
    );
    scene.feeds.set_links(
        "/feed",
        &[
            format!("<{hub}>; rel=\"hub\""),
            format!("<{feed_url}>; rel=\"self\""),
        ],
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        "\n[websub]\ncallback_url = \"http://{listen}\"\nlisten = \"{listen}\"\nlease = \"4s\"\n"
    );
    let cfg = write_config(scene.dir.path(), &[], &scene.rx.url(), &extra);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[[authors]]\nname = \"Rhea\"\nfeeds = [{{ url = \"{feed_url}\", interval = \"1h\" }}]\n"
    ));
    std::fs::write(&cfg, text).unwrap();

    let d = start_daemon(&cfg).await;
    let push = d
        .wait_push("live at the real hub", |p| p["state"] == "live")
        .await;
    assert_eq!(push["hub"], hub.as_str(), "{push}");

    let first = "https://real.example/pushed-1";
    scene.feeds.publish("/feed", first, "Pushed one");
    let started = Instant::now();
    publish(&hub, &feed_url).await;
    scene.rx.wait_for(1).await;
    // A figure, not an assertion (the benchmark is where speed is judged).
    eprintln!(
        "publish → trigger through the real hub: {:?}",
        started.elapsed()
    );
    assert_eq!(delivered_links(&scene.rx), [first]);

    // The 4-second lease is renewed (a fresh callback, verified by the hub) before it ends: a
    // publish well after the first lease ended still arrives by push.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let push = d.wait_push("still live", |p| p["state"] == "live").await;
    let second = "https://real.example/pushed-2";
    scene.feeds.publish("/feed", second, "Pushed two");
    publish(&hub, &feed_url).await;
    scene.rx.wait_for(2).await;
    assert_eq!(delivered_links(&scene.rx), [first, second], "{push}");
    d.stop().await;
}
