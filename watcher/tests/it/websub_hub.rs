//! websub_hub.rs: push through a real hub, Flask-WebSub 0.4.1 on loopback, started by
//! `scripts/engines/websub.sh run -- cargo test -p watcher --test it real_websub -- --ignored`
//! (which sets WEBSUB_HUB_URL; without it the test prints a note and passes, except under
//! CI=true). The feed names the hub in `Link` headers (this hub delivers only then); the daemon
//! subscribes, the hub verifies; a publish reaches the trigger through the hub's signed delivery
//! (the poll interval is an hour, so nothing else could find it); with a 4-second lease the
//! subscription is renewed and a later publish still arrives. A hub that goes down (a second,
//! private hub started and stopped by the same script) leaves the source to polling once the
//! lease it granted runs out; removing a source unsubscribes it at the hub (whose own list of
//! callbacks, `/subscriptions` of the launcher, is read back).

use std::path::{Path, PathBuf};
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

/// The callbacks the hub at `hub` holds for `topic` (the launcher's `/subscriptions`).
async fn hub_callbacks(hub: &str, topic: &str) -> Vec<String> {
    let base = hub
        .strip_suffix("/hub")
        .expect("the hub endpoint ends in /hub");
    reqwest::Client::new()
        .get(format!("{base}/subscriptions"))
        .query(&[("topic", topic)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A scene whose `/feed` names `hub` in `Link` headers (with one item), and a config with
/// `[websub]` (`lease`) and the feed polled every `interval`, plus `/plain` (no hub) when
/// `plain`.
async fn hub_scene(hub: &str, lease: &str, interval: &str, plain: bool) -> (Scene, PathBuf) {
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
        "\n[websub]\ncallback_url = \"http://{listen}\"\nlisten = \"{listen}\"\nlease = \"{lease}\"\n"
    );
    let cfg = write_config(scene.dir.path(), &[], &scene.rx.url(), &extra);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[[authors]]\nname = \"Rhea\"\nfeeds = [{{ url = \"{feed_url}\", interval = \"{interval}\" }}]\n"
    ));
    if plain {
        scene.feeds.set_feed(
            "/plain",
            r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Plain</title><link>https://plain.example/</link></channel></rss>"#,
        );
        let plain_url = scene.feeds.url("/plain");
        text.push_str(&format!(
            "\n[[authors]]\nname = \"Paul\"\nfeeds = [\"{plain_url}\"]\n"
        ));
    }
    std::fs::write(&cfg, text).unwrap();
    (scene, cfg)
}

/// A second hub of its own (same script, its own state dir and port), stopped on drop.
struct PrivateHub {
    state: tempfile::TempDir,
    url: String,
}

impl PrivateHub {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/engines/websub.sh")
    }

    async fn start() -> PrivateHub {
        let state = tempfile::tempdir().unwrap();
        let out = tokio::process::Command::new("bash")
            .arg(Self::script())
            .arg("start")
            .env("WEBSUB_STATE_DIR", state.path())
            .env_remove("WEBSUB_PORT")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(state.path().join("env")).unwrap();
        let url = env
            .trim()
            .strip_prefix("export WEBSUB_HUB_URL=")
            .unwrap()
            .trim_matches('\'')
            .to_owned();
        PrivateHub { state, url }
    }

    async fn stop(&self) {
        let out = tokio::process::Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .env("WEBSUB_STATE_DIR", self.state.path())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateHub {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .env("WEBSUB_STATE_DIR", self.state.path())
            .output();
    }
}

#[tokio::test]
#[ignore = "needs the real hub: scripts/engines/websub.sh run -- cargo test ... -- --ignored"]
async fn real_websub_hub_down_leaves_the_source_to_polling() {
    if hub_url().is_none() {
        return;
    }
    let hub = PrivateHub::start().await;
    let (scene, cfg) = hub_scene(&hub.url, "4s", "1s", false).await;
    let d = start_daemon(&cfg).await;
    d.wait_push("live at the private hub", |p| p["state"] == "live")
        .await;
    // The hub goes away: the renewal fails, the lease runs out, and the source is polled at
    // its own interval again: an article appears without any push.
    hub.stop().await;
    let push = d.wait_push("push failed", |p| p["state"] == "failed").await;
    assert!(push["error"].is_string(), "{push}");
    let link = "https://real.example/polled";
    scene.feeds.publish("/feed", link, "Polled");
    scene.rx.wait_for(1).await;
    assert_eq!(delivered_links(&scene.rx), [link]);
    let before = scene.feeds.requests("/feed").len();
    eventually("polling continues", || {
        scene.feeds.requests("/feed").len() >= before + 2
    })
    .await;
    d.stop().await;
}

#[tokio::test]
#[ignore = "needs the real hub: scripts/engines/websub.sh run -- cargo test ... -- --ignored"]
async fn real_websub_hub_forgets_a_removed_source() {
    let Some(hub) = hub_url() else { return };
    let (scene, cfg) = hub_scene(&hub, "1h", "1h", true).await;
    let feed_url = scene.feeds.url("/feed");
    let d = start_daemon(&cfg).await;
    d.wait_push("live at the real hub", |p| p["state"] == "live")
        .await;
    let held = hub_callbacks(&hub, &feed_url).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].contains("/websub/"), "{held:?}");
    d.stop().await;

    // The source leaves the config: the next start unsubscribes, and the hub verifies it with
    // the old callback and drops it.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let cut = text.find("\n[[authors]]\nname = \"Rhea\"").unwrap();
    let rest = &text[cut + 1..];
    let end = rest[1..]
        .find("\n[[authors]]")
        .map_or(rest.len(), |i| i + 1);
    std::fs::write(&cfg, format!("{}{}", &text[..cut + 1], &rest[end..])).unwrap();
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("Rhea"));
    let d = start_daemon(&cfg).await;
    let mut left = held.clone();
    for _ in 0..200 {
        left = hub_callbacks(&hub, &feed_url).await;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left.is_empty(), "the hub still holds {left:?}");
    d.stop().await;
}

#[tokio::test]
#[ignore = "needs the real hub: scripts/engines/websub.sh run -- cargo test ... -- --ignored"]
async fn real_websub_hub_delivers_a_published_article_once_and_the_lease_is_renewed() {
    let Some(hub) = hub_url() else { return };
    let (scene, cfg) = hub_scene(&hub, "4s", "1h", false).await;
    let feed_url = scene.feeds.url("/feed");
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
