//! store_fixture.rs: the state dir written by an earlier watcher (`tests/fixtures/state-v1/`),
//! kept to prove that later code still reads it: every source, item, alias, staged item and
//! delivery (pending, done with each kind of run following, failed) is found, and a `once --all`
//! over the same feeds triggers nothing. `write_store_fixture` (ignored) wrote it with the real
//! binary; the feeds live on a fixed fake host (`feeds.fixture.test`), reached through
//! `[fetch] proxy` pointing at a loopback feed server, so the sources' keys do not depend on a port.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use trigger_client::RunState;
use watcher::delivery::{Delivery, DeliveryState, Phase, RunFollow};
use watcher::store::{Store, source_key};

use crate::helpers::*;

/// Where the fixture lives.
pub(crate) fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1")
}

/// The fake host every fixture feed is configured on.
pub(crate) const HOST: &str = "http://feeds.fixture.test";

/// The fixture's sources: (author, path on [`HOST`]). Ada's two feeds carry the same articles
/// (aliases: one delivery per article).
const SOURCES: [(&str, &str); 3] = [
    ("Ada", "/ada-main.xml"),
    ("Ada", "/ada-notes.xml"),
    ("Bob", "/bob.xml"),
];

/// A minimal RSS feed of `items` (link, title), newest first.
pub(crate) fn rss(title: &str, items: &[(&str, &str)]) -> String {
    let items: String = items
        .iter()
        .map(|(link, title)| {
            format!(
                "<item><title>{title}</title><link>{link}</link><guid>{link}</guid><description>{title} body</description></item>\n"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>{title}</title><link>https://example.org/</link><description>fixture</description>\n{items}</channel></rss>\n"
    )
}

fn ada(n: u32) -> (String, String) {
    (
        format!("https://ada.example/posts/{n}/"),
        format!("Ada post {n}"),
    )
}

fn bob(n: u32) -> (String, String) {
    (
        format!("https://bob.example/{n}.html"),
        format!("Bob note {n}"),
    )
}

/// The three feeds when Ada has published `ada_main` (in her main feed, the newest first), of
/// which `ada_notes` also in her notes feed, and Bob `bob_posts`.
fn feeds(ada_main: &[u32], ada_notes: &[u32], bob_posts: &[u32]) -> Vec<(&'static str, String)> {
    let list = |ns: &[u32], f: fn(u32) -> (String, String)| -> Vec<(String, String)> {
        ns.iter().rev().map(|n| f(*n)).collect()
    };
    let body = |title, items: Vec<(String, String)>| {
        let refs: Vec<(&str, &str)> = items
            .iter()
            .map(|(l, t)| (l.as_str(), t.as_str()))
            .collect();
        rss(title, &refs)
    };
    vec![
        ("/ada-main.xml", body("Ada", list(ada_main, ada))),
        ("/ada-notes.xml", body("Ada: notes", list(ada_notes, ada))),
        ("/bob.xml", body("Bob", list(bob_posts, bob))),
    ]
}

/// The watcher.toml of the fixture: the sources on [`HOST`] reached through `feeds` as the
/// proxy, delivering to `hook_url`, and the `[trigger]` lines `trigger_extra`.
pub(crate) fn write_fixture_config(
    dir: &Path,
    feeds: &FeedServer,
    hook_url: &str,
    trigger_extra: &str,
) -> PathBuf {
    let mut text = format!(
        r#"[watcher]
state_dir = "state"
output_dir = "out"
interval = "30m"
batch_window = "0s"
keep_deliveries = "36500d"
listen = "127.0.0.1:{port}"

[fetch]
timeout = "5s"
proxy = "http://{proxy}"

[trigger]
kind = "webhook"
url = "{hook_url}"
pipeline = "digital_data_etl"
{trigger_extra}
"#,
        port = free_port(),
        proxy = feeds.addr
    );
    for author in ["Ada", "Bob"] {
        let feeds: Vec<String> = SOURCES
            .iter()
            .filter(|(a, _)| *a == author)
            .map(|(_, p)| format!("\"{HOST}{p}\""))
            .collect();
        text.push_str(&format!(
            "\n[[authors]]\nname = \"{author}\"\nfeeds = [{}]\n",
            feeds.join(", ")
        ));
    }
    let path = dir.join("watcher.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What the test's config asks: nothing new may form or be sent (the cost guard holds staged
/// items, the pending batch waits years, followed runs are not asked about again).
pub(crate) const QUIET: &str = r#"max_attempts = 10
retry_base_delay = "3650d"
retry_max_delay = "3650d"
min_interval = "36500d"
follow_interval = "36500d""#;

/// `watcher once --all` as a child process (its feed requests go through the config's proxy; an
/// environment proxy, set here to a dead address, is ignored).
pub(crate) async fn once_all(config: &Path) -> std::process::Output {
    let mut cmd = watcher_cmd(config);
    cmd.args(["once", "--all"])
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output().await.unwrap();
    eprintln!(
        "once --all: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn serve(feeds: &FeedServer, bodies: &[(&str, String)]) {
    for (path, body) in bodies {
        feeds.set_feed(path, body);
    }
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The URL of the first article of a delivery.
fn first_url(d: &Delivery) -> &str {
    &d.items[0].url
}

/// Writes `tests/fixtures/state-v1/` with the real binary. Run by hand after a deliberate
/// store-format change only (`cargo test -p watcher --test it write_store_fixture --
/// --ignored`): the point of the fixture is that it was written by older code.
#[tokio::test]
#[ignore = "writes the committed fixture; run by hand"]
async fn write_store_fixture() {
    let feeds = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = rx.url();
    let pass = |step: &'static str, trigger_extra: String| {
        let (feeds, dir, hook) = (feeds.clone(), dir.path().to_path_buf(), hook.clone());
        async move {
            eprintln!("step: {step}");
            let cfg = write_fixture_config(&dir, &feeds, &hook, &trigger_extra);
            once_all(&cfg).await
        }
    };
    let quick = "max_attempts = 10\nretry_base_delay = \"0s\"\nretry_max_delay = \"0s\"";

    // 1. Baseline: Ada's post 2 is in both her feeds (an alias from the start).
    serve(&feeds, &feeds_at(&[1, 2], &[2], &[1]));
    assert!(pass("baseline", quick.into()).await.status.success());
    assert!(
        feeds.total_requests() >= 3,
        "the feeds were reached through the proxy"
    );
    // 2. Ada's post 3 in both feeds: one delivery with one article; no status URL, so its run
    //    is untracked.
    serve(&feeds, &feeds_at(&[1, 2, 3], &[2, 3], &[1]));
    assert!(pass("alias", quick.into()).await.status.success());
    // 3.–5. Three more delivered batches, whose runs are given states below.
    serve(&feeds, &feeds_at(&[1, 2, 3], &[2, 3], &[1, 2]));
    assert!(pass("bob 2", quick.into()).await.status.success());
    serve(&feeds, &feeds_at(&[1, 2, 3, 4], &[2, 3], &[1, 2]));
    assert!(pass("ada 4", quick.into()).await.status.success());
    serve(&feeds, &feeds_at(&[1, 2, 3, 4], &[2, 3], &[1, 2, 3]));
    assert!(pass("bob 3", quick.into()).await.status.success());
    // 6. The receiver refuses for good: failed.
    rx.set_mode(Mode::Fail(400));
    serve(&feeds, &feeds_at(&[1, 2, 3, 4, 5], &[2, 3], &[1, 2, 3]));
    let failed = "max_attempts = 1\nretry_base_delay = \"0s\"\nretry_max_delay = \"0s\"";
    assert_eq!(pass("failed", failed.into()).await.status.code(), Some(1));
    // 7. The receiver is down: pending, next attempt years away.
    rx.set_mode(Mode::Fail(503));
    serve(&feeds, &feeds_at(&[1, 2, 3, 4, 5], &[2, 3], &[1, 2, 3, 4]));
    let later = "max_attempts = 10\nretry_base_delay = \"3650d\"\nretry_max_delay = \"3650d\"";
    assert_eq!(pass("pending", later.into()).await.status.code(), Some(1));
    // 8. The cost guard holds two new articles: staged.
    rx.set_mode(Mode::Accept);
    serve(
        &feeds,
        &feeds_at(&[1, 2, 3, 4, 5, 6], &[2, 3], &[1, 2, 3, 4, 5]),
    );
    assert!(pass("staged", QUIET.into()).await.status.success());

    // Run states the engine would report over time (a webhook without status URL reports
    // none): written with the store's API, as follow_runs writes them.
    {
        let store = Store::open(&dir.path().join("state")).unwrap();
        for (seq, mut d) in store.deliveries().unwrap() {
            let url = first_url(&d).to_string();
            let DeliveryState::Done(run) = &mut d.state else {
                continue;
            };
            run.checked_at = Some(chrono::Utc::now());
            if url == bob(2).0 {
                run.follow = RunFollow::Reported(RunState::Running);
            } else if url == ada(4).0 {
                run.follow = RunFollow::Reported(RunState::Succeeded);
                run.message = Some("all stages succeeded".into());
            } else if url == bob(3).0 {
                run.follow = RunFollow::Lost;
                run.errors = 20;
                run.message = Some(
                    "status unavailable 20 times in a row: run `r1` is not known to the engine"
                        .into(),
                );
            } else {
                continue;
            }
            store.put_delivery(seq, &d).await.unwrap();
        }
        store.flush().await.unwrap();
    }

    let out = fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    copy_dir(&dir.path().join("state"), &out.join("state"));
    std::fs::create_dir_all(out.join("feeds")).unwrap();
    for (path, body) in final_feeds() {
        std::fs::write(out.join("feeds").join(&path[1..]), body).unwrap();
    }
    eprintln!("wrote {}", out.display());
}

/// [`feeds`] with Ada's and Bob's article numbers.
fn feeds_at(ada_main: &[u32], ada_notes: &[u32], bob_posts: &[u32]) -> Vec<(&'static str, String)> {
    feeds(ada_main, ada_notes, bob_posts)
}

/// The feeds as they were when the fixture was written.
fn final_feeds() -> Vec<(&'static str, String)> {
    feeds_at(&[1, 2, 3, 4, 5, 6], &[2, 3], &[1, 2, 3, 4, 5])
}

/// The fixture's feeds as committed.
pub(crate) fn committed_feeds() -> Vec<(&'static str, String)> {
    SOURCES
        .iter()
        .map(|(_, path)| {
            let file = fixture_dir().join("feeds").join(&path[1..]);
            (*path, std::fs::read_to_string(&file).unwrap())
        })
        .collect()
}

/// Everything the store holds, for comparing before and after a pass.
struct Contents {
    sources: Vec<(String, watcher::store::SourceState)>,
    staged: Vec<watcher::store::StagedItem>,
    deliveries: Vec<Delivery>,
}

fn contents(state_dir: &Path) -> Contents {
    let store = Store::open(state_dir).unwrap();
    Contents {
        sources: store.sources().unwrap(),
        staged: store
            .staged()
            .unwrap()
            .into_iter()
            .map(|(_, s)| s)
            .collect(),
        deliveries: store
            .deliveries()
            .unwrap()
            .into_iter()
            .map(|(_, d)| d)
            .collect(),
    }
}

#[tokio::test]
async fn the_v1_state_dir_is_read_whole_and_a_pass_over_the_same_feeds_triggers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir().join("state"), &dir.path().join("state"));
    let state_dir = dir.path().join("state");
    let before = contents(&state_dir);

    // Sources: three, each with its validators and items.
    assert_eq!(before.sources.len(), 3);
    for (author, path) in SOURCES {
        let key = source_key(author, &format!("{HOST}{path}"));
        let (_, s) = before
            .sources
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("source {key:?}"));
        assert!(s.baseline_done && s.etag.is_some(), "{key}: {s:?}");
    }
    let known: u64 = before.sources.iter().map(|(_, s)| s.items_known).sum();
    assert_eq!(known, 6 + 2 + 5, "every item of every feed");
    // Aliases: Ada's notes feed carries posts the main feed recorded; each is known by URL.
    {
        let store = Store::open(&state_dir).unwrap();
        let notes = source_key("Ada", &format!("{HOST}/ada-notes.xml"));
        let item = |n| watcher::identity::Item {
            id: ada(n).0,
            canonical_url: Some(ada(n).0),
            link_shared: false,
            title: None,
            content_hash: String::new(),
            published: None,
            revision: 0,
            keys: Default::default(),
        };
        // Under ids the notes feed never had (only an unknown id's URL is looked up).
        let renamed = |n| watcher::identity::Item {
            id: format!("renamed:{n}"),
            ..item(n)
        };
        let (_, urls) = store
            .known_for(&notes, "Ada", &[renamed(2), renamed(3), renamed(9)])
            .unwrap();
        assert!(urls.contains(&ada(2).0) && urls.contains(&ada(3).0) && !urls.contains(&ada(9).0));
    }
    // Staged: two articles held by the cost guard.
    let mut staged: Vec<&str> = before
        .staged
        .iter()
        .map(|s| s.item.canonical_url.as_deref().unwrap())
        .collect();
    staged.sort();
    assert_eq!(staged, [ada(6).0.as_str(), bob(5).0.as_str()]);
    // Deliveries in every state.
    let by_url = |url: &str| {
        before
            .deliveries
            .iter()
            .find(|d| first_url(d) == url)
            .unwrap_or_else(|| panic!("delivery of {url}"))
    };
    assert_eq!(before.deliveries.len(), 6);
    let alias = by_url(&ada(3).0);
    assert_eq!(
        alias.items.len(),
        1,
        "one article, though two feeds carry it"
    );
    let runs: Vec<(Phase, Option<RunFollow>)> = [ada(3), bob(2), ada(4), bob(3), ada(5), bob(4)]
        .iter()
        .map(|(url, _)| {
            let d = by_url(url);
            (d.phase(), d.run().map(|r| r.follow))
        })
        .collect();
    assert_eq!(
        runs,
        [
            (Phase::Done, Some(RunFollow::Untracked)),
            (Phase::Done, Some(RunFollow::Reported(RunState::Running))),
            (Phase::Done, Some(RunFollow::Reported(RunState::Succeeded))),
            (Phase::Done, Some(RunFollow::Lost)),
            (Phase::Failed, None),
            (Phase::Pending, None),
        ]
    );
    assert!(by_url(&bob(2).0).run_open(), "a running run is followed");
    assert!(by_url(&ada(5).0).last_error.is_some());
    let pending = by_url(&bob(4).0);
    assert_eq!(pending.attempts, 1);
    assert!(pending.next_attempt_at > chrono::Utc::now() + chrono::Duration::days(365));
    assert!(
        by_url(&ada(3).0)
            .run()
            .is_some_and(|r| r.handle.kind == "webhook")
    );
    let lost = by_url(&bob(3).0).run().unwrap();
    assert_eq!((lost.errors, lost.follow.ended_badly()), (20, true));

    // A pass over the same feeds: polled, nothing new, nothing sent.
    let feeds = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    serve(&feeds, &committed_feeds());
    let cfg = write_fixture_config(dir.path(), &feeds, &rx.url(), QUIET);
    let out = once_all(&cfg).await;
    assert!(out.status.success(), "{out:?}");
    assert!(feeds.total_requests() >= 3, "every source was polled");
    assert!(rx.received().is_empty(), "nothing was triggered");
    let after = contents(&state_dir);
    assert_eq!(after.deliveries, before.deliveries, "no delivery changed");
    assert_eq!(after.staged, before.staged);
    assert_eq!(
        after
            .sources
            .iter()
            .map(|(_, s)| s.items_known)
            .sum::<u64>(),
        known,
        "no new item"
    );
}
