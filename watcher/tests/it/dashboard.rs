//! dashboard.rs: the dashboard at `/` on a real daemon's endpoint: a held item whose title is
//! hostile HTML shows escaped; "Release", "Poll now" and "Run now" act (a double "Run now" with one
//! form key reaches the receiver once, though a webhook receiver does not deduplicate); a batch's
//! config is viewable, no other file is; the endpoint's guard covers the page's routes; a restart
//! keeps the runs started from the page, and their keys.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

const HOSTILE: &str = r#"<script>alert("pwned")</script><img src=x onerror=alert(1)>"#;

fn header() -> (&'static str, &'static str) {
    (watcher::control::HEADER, "1")
}

#[tokio::test]
async fn the_page_escapes_a_hostile_title_and_its_buttons_act() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    // Two new items at once are a flood, so the hostile title shows among held items.
    edit_config(
        &t.cfg,
        "batch_window = \"0s\"",
        "batch_window = \"0s\"\nhold_above = 1",
    );
    pass(&t.cfg).await;
    let two = |a: &str, b: &str| {
        let one = publish_rss(&t.original, &format!("https://rubenerd.com/{a}/"), a);
        t.feeds.set_feed(
            FEED_PATH,
            &publish_rss(&one, &format!("https://rubenerd.com/{b}/"), b),
        );
    };
    two(HOSTILE, "plain");
    pass(&t.cfg).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cancel = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(open_watcher(&t.cfg).run(listener, cancel.clone()));
    wait_healthy(&addr).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let get = |path: &str| {
        let request = http.get(url(path));
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            let csp = r
                .headers()
                .get("content-security-policy")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, csp, r.text().await.unwrap())
        }
    };
    let post = |path: &str, form: &[(&str, &str)]| {
        let (name, value) = header();
        let request = http.post(url(path)).header(name, value).form(form);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };

    let (status, csp, page) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(csp.unwrap().contains("script-src 'self'"));
    assert!(page.contains("Ruben") && page.contains("HELD 2"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "the title shows escaped: {page}"
    );
    assert!(
        !page.contains("<script>alert") && !page.contains("<img src=x"),
        "{page}"
    );

    // The page's routes sit behind the endpoint's guard.
    let feed = t.feeds.url(FEED_PATH);
    let query = format!("source={feed}&author=Ruben");
    let bare = http
        .post(url(&format!("/release?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bare.status(),
        StatusCode::FORBIDDEN,
        "a POST without the header"
    );
    let rebound = http
        .get(url("/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN, "a rebound Host");

    // "Release" (the endpoint's own action): the daemon delivers the item, once.
    let (status, said) = post(&format!("/release?{query}"), &[]).await;
    assert_eq!(
        (status, &said["released"]),
        (StatusCode::OK, &serde_json::json!(2)),
        "{said}"
    );
    t.rx.wait_for(1).await;
    let batch = t.rx.received()[0].body["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, live) = get("/dashboard/live").await;
    assert!(live.contains(&format!(r#"data-batch="{batch}""#)), "{live}");
    assert!(
        live.contains(r#"href="https://rubenerd.com/plain/""#),
        "{live}"
    );
    assert!(!live.contains("<script>alert"), "{live}");
    let (status, _, config) = get(&format!("/dashboard/config?batch={batch}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(config.contains("https://rubenerd.com/plain/"), "{config}");
    let (status, _, _) = get("/dashboard/config?batch=../../../etc/passwd").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // "Run now" twice with one form key (the latest generated config): one delivery.
    let (_, _, page) = get("/").await;
    let key = page
        .split(r#"name="key" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let generated = page
        .split(r#"<option value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert!(
        generated.starts_with("digital_data_etl_ruben_"),
        "{generated}"
    );
    let form = [("key", key.as_str()), ("config", generated.as_str())];
    let ((s1, a), (s2, b)) =
        tokio::join!(post("/dashboard/run", &form), post("/dashboard/run", &form));
    assert!(s1.is_success() && s2.is_success(), "{a} {b}");
    assert_eq!(a["run"], b["run"]);
    assert_ne!(a["new"], b["new"], "one of the two started it: {a} {b}");
    t.rx.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        t.rx.keys().iter().filter(|k| **k == key).count(),
        1,
        "{:?}",
        t.rx.keys()
    );
    let links = &t.rx.received()[1].body["config"]["parameters"]["links"];
    assert!(
        links.to_string().contains("https://rubenerd.com/plain/"),
        "{links}"
    );
    let (status, said) = post(
        "/dashboard/run",
        &[("key", key.as_str()), ("config", "../x.yaml")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");

    // "Poll now": the source's next poll was 30 minutes out; a new (held) item shows at once.
    two("second", "third");
    let (status, said) = post(&format!("/dashboard/poll?{query}"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{said}");
    let mut seen = false;
    for _ in 0..300 {
        let (_, _, live) = get("/dashboard/live").await;
        if live.contains("HELD 2") && live.contains("second") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the poll ran and held the new item");
    let (status, said) = post(
        "/dashboard/poll?source=https://nowhere.example/feed&author=Ruben",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{said}");

    cancel.cancel();
    daemon.await.unwrap().unwrap();

    // After a restart the page still lists the run, and the same form posted again starts
    // nothing (the key is in the store, not only in the stopped daemon's memory).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cancel = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(open_watcher(&t.cfg).run(listener, cancel.clone()));
    wait_healthy(&addr).await;
    let url = |path: &str| format!("http://{addr}{path}");
    let live = http
        .get(url("/dashboard/live"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let run = a["run"].as_str().unwrap();
    let manual = live
        .split(r#"<section id="manual">"#)
        .nth(1)
        .unwrap_or_default();
    assert!(manual.contains(run), "the run {run} is listed: {live}");
    let (name, value) = header();
    let again = http
        .post(url("/dashboard/run"))
        .header(name, value)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(
        (&again["run"], &again["new"]),
        (&a["run"], &serde_json::json!(false)),
        "{again}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.rx.keys().iter().filter(|k| **k == key).count(), 1);
    cancel.cancel();
    daemon.await.unwrap().unwrap();
}
