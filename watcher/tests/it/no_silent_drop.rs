//! no_silent_drop.rs: what the watcher finds is delivered once, never dropped on the way: a
//! source added to an author, an article whose content returns to an earlier revision, and RSS
//! items whose description is raw XHTML.

use watcher::poll::PollOutcome;

use crate::helpers::*;

const MEDIUM: &str = "medium-lizmarley.rss.xml";
const RUBEN: &str = "rubenerd-hugo.rss.xml";

/// Publishes `x` in feed A (`/a`, the Medium fixture) and in B (`/b`, another blog's feed that
/// lists it under a GUID of its own).
fn publish_in_both(scene: &Scene, x: &str) {
    scene.feeds.publish("/a", x, "X");
    let b = publish_rss(&fixture(RUBEN), x, "X").replace(
        &format!("<guid>{x}</guid>"),
        "<guid isPermaLink=\"false\">b-x</guid>",
    );
    scene.feeds.set_feed("/b", &b);
}

#[tokio::test]
async fn a_new_source_baseline_never_hides_an_older_source_new_article() {
    let scene = spawn_scene().await;
    scene.feeds.set_feed("/a", &fixture(MEDIUM));
    let cfg = scene.config(&[scene.author("Liz", &["/a"])]);
    let first = pass(&cfg).await;
    assert_eq!(
        first.polls[0].outcome,
        PollOutcome::Baseline { recorded: 10 }
    );

    // Article X appears in A and in a newly added source B (with its own GUID there).
    let x = "https://medium.com/@lizmarley/x-0001";
    publish_in_both(&scene, x);
    scene.config(&[scene.author("Liz", &["/a", "/b"])]);

    // `once`: only B is due (A was polled a moment ago): B's baseline records X.
    let w = open_watcher(&cfg);
    let due_only = w
        .once(watcher::watch::OnceOptions::default(), |_, _, _| {})
        .await
        .unwrap();
    drop(w);
    assert_eq!(due_only.polls.len(), 1, "only the new source is due");
    assert_eq!(due_only.polls[0].source.url, scene.feeds.url("/b"));
    assert!(matches!(
        due_only.polls[0].outcome,
        PollOutcome::Baseline { .. }
    ));
    assert!(scene.rx.received().is_empty());

    // `once --all`: A finds X, new to it: delivered, once.
    let all = pass(&cfg).await;
    assert!(all.problems().is_empty(), "{:?}", all.problems());
    assert_eq!(delivered_links(&scene.rx), [x]);
    let again = pass(&cfg).await;
    assert!(again.deliveries.is_empty());
    assert_eq!(delivered_links(&scene.rx), [x], "exactly once");
}

#[tokio::test]
async fn an_article_both_sources_list_is_delivered_once() {
    let scene = spawn_scene().await;
    scene.feeds.set_feed("/a", &fixture(MEDIUM));
    scene.feeds.set_feed("/b", &fixture(RUBEN));
    let cfg = scene.config(&[scene.author("Liz", &["/a", "/b"])]);
    pass(&cfg).await;

    let x = "https://medium.com/@lizmarley/x-0002";
    publish_in_both(&scene, x);
    pass(&cfg).await;
    pass(&cfg).await;
    assert_eq!(delivered_links(&scene.rx), [x], "one article, one delivery");
}

#[tokio::test]
async fn a_new_source_that_rewrites_its_guids_triggers_nothing() {
    let scene = spawn_scene().await;
    scene.feeds.set_feed("/a", &fixture(RUBEN));
    scene.feeds.set_feed("/b", &fixture(MEDIUM));
    let cfg = scene.config(&[scene.author("Liz", &["/a"])]);
    pass(&cfg).await;
    scene.config(&[scene.author("Liz", &["/a", "/b"])]);
    pass(&cfg).await; // B's baseline
    let rewritten = fixture(MEDIUM).replace("https://medium.com/p/", "https://medium.com/p/v2-");
    scene.feeds.set_feed("/b", &rewritten);
    let report = pass(&cfg).await;
    assert!(report.deliveries.is_empty(), "{:?}", report.deliveries);
    assert!(scene.rx.received().is_empty());
}

#[tokio::test]
async fn content_that_returns_to_an_earlier_revision_is_delivered() {
    let t = spawn_one_author("Liz", MEDIUM).await;
    edit_config(
        &t.cfg,
        "batch_window = \"0s\"",
        "batch_window = \"0s\"\ntrigger_on_update = true",
    );
    let x = "https://medium.com/@lizmarley/x-0003";
    t.baseline_then_publish(x, "Version A").await;
    let mut ids = Vec::new();
    for (n, title) in ["Version A", "Version B", "Version A"].iter().enumerate() {
        t.publish(x, title);
        let report = pass(&t.cfg).await;
        assert_eq!(
            report.deliveries.len(),
            1,
            "pass {n} ({title}) delivers: {report:?}"
        );
        ids.push(report.deliveries[0].batch_id.clone());
    }
    assert_eq!(t.rx.received().len(), 3);
    assert_ne!(ids[0], ids[2], "a later revision is a new batch");
    let status = status(&t.cfg).await;
    let revisions: Vec<u32> = status.deliveries.iter().map(|d| d.revision).collect();
    assert_eq!(revisions, [0, 1, 2]);
    let table = status.render(chrono::Utc::now());
    assert!(table.contains("revision 2"), "{table}");
    assert_eq!(status.staged, 0, "nothing left behind");
}

/// A hand-made fixture of `testdata/feeds/` (see its README).
fn feed_fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/feeds")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn raw_xhtml_descriptions_keep_items_that_share_one_link_apart() {
    let scene = spawn_scene().await;
    let feed = feed_fixture("raw-xhtml-descriptions.rss.xml");
    scene.feeds.set_feed("/now", &feed);
    let cfg = scene.one_author_config("Jamie Okafor", &["/now"]);
    let first = pass(&cfg).await;
    assert_eq!(
        first.polls[0].outcome,
        PollOutcome::Baseline { recorded: 6 },
        "six notes, six items"
    );

    // A new note: no title, no GUID, the same link, its text in raw XHTML.
    let note = "<item><link>https://jamie-okafor.example.net/now/</link>\
                <pubDate>Tue, 24 Nov 2026 07:12:00 +0000</pubDate>\
                <description><p>Run #15 is <em>training</em> now.</p></description></item>\n    ";
    let at = feed.find("<item>").unwrap();
    scene
        .feeds
        .set_feed("/now", &format!("{}{note}{}", &feed[..at], &feed[at..]));
    let second = pass(&cfg).await;
    assert!(second.problems().is_empty(), "{:?}", second.problems());
    assert_eq!(
        delivered_links(&scene.rx),
        ["https://jamie-okafor.example.net/now/"],
        "the new note is delivered"
    );
}
