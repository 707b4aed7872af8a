//! websub.rs: push through a hub double (a hand-written hub on 127.0.0.1:0 whose every answer the
//! test picks) and the daemon in-process with its real callback server: subscribe and verify,
//! signed deliveries reaching the trigger exactly once, tampered and unsigned ones counted and
//! ignored, unknown callbacks and wrong topics answered 404, a denial and a failing hub leaving
//! the source to polling (shown in `status`), a synchronous hub, lease renewal with a fresh
//! callback, `push = false` unsubscribing, and a poll finding an item no push announced marking
//! push `missed` (status, dashboard, metrics). The real hub (Flask-WebSub) is `websub_hub.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// How the double answers subscription requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HubMode {
    /// 202, then the verification; the lease it grants (`None`: the one asked).
    Async { lease: Option<u64> },
    /// The verification first, then 204 (PuSHPress).
    Sync,
    /// 202, then `hub.mode=denied`.
    Deny,
    /// 500 to everything.
    Broken,
}

/// One subscription request the double got, and how its verification went.
#[derive(Clone, Debug)]
pub struct Asked {
    pub form: HashMap<String, Vec<String>>,
    /// The verification's answer: status and body (`None`: not verified yet).
    pub verified: Option<(u16, String)>,
    pub challenge: String,
}

impl Asked {
    pub fn get(&self, key: &str) -> &str {
        self.form
            .get(key)
            .and_then(|v| v.first())
            .map_or("", String::as_str)
    }
    pub fn ok(&self) -> bool {
        self.verified
            .as_ref()
            .is_some_and(|(s, b)| *s == 200 && *b == self.challenge)
    }
}

#[derive(Clone)]
pub struct HubDouble {
    pub url: String,
    mode: Arc<Mutex<HubMode>>,
    asked: Arc<Mutex<Vec<Asked>>>,
    http: reqwest::Client,
}

impl HubDouble {
    pub async fn spawn(mode: HubMode) -> HubDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hub = HubDouble {
            url: format!("http://{}/hub", listener.local_addr().unwrap()),
            mode: Arc::new(Mutex::new(mode)),
            asked: Arc::default(),
            http: reqwest::Client::new(),
        };
        let app = axum::Router::new()
            .route("/hub", axum::routing::post(hub_request))
            .with_state(hub.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        hub
    }

    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }

    /// The verified subscribe requests whose callback has no verified unsubscribe.
    pub fn live(&self) -> Vec<Asked> {
        let asked = self.asked();
        let ended: Vec<&str> = (asked.iter())
            .filter(|a| a.get("hub.mode") == "unsubscribe" && a.ok())
            .map(|a| a.get("hub.callback"))
            .collect();
        (asked.iter())
            .filter(|a| a.get("hub.mode") == "subscribe" && a.ok())
            .filter(|a| !ended.contains(&a.get("hub.callback")))
            .cloned()
            .collect()
    }

    /// POSTs `body` to `callback` with `signature` (if any); the status the callback answered.
    pub async fn deliver(&self, callback: &str, body: &str, signature: Option<String>) -> u16 {
        let mut req = (self.http.post(callback))
            .header("content-type", "application/rss+xml")
            .body(body.to_owned());
        if let Some(sig) = signature {
            req = req.header("x-hub-signature", sig);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// A verification request as a hub sends it; the status and body it got.
    pub async fn verify(&self, callback: &str, query: &[(&str, &str)]) -> (u16, String) {
        let resp = self.http.get(callback).query(query).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

async fn hub_request(State(hub): State<HubDouble>, body: String) -> impl IntoResponse {
    let mut form: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
        form.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let mode = *hub.mode.lock().unwrap();
    if mode == HubMode::Broken {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let index = {
        let mut asked = hub.asked.lock().unwrap();
        let challenge = format!("challenge-{}", asked.len());
        asked.push(Asked {
            form,
            verified: None,
            challenge,
        });
        asked.len() - 1
    };
    let verification = {
        let hub = hub.clone();
        async move {
            let a = hub.asked()[index].clone();
            let lease = match mode {
                HubMode::Async { lease: Some(l) } => l.to_string(),
                _ => a.get("hub.lease_seconds").to_owned(),
            };
            let hub_mode = match (mode, a.get("hub.mode")) {
                (HubMode::Deny, "subscribe") => "denied",
                (_, m) => m,
            };
            let query = [
                ("hub.mode", hub_mode),
                ("hub.topic", a.get("hub.topic")),
                ("hub.challenge", a.challenge.as_str()),
                ("hub.lease_seconds", lease.as_str()),
                ("hub.reason", "not on this hub"),
            ];
            let got = hub.verify(a.get("hub.callback"), &query).await;
            hub.asked.lock().unwrap()[index].verified = Some(got);
        }
    };
    if mode == HubMode::Sync {
        verification.await;
        return StatusCode::NO_CONTENT;
    }
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        verification.await
    });
    StatusCode::ACCEPTED
}

/// An RSS feed naming `hub` and itself (`self_url`) in the channel, with one item.
fn feed_naming(hub: &str, self_url: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>Push</title>
<link>https://push.example/</link>
<atom:link rel="hub" href="{hub}"/>
<atom:link rel="self" href="{self_url}"/>
<item><title>First</title><link>https://push.example/first</link><guid>https://push.example/first</guid></item>
</channel></rss>"#
    )
}

pub struct PushScene {
    pub scene: Scene,
    pub hub: HubDouble,
    pub cfg: PathBuf,
    pub feed_url: String,
    pub callback_base: String,
}

/// A feed at `/feed` naming the hub double, and a config with `[websub]` on a free port.
pub async fn push_scene(mode: HubMode, source_extra: &str) -> PushScene {
    let scene = spawn_scene().await;
    let hub = HubDouble::spawn(mode).await;
    let feed_url = scene.feeds.url("/feed");
    scene
        .feeds
        .set_feed("/feed", &feed_naming(&hub.url, &feed_url));
    let listen = format!("127.0.0.1:{}", free_port());
    let callback_base = format!("http://{listen}");
    let extra = format!(
        "\n[websub]\ncallback_url = \"{callback_base}\"\nlisten = \"{listen}\"\nlease = \"1h\"\n"
    );
    let cfg = write_config(scene.dir.path(), &[], &scene.rx.url(), &extra);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[[authors]]\nname = \"Pia\"\nfeeds = [{{ url = \"{feed_url}\", interval = \"1h\"{source_extra} }}]\n"
    ));
    std::fs::write(&cfg, text).unwrap();
    PushScene {
        scene,
        hub,
        cfg,
        feed_url,
        callback_base,
    }
}

/// The daemon in-process until the token is cancelled.
pub struct Daemon {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), watcher::error::WatcherError>>,
    pub listen: String,
}

pub async fn start_daemon(cfg: &Path) -> Daemon {
    let listen = load(cfg).watcher.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(open_watcher(cfg).run(listener, cancel.clone()));
    wait_healthy(&listen.to_string()).await;
    Daemon {
        cancel,
        task,
        listen: listen.to_string(),
    }
}

impl Daemon {
    pub async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }

    /// The `push` of the source at `/feed` in the daemon's `/status`.
    pub async fn push_status(&self) -> serde_json::Value {
        let status: serde_json::Value = reqwest::get(format!("http://{}/status", self.listen))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sources = status["sources"].as_array().unwrap();
        let feed = sources
            .iter()
            .find(|s| s["url"].as_str().unwrap().ends_with("/feed"));
        feed.map_or(serde_json::Value::Null, |s| s["push"].clone())
    }

    /// The daemon's `/status` JSON.
    pub async fn status(&self) -> serde_json::Value {
        (reqwest::get(format!("http://{}/status", self.listen))
            .await
            .unwrap())
        .json()
        .await
        .unwrap()
    }

    /// The daemon's `/metrics` text.
    pub async fn metrics(&self) -> String {
        (reqwest::get(format!("http://{}/metrics", self.listen))
            .await
            .unwrap())
        .text()
        .await
        .unwrap()
    }

    /// The dashboard's "Poll now" for the scene's source.
    pub async fn poll_now(&self, feed_url: &str) {
        let r = reqwest::Client::new()
            .post(format!("http://{}/dashboard/poll", self.listen))
            .query(&[("source", feed_url), ("author", "Pia")])
            .header(watcher::control::HEADER, "1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// Waits until the source's push status satisfies `done`.
    pub async fn wait_push(
        &self,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..600 {
            let push = self.push_status().await;
            if done(&push) {
                return push;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting until {what}: {}",
            self.push_status().await
        );
    }
}

async fn wait_for_live(hub: &HubDouble, n: usize) -> Vec<Asked> {
    for _ in 0..600 {
        let live = hub.live();
        if live.len() >= n {
            return live;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no live subscription at the hub: {:?}", hub.asked());
}

#[tokio::test]
async fn signed_deliveries_poll_the_source_and_reach_the_trigger_once() {
    let s = push_scene(HubMode::Async { lease: None }, "").await;
    let d = start_daemon(&s.cfg).await;
    let live = wait_for_live(&s.hub, 1).await;
    let sub = &live[0];
    // The topic is the feed's rel=self; the callback is unguessable; the secret is random;
    // sync verification is offered for older hubs.
    assert_eq!(sub.get("hub.topic"), s.feed_url);
    let callback = sub.get("hub.callback").to_owned();
    assert!(
        callback.starts_with(&format!("{}/websub/", s.callback_base)),
        "{callback}"
    );
    assert_eq!(callback.rsplit('/').next().unwrap().len(), 48);
    let secret = sub.get("hub.secret").to_owned();
    assert_eq!(secret.len(), 64);
    assert_eq!(sub.form["hub.verify"], ["sync", "async"]);
    assert_eq!(sub.get("hub.lease_seconds"), "3600");
    let push = d.wait_push("live", |p| p["state"] == "live").await;
    assert!(push["lease_until"].is_string(), "{push}");
    // While push is live, the next poll is the safety poll (6h, not the 1h interval).
    let status = d.status().await;
    let why = status["sources"][0]["next_due_reason"].as_str().unwrap();
    assert!(why.starts_with("push live: safety poll 6h"), "{status}");

    // Spec corners: a replayed or foreign verification, an unknown callback, other paths.
    let topic = s.feed_url.as_str();
    let replay = [
        ("hub.mode", "subscribe"),
        ("hub.topic", topic),
        ("hub.challenge", "x"),
    ];
    assert_eq!(
        s.hub.verify(&callback, &replay).await.0,
        404,
        "already live"
    );
    let unknown = format!("{}/websub/{}", s.callback_base, "ab".repeat(24));
    assert_eq!(s.hub.verify(&unknown, &replay).await.0, 404);
    let foreign = [
        ("hub.mode", "unsubscribe"),
        ("hub.topic", topic),
        ("hub.challenge", "x"),
    ];
    assert_eq!(
        s.hub.verify(&callback, &foreign).await.0,
        404,
        "nothing pending"
    );
    let other = format!("{}/status", s.callback_base);
    assert_eq!(reqwest::get(&other).await.unwrap().status().as_u16(), 404);
    assert_eq!(
        s.hub.deliver(&unknown, "<rss/>", None).await,
        404,
        "unknown callback"
    );

    // Tampered and unsigned deliveries: answered like good ones, counted, not acted on.
    let polls_before = s.scene.feeds.requests("/feed").len();
    let link = "https://push.example/pushed";
    s.scene.feeds.publish("/feed", link, "Pushed");
    let fat = s.scene.feeds.feed("/feed").unwrap();
    let good = watcher::websub::signature::sign_sha256(secret.as_bytes(), fat.as_bytes());
    let tampered = watcher::websub::signature::sign_sha256(b"guessed", fat.as_bytes());
    assert_eq!(s.hub.deliver(&callback, &fat, Some(tampered)).await, 202);
    assert_eq!(s.hub.deliver(&callback, &fat, None).await, 202);
    d.wait_push("bad deliveries counted", |p| p["bad_deliveries"] == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.scene.feeds.requests("/feed").len(),
        polls_before,
        "not acted on"
    );
    assert!(s.scene.rx.received().is_empty());

    // A good one: the source is polled through the normal path and the article delivered.
    assert_eq!(
        s.hub.deliver(&callback, &fat, Some(good.clone())).await,
        202
    );
    s.scene.rx.wait_for(1).await;
    assert_eq!(delivered_links(&s.scene.rx), [link]);
    // The same fat ping again: polled again, nothing new, nothing delivered twice.
    let polls = s.scene.feeds.requests("/feed").len();
    assert_eq!(s.hub.deliver(&callback, &fat, Some(good)).await, 202);
    eventually("the second push is polled", || {
        s.scene.feeds.requests("/feed").len() > polls
    })
    .await;
    let push = d.wait_push("two pushes", |p| p["pushes"] == 2).await;
    assert!(push["last_push"].is_string(), "{push}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        delivered_links(&s.scene.rx),
        [link],
        "delivered exactly once"
    );
    // The metrics count the deliveries by outcome and time the one that reached the trigger.
    let metrics = d.metrics().await;
    for line in [
        "watcher_push_deliveries_total{outcome=\"accepted\"} 2",
        "watcher_push_deliveries_total{outcome=\"bad_signature\"} 2",
        "watcher_push_deliveries_total{outcome=\"unknown_callback\"} 1",
        "watcher_push_to_trigger_seconds_count 1",
        "watcher_push_sources{state=\"live\"} 1",
    ] {
        assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");
    }
    d.stop().await;
}

#[tokio::test]
async fn a_poll_finding_an_item_no_push_announced_marks_push_missed() {
    let s = push_scene(HubMode::Async { lease: None }, "").await;
    let d = start_daemon(&s.cfg).await;
    let live = wait_for_live(&s.hub, 1).await;
    let (callback, secret) = (live[0].get("hub.callback"), live[0].get("hub.secret"));
    d.wait_push("live", |p| p["state"] == "live").await;
    // A push with nothing new: polled, nothing found, still live.
    let polls = s.scene.feeds.requests("/feed").len();
    let fat = s.scene.feeds.feed("/feed").unwrap();
    let sig = watcher::websub::signature::sign_sha256(secret.as_bytes(), fat.as_bytes());
    assert_eq!(s.hub.deliver(callback, &fat, Some(sig)).await, 202);
    eventually("the push is polled", || {
        s.scene.feeds.requests("/feed").len() > polls
    })
    .await;
    // An article the hub never announced, found by a poll push did not ask for.
    let link = "https://push.example/unannounced";
    s.scene.feeds.publish("/feed", link, "Unannounced");
    d.poll_now(&s.feed_url).await;
    let push = d.wait_push("missed", |p| p["state"] == "missed").await;
    assert_eq!(push["items"], 1, "{push}");
    s.scene.rx.wait_for(1).await;
    assert_eq!(
        delivered_links(&s.scene.rx),
        [link],
        "delivered all the same"
    );
    // Normal polling resumes: the next poll is the source's own, not the safety poll.
    let status = d.status().await;
    let why = status["sources"][0]["next_due_reason"].as_str().unwrap();
    assert!(!why.contains("push live"), "{status}");
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("watcher_push_sources{state=\"missed\"} 1"),
        "{metrics}"
    );
    let page = reqwest::get(format!("http://{}/dashboard/live", d.listen))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("push MISSED"), "{page}");
    d.stop().await;
    let table = watcher_cmd(&s.cfg).arg("status").output().await.unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("push MISSED: a safety poll")
            && table.contains("found 1 item(s) no push announced"),
        "{table}"
    );
}

#[tokio::test]
async fn a_denial_or_a_broken_hub_leaves_the_source_to_polling() {
    let s = push_scene(HubMode::Deny, "").await;
    let d = start_daemon(&s.cfg).await;
    let push = d.wait_push("denied", |p| p["state"] == "denied").await;
    assert_eq!(push["reason"], "not on this hub");
    let denied = &s.hub.asked()[0];
    assert_eq!(
        denied.verified,
        Some((200, String::new())),
        "a denial is acknowledged"
    );
    d.stop().await;
    let table = watcher_cmd(&s.cfg).arg("status").output().await.unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("push DENIED by the hub (not on this hub): polled instead"),
        "{table}"
    );

    let s = push_scene(HubMode::Broken, "").await;
    let d = start_daemon(&s.cfg).await;
    let push = d.wait_push("failed", |p| p["state"] == "failed").await;
    assert!(
        push["error"].as_str().unwrap().contains("HTTP 500"),
        "{push}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_synchronous_hub_verifies_before_it_answers() {
    let s = push_scene(HubMode::Sync, "").await;
    let d = start_daemon(&s.cfg).await;
    wait_for_live(&s.hub, 1).await;
    d.wait_push("live", |p| p["state"] == "live").await;
    d.stop().await;
}

#[tokio::test]
async fn a_short_lease_is_renewed_with_a_fresh_callback_and_the_old_one_ended() {
    let s = push_scene(HubMode::Async { lease: Some(6) }, "").await;
    let d = start_daemon(&s.cfg).await;
    let first = wait_for_live(&s.hub, 1).await[0].clone();
    let old = first.get("hub.callback").to_owned();
    // Near the lease's end (2s before it: the least margin), a new subscription with a new
    // callback and secret; the old one is ended once the new one is verified.
    eventually("the old subscription is ended", || {
        s.hub
            .asked()
            .iter()
            .any(|a| a.get("hub.mode") == "unsubscribe" && a.get("hub.callback") == old && a.ok())
    })
    .await;
    let live = s.hub.live();
    assert_eq!(live.len(), 1, "{:?}", s.hub.asked());
    assert_ne!(live[0].get("hub.callback"), old);
    assert_ne!(live[0].get("hub.secret"), first.get("hub.secret"));
    let push = d.wait_push("live", |p| p["state"] == "live").await;
    assert!(push["lease_until"].is_string());
    d.stop().await;
}

#[tokio::test]
async fn push_false_unsubscribes() {
    let s = push_scene(HubMode::Async { lease: None }, "").await;
    let d = start_daemon(&s.cfg).await;
    let callback = wait_for_live(&s.hub, 1).await[0]
        .get("hub.callback")
        .to_owned();
    d.stop().await;
    edit_config(
        &s.cfg,
        "interval = \"1h\" }",
        "interval = \"1h\", push = false }",
    );
    let d = start_daemon(&s.cfg).await;
    eventually("no live subscription is left", || s.hub.live().is_empty()).await;
    let asked = s.hub.asked();
    let unsub = asked
        .iter()
        .find(|a| a.get("hub.mode") == "unsubscribe")
        .expect("unsubscribed");
    assert_eq!(unsub.get("hub.callback"), callback);
    assert!(
        unsub.ok(),
        "the unsubscribe verification is answered: {unsub:?}"
    );
    assert_eq!(d.push_status().await, serde_json::Value::Null);
    d.stop().await;
}
