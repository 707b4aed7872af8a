//! store_migration.rs: the one store migration (schema 1 → 2, the compact layout of
//! `store/layout.rs`). The schema-1 state dirs under `tests/fixtures/` (`state-v1`: sources,
//! items, aliases, staged items, deliveries in every state; `state-v1-holds`: what later issues
//! added, a held flood and a source's baseline in `baseline_urls`) migrate whole on first open,
//! a copy of the old state dir kept beside it, and a `once --all` over the same feeds afterwards
//! delivers and re-baselines nothing. A watcher killed (SIGKILL, a real child process) in the
//! middle of the migration leaves a store the next start migrates completely.

use std::path::{Path, PathBuf};

use watcher::store::{Store, source_key};

use crate::helpers::*;
use crate::store_fixture::{HOST, QUIET, copy_dir, once_all, rss, serve};

/// `watcher once --all` as a child process, its environment's proxy left alone (the webhook
/// receiver is on loopback).
async fn once_delivering(config: &Path) -> std::process::Output {
    let out = watcher_cmd(config)
        .args(["once", "--all"])
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
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

/// The fixture with holds and baselines.
fn holds_fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1-holds")
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

/// Ada's main feed, Ada's notes feed (added later: its first poll is a baseline that goes to
/// `baseline_urls`), Bob's feed (flooded: held).
const SOURCES: [(&str, &str); 3] = [
    ("Ada", "/ada-main.xml"),
    ("Ada", "/ada-notes.xml"),
    ("Bob", "/bob.xml"),
];

/// The three feeds with these article numbers, the newest first.
fn feeds(ada_main: &[u32], ada_notes: &[u32], bob_posts: &[u32]) -> Vec<(&'static str, String)> {
    let body = |title, ns: &[u32], f: fn(u32) -> (String, String)| {
        let items: Vec<(String, String)> = ns.iter().rev().map(|n| f(*n)).collect();
        let refs: Vec<(&str, &str)> = items
            .iter()
            .map(|(l, t)| (l.as_str(), t.as_str()))
            .collect();
        rss(title, &refs)
    };
    vec![
        ("/ada-main.xml", body("Ada", ada_main, ada)),
        ("/ada-notes.xml", body("Ada: notes", ada_notes, ada)),
        ("/bob.xml", body("Bob", bob_posts, bob)),
    ]
}

/// The feeds at the end of [`write_store_fixture_with_holds`].
fn final_feeds() -> Vec<(&'static str, String)> {
    feeds(&[1, 2, 3], &[1, 2, 3], &[1, 2, 3, 4, 5, 6, 7])
}

/// The config: the sources in `sources` on [`HOST`] through `feeds` as the proxy, floods of more
/// than 3 new items held, and the `[trigger]` lines `trigger_extra`.
fn write_config(
    dir: &Path,
    feeds: &FeedServer,
    hook_url: &str,
    sources: &[(&str, &str)],
    trigger_extra: &str,
) -> PathBuf {
    let mut text = format!(
        r#"[watcher]
state_dir = "state"
output_dir = "out"
interval = "30m"
batch_window = "0s"
keep_deliveries = "36500d"
hold_above = 3
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
        let feeds: Vec<String> = sources
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

/// Writes `tests/fixtures/state-v1-holds/` with the real binary of schema 1 (commit 63b2796).
/// Run by hand only (`cargo test -p watcher --test it write_store_fixture_with_holds --
/// --ignored`): the point of the fixture is that it was written by older code.
#[tokio::test]
#[ignore = "writes the committed fixture; run by hand"]
async fn write_store_fixture_with_holds() {
    let server = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let quick = "max_attempts = 10\nretry_base_delay = \"0s\"\nretry_max_delay = \"0s\"";
    let main_and_bob = [SOURCES[0], SOURCES[2]];
    // 1. Baselines of Ada's main feed and Bob's.
    serve(&server, &feeds(&[1, 2], &[1, 2], &[1]));
    let cfg = write_config(dir.path(), &server, &rx.url(), &main_and_bob, quick);
    assert!(once_delivering(&cfg).await.status.success());
    // 2. Ada's notes feed is added: its baseline (posts 1 and 2) goes to `baseline_urls`.
    let cfg = write_config(dir.path(), &server, &rx.url(), &SOURCES, quick);
    assert!(once_delivering(&cfg).await.status.success());
    // 3. Bob floods (6 new items: held); Ada's post 3 is delivered.
    serve(&server, &feeds(&[1, 2, 3], &[1, 2], &[1, 2, 3, 4, 5, 6, 7]));
    assert!(once_delivering(&cfg).await.status.success());
    assert_eq!(rx.received().len(), 1, "Ada's post 3 only");
    // 4. Ada's notes feed lists post 3 too: an alias, recorded, not delivered.
    serve(&server, &final_feeds());
    assert!(once_delivering(&cfg).await.status.success());
    assert_eq!(rx.received().len(), 1);
    {
        let store = Store::open(&dir.path().join("state")).unwrap();
        assert_eq!(store.held().unwrap().len(), 6);
    }

    let out = holds_fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    copy_dir(&dir.path().join("state"), &out.join("state"));
    std::fs::create_dir_all(out.join("feeds")).unwrap();
    for (path, body) in final_feeds() {
        std::fs::write(out.join("feeds").join(&path[1..]), body).unwrap();
    }
    eprintln!("wrote {}", out.display());
}

/// A copy of the holds fixture in a temp dir: (temp dir, state dir).
fn holds_fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &holds_fixture_dir().join("state"),
        &dir.path().join("state"),
    );
    let state = dir.path().join("state");
    (dir, state)
}

/// The feeds as committed beside the holds fixture.
fn committed_feeds() -> Vec<(&'static str, String)> {
    SOURCES
        .iter()
        .map(|(_, path)| {
            let file = holds_fixture_dir().join("feeds").join(&path[1..]);
            (*path, std::fs::read_to_string(&file).unwrap())
        })
        .collect()
}

/// What a migrated holds fixture must hold; `state` is a state dir not open elsewhere.
fn assert_holds_fixture_whole(state: &Path) {
    let store = Store::open(state).unwrap();
    let sources = store.sources().unwrap();
    assert_eq!(sources.len(), 3);
    assert!(
        sources
            .iter()
            .all(|(_, s)| s.baseline_done && s.etag.is_some())
    );
    let known: u64 = sources.iter().map(|(_, s)| s.items_known).sum();
    assert_eq!(known, 3 + 3 + 7, "every item of every feed");
    let bobs = source_key("Bob", &format!("{HOST}/bob.xml"));
    assert_eq!(store.held_count(&bobs, 100).unwrap(), 6);
    let mut held: Vec<String> = (store.held().unwrap().into_iter())
        .map(|s| s.item.canonical_url.unwrap())
        .collect();
    held.sort();
    let want: Vec<String> = (2..=7).map(|n| bob(n).0).collect();
    assert_eq!(held, want);
    assert_eq!(store.deliveries().unwrap().len(), 1);
    let item = |n: u32| watcher::identity::Item {
        id: format!("g:{}", ada(n).0),
        canonical_url: Some(ada(n).0),
        link_shared: false,
        title: None,
        content_hash: String::new(),
        published: None,
        revision: 0,
        keys: Default::default(),
    };
    // Ada's notes feed: posts 1 and 2 by its own baseline (`baseline_urls`), post 3 by the
    // main feed's delivery (`urls`); its three ids are known.
    let notes = source_key("Ada", &format!("{HOST}/ada-notes.xml"));
    let probe = [item(1), item(2), item(3), item(9)];
    let (ids, urls) = store.known_for(&notes, "Ada", &probe).unwrap();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(
        urls.is_empty(),
        "a URL is asked about for an unknown id only: {urls:?}"
    );
    // The same posts under new ids (a feed that rewrote its GUIDs): known by URL.
    let renamed: Vec<_> = (probe.iter())
        .map(|i| watcher::identity::Item {
            id: format!("new:{}", i.id),
            ..i.clone()
        })
        .collect();
    let (ids, urls) = store.known_for(&notes, "Ada", &renamed).unwrap();
    assert!(ids.is_empty(), "{ids:?}");
    assert_eq!(urls.len(), 3, "{urls:?}");
    assert!(!urls.contains(&ada(9).0));
    // A baseline hides nothing from another source: a source of Ada's never polled knows only
    // post 3 (recorded after the main feed's baseline).
    let (ids, urls) = store
        .known_for("Ada\u{1f}http://elsewhere/feed", "Ada", &probe)
        .unwrap();
    assert!(ids.is_empty());
    assert_eq!(urls.into_iter().collect::<Vec<_>>(), [ada(3).0]);
}

#[tokio::test]
async fn the_v1_state_dir_with_holds_migrates_whole_and_a_pass_triggers_nothing() {
    let (dir, state) = holds_fixture_copy();
    assert_holds_fixture_whole(&state);
    let backup = dir.path().join("state.schema1");
    assert!(
        backup.join("db").is_dir(),
        "the old state dir is kept beside it"
    );
    assert!(!dir.path().join("state.schema1.partial").exists());
    assert!(!state.join("db.migrating").exists());

    // A pass over the same feeds: polled, nothing new, nothing sent, nothing re-baselined.
    let server = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    serve(&server, &committed_feeds());
    let cfg = write_config(dir.path(), &server, &rx.url(), &SOURCES, "");
    let out = once_delivering(&cfg).await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("baseline"), "{stdout}");
    assert!(server.total_requests() >= 3, "every source was polled");
    assert!(rx.received().is_empty(), "nothing was triggered");
    assert_holds_fixture_whole(&state);

    // The held flood migrated usable: released, it is delivered once.
    let released = watcher_cmd(&cfg)
        .args(["release", &format!("{HOST}/bob.xml")])
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&released.stdout);
    assert!(said.contains("released 6"), "{said}");
    let out = once_delivering(&cfg).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(delivered_links(&rx).len(), 6);
}

/// `watcher once --all` on the holds fixture, killed (SIGKILL) at the crash point `at` of its
/// migration; the next start completes the migration.
async fn killed_migrating(at: &str) {
    let (dir, state) = holds_fixture_copy();
    let server = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    serve(&server, &committed_feeds());
    let cfg = write_config(dir.path(), &server, &rx.url(), &SOURCES, QUIET);
    let status = watcher_cmd(&cfg)
        .args(["once", "--all"])
        .env(watcher::crash::ENV, at)
        .status()
        .await
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the child died of SIGKILL at {at}"
    );
    assert!(
        dir.path().join("state.schema1").join("db").is_dir(),
        "the backup was made first"
    );

    // The next start completes the migration, and finds everything.
    let out = once_all(&cfg).await;
    assert!(out.status.success(), "{out:?}");
    assert!(rx.received().is_empty(), "nothing was triggered");
    assert!(!state.join("db.migrating").exists());
    assert_holds_fixture_whole(&state);
}

#[tokio::test]
async fn killed_in_the_middle_of_the_migration_the_next_start_completes_it() {
    killed_migrating("migrate-midway").await;
}

#[tokio::test]
async fn killed_while_swapping_in_the_migrated_db_the_next_start_completes_it() {
    killed_migrating("migrate-swap").await;
}
