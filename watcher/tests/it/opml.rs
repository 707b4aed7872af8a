//! opml.rs: `export-opml` then `import-opml` through the real binary: the feeds come back.

use crate::helpers::*;

/// A config in `dir` for `authors` (name, feed URLs); nothing is ever delivered.
fn offline_config(dir: &std::path::Path, authors: &[(&str, &[&str])]) -> std::path::PathBuf {
    let authors: Vec<AuthorFeeds> = authors
        .iter()
        .map(|&(name, feeds)| AuthorFeeds {
            name,
            feeds: feeds.iter().map(|f| f.to_string()).collect(),
        })
        .collect();
    write_config(dir, &authors, "http://127.0.0.1:9/hook", "")
}

async fn export_opml(config: &std::path::Path) -> std::process::Output {
    watcher_cmd(config)
        .arg("export-opml")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn opml_round_trip_through_the_cli() {
    let a = tempfile::tempdir().unwrap();
    let from = offline_config(
        a.path(),
        &[
            (
                "Paul Iusztin",
                &[
                    "https://decodingml.substack.com/feed",
                    "https://medium.com/feed/@pauliusztin",
                ],
            ),
            (
                "Maxime Labonne",
                &["https://maximelabonne.substack.com/feed"],
            ),
        ],
    );
    let exported = export_opml(&from).await;
    assert!(exported.status.success());
    let opml = a.path().join("subs.opml");
    std::fs::write(&opml, &exported.stdout).unwrap();

    let b = tempfile::tempdir().unwrap();
    let into = offline_config(
        b.path(),
        &[("Paul Iusztin", &["https://decodingml.substack.com/feed"])],
    );
    let imported = watcher_cmd(&into)
        .arg("import-opml")
        .arg(&opml)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        stdout.contains("2 feed(s) added, 1 already present"),
        "{stdout}"
    );

    let config = load(&into);
    let feeds = |name: &str| -> Vec<String> {
        config
            .sources()
            .into_iter()
            .filter(|s| s.author == name)
            .map(|s| s.url)
            .collect()
    };
    assert_eq!(
        feeds("Paul Iusztin"),
        [
            "https://decodingml.substack.com/feed",
            "https://medium.com/feed/@pauliusztin"
        ]
    );
    assert_eq!(
        feeds("Maxime Labonne"),
        ["https://maximelabonne.substack.com/feed"]
    );
    let again = export_opml(&into).await;
    assert_eq!(
        again.stdout, exported.stdout,
        "export → import → export is stable"
    );
}
