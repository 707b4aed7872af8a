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
fn platform_rss(title: &str, generator: &str, items: &[(String, Option<String>, String)]) -> String {
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
            .map(|n| (substack_link(*n), Some(substack_link(*n)), substack_title(*n)))
            .collect()
    };
    vec![
        (
            LINK_SOURCES[0],
            platform_rss("Stories by Ada on Medium", "Medium", &medium_items(medium, true)),
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
    let list: Vec<String> = sources.iter().map(|p| format!("\"{HOST}{p}\"")).collect();
    let text = format!(
        r#"[watcher]
state_dir = "state"
output_dir = "out"
interval = "30m"
batch_window = "0s"
min_interval = "0s"
listen = "127.0.0.1:{port}"

[fetch]
timeout = "5s"
proxy = "http://{proxy}"

[trigger]
kind = "webhook"
url = "{hook_url}"
pipeline = "digital_data_etl"
max_attempts = 3
retry_base_delay = "0s"
retry_max_delay = "0s"

[[authors]]
name = "Ada"
feeds = [{}]
"#,
        list.join(", "),
        port = free_port(),
        proxy = feeds.addr
    );
    let path = dir.join("watcher.toml");
    std::fs::write(&path, text).unwrap();
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
