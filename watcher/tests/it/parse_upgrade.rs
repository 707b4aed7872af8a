//! parse_upgrade.rs: upgrading the parser is silent (issue 19). A parse fix can change what a
//! known item looks like (its title or content, so its content hash; its link, so its URL-mode
//! id), and a changed item must not reach the pipeline as new or updated. So the real watcher
//! re-polls, with and without `trigger_on_update`:
//! - every feed of the test corpus against `tests/fixtures/state-pre19/`, a state dir written by
//!   the watcher before the feedparser-suite fixes (commit 48ae925), over the same files;
//! - the structure issue's state dir (`tests/fixtures/state-v1/`) over its feeds;
//!
//! and nothing is delivered or staged.

use std::path::{Path, PathBuf};

use watcher::feedkit::FeedServer;
use watcher::store::Store;

use crate::helpers::*;
use crate::store_fixture::{HOST, QUIET, copy_dir, once_all};

/// The state dir written by the pre-fix watcher over the corpus.
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-pre19")
}

/// The corpus files that are feeds: (file under `testdata/corpus/`, content type).
fn corpus_feeds() -> Vec<(String, &'static str)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/corpus");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let (file, set, format) = (cols.next()?, cols.next()?, cols.next()?);
            let content_type = match format {
                "html" | "sitemap" => return None,
                "json" => "application/feed+json",
                _ => "application/xml",
            };
            (set == "public").then(|| (file.to_owned(), content_type))
        })
        .collect()
}

/// Serves every corpus feed at `/corpus/<file>` on the feed server (reached as [`HOST`]).
fn serve_corpus(feeds: &FeedServer) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/corpus");
    let files = corpus_feeds();
    for (file, content_type) in &files {
        let body = std::fs::read(dir.join(file)).unwrap();
        feeds.set_bytes(&format!("/corpus/{file}"), body, content_type);
    }
    files.len()
}

/// A config with one author per corpus feed, delivering to `hook_url`.
fn write_corpus_config(dir: &Path, feeds: &FeedServer, hook_url: &str, extra: &str) -> PathBuf {
    let mut text = format!(
        r#"[watcher]
state_dir = "state"
output_dir = "out"
interval = "30m"
batch_window = "0s"
keep_deliveries = "36500d"
listen = "127.0.0.1:{port}"
{extra}

[fetch]
timeout = "10s"
proxy = "http://{proxy}"

[trigger]
kind = "webhook"
url = "{hook_url}"
pipeline = "digital_data_etl"
{QUIET}
"#,
        port = free_port(),
        proxy = feeds.addr
    );
    for (n, (file, _)) in corpus_feeds().iter().enumerate() {
        text.push_str(&format!(
            "\n[[authors]]\nname = \"corpus {n}\"\nfeeds = [\"{HOST}/corpus/{file}\"]\n"
        ));
    }
    let path = dir.join("watcher.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What a pass may not change: (items known per source, staged items, deliveries).
fn counts(state_dir: &Path) -> (Vec<(String, u64)>, usize, usize) {
    let store = Store::open(state_dir).unwrap();
    let mut known: Vec<(String, u64)> = store
        .sources()
        .unwrap()
        .into_iter()
        .map(|(key, s)| (key, s.items_known))
        .collect();
    known.sort();
    (
        known,
        store.staged().unwrap().len(),
        store.deliveries().unwrap().len(),
    )
}

/// Writes `tests/fixtures/state-pre19/` with the real binary: run by hand, on the code before a
/// parse change whose upgrade is to be proved silent (`cargo test -p watcher --test it
/// write_corpus_store_fixture -- --ignored`).
#[tokio::test]
#[ignore = "writes the committed fixture; run by hand with the code before the parse change"]
async fn write_corpus_store_fixture() {
    let feeds = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let files = serve_corpus(&feeds);
    let cfg = write_corpus_config(dir.path(), &feeds, &rx.url(), "");
    let out = once_all(&cfg).await;
    assert!(feeds.total_requests() >= files, "every feed was polled");
    assert!(rx.received().is_empty(), "a first poll only baselines");
    let (known, ..) = counts(&dir.path().join("state"));
    let items: u64 = known.iter().map(|(_, n)| n).sum();
    eprintln!(
        "{} sources, {items} items known; {:?}",
        known.len(),
        out.status
    );
    let target = fixture_dir();
    let _ = std::fs::remove_dir_all(&target);
    copy_dir(&dir.path().join("state"), &target.join("state"));
    eprintln!("wrote {}", target.display());
}

#[tokio::test]
async fn the_corpus_repolled_after_parse_fixes_delivers_nothing_with_or_without_updates() {
    for extra in ["trigger_on_update = false", "trigger_on_update = true"] {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        copy_dir(&fixture_dir().join("state"), &state_dir);
        let before = counts(&state_dir);
        let known: u64 = before.0.iter().map(|(_, n)| n).sum();
        assert!(known > 500, "the fixture knows the corpus's items: {known}");

        let feeds = spawn_feed_server().await;
        let rx = spawn_receiver().await;
        let files = serve_corpus(&feeds);
        let cfg = write_corpus_config(dir.path(), &feeds, &rx.url(), extra);
        let out = once_all(&cfg).await;
        assert!(feeds.total_requests() >= files, "every feed was polled");
        assert!(
            rx.received().is_empty(),
            "{extra}: nothing is triggered; got {:?}",
            rx.received()
                .iter()
                .map(|r| r.body.to_string())
                .collect::<Vec<_>>()
        );
        let after = counts(&state_dir);
        assert_eq!(after.1, before.1, "{extra}: nothing staged");
        assert_eq!(after.2, before.2, "{extra}: no delivery");
        // A feed the old parser refused is baselined now (its items become known silently);
        // no source that was read before knows fewer items.
        for (key, was) in &before.0 {
            let now = after.0.iter().find(|(k, _)| k == key).map(|(_, n)| *n);
            assert!(
                now >= Some(*was),
                "{key}: {was} items known before, {now:?} now"
            );
        }
        let _ = out;
    }
}

#[tokio::test]
async fn the_v1_state_dir_repolled_with_updates_on_delivers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    copy_dir(
        &crate::store_fixture::fixture_dir().join("state"),
        &state_dir,
    );
    let before = counts(&state_dir);
    let feeds = spawn_feed_server().await;
    let rx = spawn_receiver().await;
    crate::store_fixture::serve(&feeds, &crate::store_fixture::committed_feeds());
    let cfg = crate::store_fixture::write_fixture_config(dir.path(), &feeds, &rx.url(), QUIET);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replacen("[watcher]\n", "[watcher]\ntrigger_on_update = true\n", 1);
    assert!(text.contains("trigger_on_update = true"));
    std::fs::write(&cfg, text).unwrap();
    let out = once_all(&cfg).await;
    assert!(out.status.success(), "{out:?}");
    assert!(feeds.total_requests() >= 3, "every source was polled");
    assert!(rx.received().is_empty(), "nothing was triggered");
    assert_eq!(counts(&state_dir), before);
}
