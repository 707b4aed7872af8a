//! hold.rs: floods are held, not triggered. A feed that suddenly shows many new items (rotating
//! GUIDs, a per-request token in every link, a CMS migration) has them recorded as known and held;
//! `watcher held` lists them, `release` stages them for delivery (exactly once), `discard` drops
//! them, also through the running daemon. Baselines, a first poll with `backfill` and sources
//! with `hold = false` are not held. Real feed server, real sled dirs, the real binary.

use std::path::Path;
use std::time::Duration;

use crate::helpers::*;

/// The fixture feed with `n` new items on top, their links `https://rubenerd.com/{tag}-{i}/`.
fn flooded(feed: &str, tag: &str, n: usize) -> String {
    (0..n).fold(feed.to_string(), |feed, i| {
        publish_rss(
            &feed,
            &format!("https://rubenerd.com/{tag}-{i}/"),
            &format!("{tag} {i}"),
        )
    })
}

/// Runs the watcher binary with `args`; returns its exit code and stdout (stderr on failure).
async fn cli(cfg: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = watcher_cmd(cfg).args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// How many items `status` shows held for the source of `author` (`None`: no such source, or
/// no count).
fn held_in(status: &serde_json::Value, author: &str) -> Option<u64> {
    status["sources"]
        .as_array()?
        .iter()
        .find(|s| s["author"] == author)?["held"]
        .as_u64()
}

/// How many items `status` shows held for the source of `author`.
async fn held_of(cfg: &Path, author: &str) -> u64 {
    let status = status_json(cfg).await;
    held_in(&status, author).unwrap_or_else(|| panic!("no held count for {author} in {status}"))
}

/// One author, its baseline recorded, then a flood of 25 new items served.
async fn flooded_source() -> OneAuthor {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    pass(&t.cfg).await;
    t.feeds
        .set_feed(FEED_PATH, &flooded(&t.original, "flood", 25));
    t
}

#[tokio::test]
async fn a_flood_is_held_not_delivered_and_later_items_join_the_hold() {
    let t = flooded_source().await;
    let report = pass(&t.cfg).await;
    assert!(report.deliveries.is_empty(), "{:?}", report.deliveries);
    assert!(t.rx.received().is_empty(), "a flood started a run");
    assert_eq!(held_of(&t.cfg, "Ruben").await, 25);

    let (code, table) = cli(&t.cfg, &["status"]).await;
    assert_eq!(code, Some(0), "{table}");
    assert!(table.contains("HELD") && table.contains("25"), "{table}");
    let (code, held) = cli(&t.cfg, &["held"]).await;
    assert_eq!(code, Some(0), "{held}");
    assert!(held.contains("https://rubenerd.com/flood-24/"), "{held}");
    assert!(held.contains(&t.feeds.url(FEED_PATH)), "{held}");

    // The held items are known: the same feed again finds nothing new.
    let again = pass(&t.cfg).await;
    assert!(again.deliveries.is_empty());
    assert_eq!(held_of(&t.cfg, "Ruben").await, 25);

    // One genuinely new item of a held source joins the hold.
    t.feeds
        .publish(FEED_PATH, "https://rubenerd.com/later/", "Later");
    let later = pass(&t.cfg).await;
    assert!(later.deliveries.is_empty(), "{:?}", later.deliveries);
    assert!(t.rx.received().is_empty());
    assert_eq!(held_of(&t.cfg, "Ruben").await, 26);
}

#[tokio::test]
async fn release_delivers_the_held_items_exactly_once() {
    let t = flooded_source().await;
    pass(&t.cfg).await;
    let url = t.feeds.url(FEED_PATH);
    let (code, out) = cli(&t.cfg, &["release", &url]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("released 25"), "{out}");
    assert_eq!(held_of(&t.cfg, "Ruben").await, 0);

    let report = pass(&t.cfg).await;
    assert_eq!(report.deliveries.len(), 1, "{:?}", report.deliveries);
    let mut links = delivered_links(&t.rx);
    links.sort();
    let mut want: Vec<String> = (0..25)
        .map(|i| format!("https://rubenerd.com/flood-{i}/"))
        .collect();
    want.sort();
    assert_eq!(links, want);

    // Nothing is delivered twice, and releasing again finds nothing.
    let again = pass(&t.cfg).await;
    assert!(again.deliveries.is_empty());
    assert_eq!(t.rx.received().len(), 1);
    let (code, out) = cli(&t.cfg, &["release", "--all"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("released 0"), "{out}");
    assert_eq!(t.rx.received().len(), 1);
}

#[tokio::test]
async fn discard_drops_the_held_items_for_good() {
    let t = flooded_source().await;
    pass(&t.cfg).await;
    let (code, out) = cli(&t.cfg, &["discard", "--all"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("discarded 25"), "{out}");
    assert_eq!(held_of(&t.cfg, "Ruben").await, 0);
    let report = pass(&t.cfg).await;
    assert!(report.deliveries.is_empty());
    assert!(t.rx.received().is_empty());
    let status = status_json(&t.cfg).await;
    assert_eq!(status["sources"][0]["items_known"], 35, "{status}");
    // Naming a source that holds nothing is an error that says where to look.
    let (code, out) = cli(&t.cfg, &["discard", "https://nowhere.example/feed"]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("watcher held"), "{out}");
}

#[tokio::test]
async fn hold_false_delivers_a_flood_while_other_sources_are_held() {
    let scene = spawn_scene().await;
    for path in ["/open", "/guarded"] {
        scene
            .feeds
            .set_feed(path, &fixture("rubenerd-hugo.rss.xml"));
    }
    let cfg = scene.config(&[
        scene.author("Open", &["/open"]),
        scene.author("Guarded", &["/guarded"]),
    ]);
    let open = scene.feeds.url("/open");
    edit_config(
        &cfg,
        &format!("feeds = [\"{open}\"]"),
        &format!("feeds = [{{ url = \"{open}\", hold = false }}]"),
    );
    let (code, out) = cli(&cfg, &["check"]).await;
    assert_eq!(code, Some(0), "{out}");
    pass(&cfg).await;
    for path in ["/open", "/guarded"] {
        let feed = scene.feeds.feed(path).unwrap();
        scene.feeds.set_feed(path, &flooded(&feed, "flood", 25));
    }
    let report = pass(&cfg).await;
    assert_eq!(report.deliveries.len(), 1, "{:?}", report.deliveries);
    assert_eq!(delivered_links(&scene.rx).len(), 25);
    assert_eq!(
        scene.rx.received()[0].body["config"]["parameters"]["user_full_name"],
        "Open"
    );
    assert_eq!(held_of(&cfg, "Guarded").await, 25);
    assert_eq!(held_of(&cfg, "Open").await, 0);

    // Thresholds are validated by `check`, naming the key.
    edit_config(&cfg, "hold = false", "hold_share = 1.5");
    let (code, out) = cli(&cfg, &["check"]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("hold_share"), "{out}");
}

#[tokio::test]
async fn a_first_poll_with_backfill_is_not_held_and_dry_run_shows_the_count() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    edit_config(
        &t.cfg,
        "name = \"Ruben\"",
        "name = \"Ruben\"\nbackfill = true",
    );
    // All 10 items are new: 100% of what the feed returned, which would be held but for the
    // user's consent.
    let (code, out) = cli(&t.cfg, &["once", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("10 new, 0 held"), "{out}");
    let report = pass(&t.cfg).await;
    assert_eq!(report.deliveries.len(), 1, "{:?}", report.deliveries);
    assert_eq!(delivered_links(&t.rx).len(), 10);
    assert_eq!(held_of(&t.cfg, "Ruben").await, 0);
    // Later polls are guarded as usual.
    let feed = t.feeds.feed(FEED_PATH).unwrap();
    t.feeds.set_feed(FEED_PATH, &flooded(&feed, "flood", 25));
    let report = pass(&t.cfg).await;
    assert!(report.deliveries.is_empty());
    assert_eq!(held_of(&t.cfg, "Ruben").await, 25);
}

#[tokio::test]
async fn a_small_feed_that_turns_over_almost_entirely_is_held() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    pass(&t.cfg).await;
    // 6 new items (not above 20) but 6 of the 16 returned is under 80%: delivered.
    let some = flooded(&t.original, "some", 6);
    t.feeds.set_feed(FEED_PATH, &some);
    let report = pass(&t.cfg).await;
    assert_eq!(report.deliveries.len(), 1);
    // The feed replaced by 8 items of which 7 are new (87%): held.
    let small = flooded(&some, "turn", 7);
    let cut = small
        .match_indices("<item>")
        .nth(8)
        .map(|(i, _)| i)
        .unwrap();
    let end = small.rfind("</channel>").unwrap();
    t.feeds
        .set_feed(FEED_PATH, &format!("{}{}", &small[..cut], &small[end..]));
    let report = pass(&t.cfg).await;
    assert!(report.deliveries.is_empty(), "{:?}", report.deliveries);
    assert_eq!(held_of(&t.cfg, "Ruben").await, 7);
}

#[tokio::test]
async fn a_source_holding_over_1000_items_is_polled_at_max_interval() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    pass(&t.cfg).await;
    t.feeds
        .set_feed(FEED_PATH, &flooded(&t.original, "many", 1001));
    let report = pass(&t.cfg).await;
    assert!(report.deliveries.is_empty());
    let next = &report.polls[0].next;
    let max = load(&t.cfg).watcher.max_interval;
    assert_eq!(next.wait, max, "{next:?}");
    assert!(next.reason.contains("held"), "{next:?}");
    assert_eq!(held_of(&t.cfg, "Ruben").await, 1001);
    // The list shows 50 per source; JSON has every one.
    let (code, table) = cli(&t.cfg, &["held"]).await;
    assert_eq!(code, Some(0), "{table}");
    assert!(table.contains("... and 951 more"), "{table}");
    assert!(table.lines().count() < 60, "{table}");
    let (code, json) = cli(&t.cfg, &["held", "--json"]).await;
    assert_eq!(code, Some(0), "{json}");
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list[0]["items"].as_array().unwrap().len(), 1001);
}

/// Waits until `status` (through the daemon) shows `n` items held for `author`.
async fn wait_held(cfg: &Path, author: &str, n: u64) {
    for _ in 0..200 {
        if held_in(&status_json(cfg).await, author) == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{author} never showed {n} held items");
}

#[tokio::test]
async fn held_release_and_discard_go_through_the_running_daemon() {
    let t = flooded_source().await;
    // Polled every second: without the feed's `<ttl>` (30 minutes).
    let no_ttl = t.original.replace("<ttl>30</ttl>", "");
    assert_ne!(no_ttl, t.original);
    t.feeds.set_feed(FEED_PATH, &flooded(&no_ttl, "flood", 25));
    edit_config(&t.cfg, "interval = \"30m\"", "interval = \"1s\"");
    let listen = load(&t.cfg).watcher.listen.to_string();
    let mut daemon = watcher_cmd(&t.cfg).arg("run").spawn().unwrap();
    wait_healthy(&listen).await;
    wait_held(&t.cfg, "Ruben", 25).await;
    assert!(t.rx.received().is_empty(), "the daemon delivered a flood");

    // The daemon holds the store: the three commands go through its endpoint.
    let (code, held) = cli(&t.cfg, &["held"]).await;
    assert_eq!(code, Some(0), "{held}");
    assert!(held.contains("https://rubenerd.com/flood-0/"), "{held}");
    let (code, out) = cli(&t.cfg, &["release", "--all"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("released 25"), "{out}");
    t.rx.wait_for(1).await;
    assert_eq!(delivered_links(&t.rx).len(), 25);

    // A second flood is held again, and discarded through the daemon.
    let feed = t.feeds.feed(FEED_PATH).unwrap();
    t.feeds.set_feed(FEED_PATH, &flooded(&feed, "second", 30));
    wait_held(&t.cfg, "Ruben", 30).await;
    let (code, out) = cli(&t.cfg, &["discard", &t.feeds.url(FEED_PATH)]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("discarded 30"), "{out}");
    wait_held(&t.cfg, "Ruben", 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    stop_with_sigterm(&mut daemon).await;
    assert_eq!(
        t.rx.received().len(),
        1,
        "released once, the discarded never"
    );
}
