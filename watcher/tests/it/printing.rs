//! printing.rs: network text is never printed raw. A real loopback feed whose new item's title
//! carries an ESC sequence, a C1 CSI and bidi overrides, a source whose root element carries
//! them and a JSON Feed whose `version` does, polled by the real binary: `once --dry-run`'s
//! stdout and log lines and `status` (table and JSON) show them escaped, never as the bytes a
//! terminal would act on.

use crate::helpers::*;

/// Clears the screen, sets the window title, colours, then reverses the text after it.
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}gpj.exe\u{2066}";

/// Characters a terminal would act on: controls other than the line ends, and bidi controls.
fn raw_controls(bytes: &[u8]) -> Vec<char> {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| {
            (c.is_control() && *c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

async fn run(cfg: &std::path::Path, args: &[&str]) -> (String, String) {
    let out = watcher_cmd(cfg).args(args).output().await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        raw_controls(&out.stdout),
        [] as [char; 0],
        "{args:?} stdout: {stdout:?}"
    );
    assert_eq!(
        raw_controls(&out.stderr),
        [] as [char; 0],
        "{args:?} stderr: {stderr:?}"
    );
    (stdout, stderr)
}

#[tokio::test]
async fn titles_root_elements_and_error_lines_are_printed_escaped() {
    let s = spawn_scene().await;
    let original = fixture("rubenerd-hugo.rss.xml");
    s.feeds.set_feed("/feed", &original);
    s.feeds.set_bytes(
        "/bad",
        format!("<?xml version=\"1.0\"?><x{HOSTILE}><item/></x{HOSTILE}>").into_bytes(),
        "application/xml",
    );
    let version = serde_json::json!({"version": format!("v{HOSTILE}"), "items": []});
    s.feeds.set_bytes(
        "/json",
        version.to_string().into_bytes(),
        "application/feed+json",
    );
    let cfg = s.one_author_config("Mallory", &["/feed", "/bad", "/json"]);
    pass(&cfg).await;
    s.feeds.set_feed(
        "/feed",
        &publish_rss(
            &original,
            "https://rubenerd.com/hostile/",
            &format!("Hi{HOSTILE}"),
        ),
    );

    let (stdout, stderr) = run(&cfg, &["once", "--all", "--dry-run"]).await;
    assert!(
        stdout.contains("https://rubenerd.com/hostile/ Hi\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{9b}31m\\u{202e}gpj.exe\\u{2066}"),
        "the title shows escaped: {stdout}"
    );
    assert!(stdout.contains("FAILED: not a feed"), "{stdout}");
    assert!(
        stdout.contains("\\u{1b}[2J"),
        "the root element shows escaped: {stdout}"
    );
    assert!(
        stderr.contains("poll failed"),
        "the log line is there: {stderr}"
    );

    let (table, _) = run(&cfg, &["status"]).await;
    assert!(
        table.contains("not a feed: the root element is `<x\\u{1b}[2J"),
        "{table}"
    );
    let (json, _) = run(&cfg, &["status", "--json"]).await;
    assert!(json.contains("\\\\u{202e}gpj.exe"), "{json}");
}
