//! link_identity.rs: one article, one identity across its URLs (README "Links and identity").
//! Medium and Substack articles reach an author through several feeds under several URLs: the
//! real captures of `testdata/corpus/public` plus synthetic twins of them (a Medium
//! publication's feed, a Substack's custom domain) are delivered once each, with links free of
//! tracking parameters; and a state dir written before the platform rules existed
//! (`tests/fixtures/state-v2-links/`, written by `write_links_fixture` with the binary of that
//! time) re-delivers nothing after the upgrade.

use std::path::{Path, PathBuf};

use crate::helpers::*;
use crate::store_fixture::{HOST, copy_dir, serve};

/// Where the upgrade fixture lives.
fn links_fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v2-links")
}

/// Medium post ids of the fixture's articles, by number.
fn medium_id(n: u32) -> String {
    format!("{:012x}", 0x0a1b2c3d4e00_u64 + u64::from(n))
}

/// The link a Medium author feed gives article `n` (with Medium's `source` parameter).
fn medium_link(n: u32) -> String {
    format!(
        "https://medium.com/@ada/analytical-engines-part-{n}-{}?source=rss-b4981c59ffa5------2",
        medium_id(n)
    )
}

fn medium_title(n: u32) -> String {
    format!("Analytical engines, part {n}")
}

/// The link a Substack feed gives article `n`.
fn substack_link(n: u32) -> String {
    format!("https://ada.substack.com/p/notes-on-the-engine-{n}")
}

fn substack_title(n: u32) -> String {
    format!("Notes on the engine {n}")
}

/// An RSS feed as Medium or Substack writes one: `generator`, then items (link, guid, title);
/// a `None` guid leaves the item without one.
fn platform_rss(
    title: &str,
    generator: &str,
    items: &[(String, Option<String>, String)],
) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let items: String = items
        .iter()
        .map(|(link, guid, title)| {
            let guid = guid
                .as_ref()
                .map(|g| format!("<guid isPermaLink=\"false\">{}</guid>", esc(g)))
                .unwrap_or_default();
            format!(
                "<item><title><![CDATA[{title}]]></title><link>{}</link>{guid}<description><![CDATA[{title} body]]></description></item>\n",
                esc(link)
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>{title}</title><link>https://example.org/</link><description>fixture</description><generator>{generator}</generator>\n{items}</channel></rss>\n"
    )
}

/// The fixture's sources, all Ada's: her Medium feed (GUIDs `medium.com/p/<id>`), a Medium tag
/// feed of hers without GUIDs (identified by URL), her Substack feed and a second Substack feed
/// listing the same links (its "notes").
const LINK_SOURCES: [&str; 4] = [
    "/ada-medium.xml",
    "/ada-medium-tagged.xml",
    "/ada-substack.xml",
    "/ada-substack-notes.xml",
];

/// The four feeds with the Medium articles `medium`, of which `tagged` in the tag feed, and the
/// Substack articles `substack`, of which `notes` in the notes feed (numbers, newest last).
fn link_feeds(
    medium: &[u32],
    tagged: &[u32],
    substack: &[u32],
    notes: &[u32],
) -> Vec<(&'static str, String)> {
    let medium_items = |ns: &[u32], guid: bool| -> Vec<(String, Option<String>, String)> {
        ns.iter()
            .rev()
            .map(|n| {
                let g = guid.then(|| format!("https://medium.com/p/{}", medium_id(*n)));
                (medium_link(*n), g, medium_title(*n))
            })
            .collect()
    };
    let substack_items = |ns: &[u32]| -> Vec<(String, Option<String>, String)> {
        ns.iter()
            .rev()
            .map(|n| {
                (
                    substack_link(*n),
                    Some(substack_link(*n)),
                    substack_title(*n),
                )
            })
            .collect()
    };
    vec![
        (
            LINK_SOURCES[0],
            platform_rss(
                "Stories by Ada on Medium",
                "Medium",
                &medium_items(medium, true),
            ),
        ),
        (
            LINK_SOURCES[1],
            platform_rss("Ada: engines", "Medium", &medium_items(tagged, false)),
        ),
        (
            LINK_SOURCES[2],
            platform_rss("Ada's notes", "Substack", &substack_items(substack)),
        ),
        (
            LINK_SOURCES[3],
            platform_rss("Ada's notes, again", "Substack", &substack_items(notes)),
        ),
    ]
}

/// The watcher.toml for Ada's `sources` on [`HOST`], reached through `feeds` as the proxy.
fn write_links_config(dir: &Path, feeds: &FeedServer, hook_url: &str, sources: &[&str]) -> PathBuf {
    let ada = AuthorFeeds {
        name: "Ada",
        feeds: sources.iter().map(|p| format!("{HOST}{p}")).collect(),
    };
    let path = write_config(dir, &[ada], hook_url, "");
    let proxy = format!("[fetch]\nproxy = \"http://{}\"\n", feeds.addr);
    edit_config(&path, "[fetch]\n", &proxy);
    path
}

/// Writes `tests/fixtures/state-v2-links/` with the real binary of the time before the platform
/// rules (`cargo test -p watcher --test it write_links_fixture -- --ignored`): a baseline, then
/// article 3 on Medium and on Substack, delivered under their long URLs. Run by hand only: the
/// point of the fixture is that older code wrote it.
#[tokio::test]
#[ignore = "writes the committed fixture; run by hand"]
async fn write_links_fixture() {
    let feeds = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_links_config(dir.path(), &feeds, &rx.url(), &LINK_SOURCES);
    serve(&feeds, &link_feeds(&[1, 2], &[1], &[1, 2], &[1]));
    assert!(once_all(&cfg).await.status.success());
    serve(&feeds, &link_feeds(&[1, 2, 3], &[1], &[1, 2, 3], &[1]));
    assert!(once_all(&cfg).await.status.success());
    let mut links = delivered_links(&rx);
    links.sort();
    assert_eq!(links, [substack_link(3), medium_link(3)]);

    let out = links_fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    copy_dir(&dir.path().join("state"), &out.join("state"));
    eprintln!("wrote {}", out.display());
}

/// `watcher once --all` as a child process; its feed requests go through the config's proxy.
async fn once_all(config: &Path) -> std::process::Output {
    let out = watcher_cmd(config)
        .args(["once", "--all"])
        .output()
        .await
        .unwrap();
    eprintln!(
        "once --all: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Copies the upgrade fixture into `dir` and writes the config of its four sources there.
fn links_fixture_scene(dir: &Path, feeds: &FeedServer, hook_url: &str) -> PathBuf {
    copy_dir(&links_fixture_dir().join("state"), &dir.join("state"));
    write_links_config(dir, feeds, hook_url, &LINK_SOURCES)
}

/// The link a config lists for Medium article `n`: without `source`.
fn medium_canonical(n: u32) -> String {
    medium_link(n).split('?').next().unwrap().to_owned()
}

#[tokio::test]
async fn an_upgrade_over_the_links_fixture_re_delivers_nothing_and_then_delivers_once() {
    let feeds = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = links_fixture_scene(dir.path(), &feeds, &rx.url());

    // Article 3, delivered before the upgrade under its long URLs, now also reaches Ada through
    // her tag feed (a new id there: URL identity) and her second Substack feed (a new GUID
    // there). Their new keys are unknown; the URLs indexed before the upgrade are found.
    serve(
        &feeds,
        &link_feeds(&[1, 2, 3], &[1, 3], &[1, 2, 3], &[1, 3]),
    );
    let report = pass(&cfg).await;
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    assert_eq!(report.polls.len(), 4, "every source was polled");
    assert!(rx.received().is_empty(), "nothing re-delivered");
    assert!(pass(&cfg).await.deliveries.is_empty());

    // Article 4 in all four feeds: one delivery per article, without tracking parameters.
    serve(
        &feeds,
        &link_feeds(&[1, 2, 3, 4], &[1, 3, 4], &[1, 2, 3, 4], &[1, 3, 4]),
    );
    let report = pass(&cfg).await;
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    let mut links = delivered_links(&rx);
    links.sort();
    assert_eq!(links, [substack_link(4), medium_canonical(4)]);
    assert!(pass(&cfg).await.deliveries.is_empty());
    assert_eq!(delivered_links(&rx).len(), 2, "exactly once");
}

/// The Medium capture without its newest item (a feed from before it was published).
fn without_first_item(feed: &str) -> String {
    let start = feed.find("<item>").unwrap();
    let end = feed[start..].find("</item>").unwrap() + start + "</item>".len();
    format!("{}{}", &feed[..start], &feed[end..])
}

/// The real Medium author feed as a Medium publication's feed lists the same posts: under the
/// publication's path and its own `source` parameter, with the same `medium.com/p/<id>` GUIDs.
fn as_publication(author_feed: &str) -> String {
    author_feed
        .replace(
            "https://medium.com/@emarley/",
            "https://medium.com/the-omni-group/",
        )
        .replace(
            "?source=rss-b4981c59ffa5------2",
            "?source=rss----3b8e1f3a2c1d---4",
        )
        .replace(
            "Stories by Liz Marley on Medium",
            "The Omni Group on Medium",
        )
}

const MEDIUM: &str = "medium-lizmarley.rss.xml";
const SUBSTACK: &str = "substack-heated-short.rss.xml";

#[tokio::test]
async fn a_medium_article_in_the_author_feed_and_a_publication_feed_is_delivered_once() {
    let scene = spawn_scene().await;
    let author = fixture(MEDIUM);
    let publication = as_publication(&author);
    scene
        .feeds
        .set_feed("/author", &without_first_item(&author));
    scene
        .feeds
        .set_feed("/publication", &without_first_item(&publication));
    let cfg = scene.config(&[scene.author("Liz Marley", &["/author", "/publication"])]);
    pass(&cfg).await;
    assert!(scene.rx.received().is_empty(), "a baseline");

    // The capture's newest post, c44a41af38d1, appears in both feeds.
    scene.feeds.set_feed("/author", &author);
    scene.feeds.set_feed("/publication", &publication);
    let report = pass(&cfg).await;
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    let links = delivered_links(&scene.rx);
    assert_eq!(links.len(), 1, "one delivery: {links:?}");
    let expected = [
        "https://medium.com/@emarley/ui-automation-screenshots-c44a41af38d1",
        "https://medium.com/the-omni-group/ui-automation-screenshots-c44a41af38d1",
    ];
    assert!(expected.contains(&links[0].as_str()), "{links:?}");
    assert!(pass(&cfg).await.deliveries.is_empty());
}

#[tokio::test]
async fn a_publication_feed_added_later_hides_nothing_the_author_feed_finds_new() {
    let scene = spawn_scene().await;
    let author = fixture(MEDIUM);
    scene
        .feeds
        .set_feed("/author", &without_first_item(&author));
    let cfg = scene.config(&[scene.author("Liz Marley", &["/author"])]);
    pass(&cfg).await;

    // The publication's feed is added when the post is out: its baseline records the post
    // (under its own URL, the same key) and hides it from nobody.
    scene.feeds.set_feed("/author", &author);
    scene
        .feeds
        .set_feed("/publication", &as_publication(&author));
    scene.config(&[scene.author("Liz Marley", &["/author", "/publication"])]);
    let report = pass(&cfg).await;
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    assert_eq!(
        delivered_links(&scene.rx),
        ["https://medium.com/@emarley/ui-automation-screenshots-c44a41af38d1"]
    );
    assert!(pass(&cfg).await.deliveries.is_empty());
}

/// The real Substack capture (a custom domain, `heated.world`, marked by `<generator>`) as its
/// `*.substack.com` twin lists the post, with a reader's referral parameters and no marker.
fn as_substack_host(custom: &str) -> String {
    custom
        .replace(
            "https://heated.world/p/a-conversation-about-keystone-xl",
            "https://heated.substack.com/p/a-conversation-about-keystone-xl?r=1ttoeh&amp;triedRedirect=true",
        )
        .replace("<generator>Substack</generator>", "")
}

#[tokio::test]
async fn a_substack_post_on_its_custom_domain_and_on_substack_com_is_delivered_once() {
    let scene = spawn_scene().await;
    let custom = fixture(SUBSTACK);
    let on_substack = as_substack_host(&custom);
    scene
        .feeds
        .set_feed("/custom", &without_first_item(&custom));
    scene
        .feeds
        .set_feed("/substack", &without_first_item(&on_substack));
    let cfg = scene.config(&[scene.author("Emily Atkin", &["/custom", "/substack"])]);
    pass(&cfg).await;

    scene.feeds.set_feed("/custom", &custom);
    scene.feeds.set_feed("/substack", &on_substack);
    let report = pass(&cfg).await;
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    let links = delivered_links(&scene.rx);
    let expected = [
        "https://heated.world/p/a-conversation-about-keystone-xl",
        "https://heated.substack.com/p/a-conversation-about-keystone-xl",
    ];
    assert_eq!(links.len(), 1, "one delivery: {links:?}");
    assert!(expected.contains(&links[0].as_str()), "{links:?}");
    assert!(pass(&cfg).await.deliveries.is_empty());
}

#[tokio::test]
async fn two_publications_coming_soon_posts_stay_apart_by_their_titles() {
    let scene = spawn_scene().await;
    let feed = |title: &str| platform_rss(title, "Substack", &[]);
    scene.feeds.set_feed("/ada", &feed("Ada"));
    scene.feeds.set_feed("/engines", &feed("Engines"));
    scene.feeds.set_feed("/custom", &feed("Ada, at home"));
    let cfg = scene.config(&[scene.author("Ada", &["/ada", "/engines", "/custom"])]);
    pass(&cfg).await;

    let post =
        |link: &str, title: &str| vec![(link.to_owned(), Some(link.to_owned()), title.to_owned())];
    let ada = post("https://ada.substack.com/p/coming-soon", "Coming soon");
    scene
        .feeds
        .set_feed("/ada", &platform_rss("Ada", "Substack", &ada));
    let engines = post(
        "https://engines.substack.com/p/coming-soon",
        "Engines: coming soon",
    );
    scene
        .feeds
        .set_feed("/engines", &platform_rss("Engines", "Substack", &engines));
    // Ada's own domain, without a marker: the same post as her Substack's, by slug and title.
    let home = post(
        "https://www.ada-lovelace.example/p/coming-soon",
        "Coming  soon",
    );
    scene
        .feeds
        .set_feed("/custom", &platform_rss("Ada, at home", "", &home));
    let report = pass(&cfg).await;
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    let mut links = delivered_links(&scene.rx);
    assert_eq!(links.len(), 2, "{links:?}");
    let engines = links
        .iter()
        .position(|l| l == "https://engines.substack.com/p/coming-soon");
    links.remove(engines.expect("the other publication's post is delivered"));
    assert!(
        [
            "https://ada.substack.com/p/coming-soon",
            "https://www.ada-lovelace.example/p/coming-soon"
        ]
        .contains(&links[0].as_str()),
        "Ada's post once: {links:?}"
    );
}

#[tokio::test]
async fn two_sources_committing_one_article_at_once_stage_it_once() {
    use watcher::identity::{Item, LinkKeys};
    use watcher::store::{PollCommit, SourceState, StagedItem, Store, source_key};

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let item = |id: &str, url: &str| Item {
        id: id.into(),
        canonical_url: Some(url.into()),
        link_shared: false,
        title: Some("Analytical engines".into()),
        content_hash: "h".into(),
        published: None,
        revision: 0,
        keys: LinkKeys {
            identity: Some("medium:0123456789ab".into()),
            before: None,
        },
    };
    let commit = |feed: &str, item: Item| {
        let state = SourceState {
            author: "Ada".into(),
            url: feed.into(),
            baseline_done: true,
            ..SourceState::default()
        };
        PollCommit {
            source_key: source_key("Ada", feed),
            state,
            record: vec![item.clone()],
            stage: vec![StagedItem {
                author: "Ada".into(),
                source: feed.into(),
                found_at: chrono::Utc::now(),
                item,
            }],
            hold: vec![],
            baseline: false,
        }
    };
    let author = item(
        "g:a",
        "https://medium.com/@ada/analytical-engines-0123456789ab",
    );
    let publication = item(
        "g:b",
        "https://medium.com/the-pub/analytical-engines-0123456789ab",
    );
    // Both polls diffed before either committed: each finds the article new.
    for (feed, it) in [
        ("https://x/author", &author),
        ("https://x/pub", &publication),
    ] {
        let (ids, keys) = store
            .known_for(&source_key("Ada", feed), "Ada", std::slice::from_ref(it))
            .unwrap();
        assert!(ids.is_empty() && keys.is_empty());
    }
    store
        .commit_poll(commit("https://x/author", author))
        .await
        .unwrap();
    store
        .commit_poll(commit("https://x/pub", publication))
        .await
        .unwrap();
    let staged = store.staged().unwrap();
    assert_eq!(staged.len(), 1, "the second commit staged nothing");
    assert_eq!(staged[0].1.source, "https://x/author");
}
