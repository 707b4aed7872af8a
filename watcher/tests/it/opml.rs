//! opml.rs: `export-opml` then `import-opml` through the real binary: the feeds come back.

use crate::helpers::*;

#[tokio::test]
async fn opml_round_trip_through_the_cli() {
    let a = tempfile::tempdir().unwrap();
    let from = write_config(
        a.path(),
        &[
            AuthorFeeds {
                name: "Paul Iusztin",
                feeds: vec![
                    "https://decodingml.substack.com/feed".into(),
                    "https://medium.com/feed/@pauliusztin".into(),
                ],
            },
            AuthorFeeds {
                name: "Maxime Labonne",
                feeds: vec!["https://maximelabonne.substack.com/feed".into()],
            },
        ],
        "http://127.0.0.1:9/hook",
        "",
    );
    let exported = watcher_cmd(&from)
        .arg("export-opml")
        .output()
        .await
        .unwrap();
    assert!(exported.status.success());
    let opml = a.path().join("subs.opml");
    std::fs::write(&opml, &exported.stdout).unwrap();

    let b = tempfile::tempdir().unwrap();
    let into = write_config(
        b.path(),
        &[AuthorFeeds {
            name: "Paul Iusztin",
            feeds: vec!["https://decodingml.substack.com/feed".into()],
        }],
        "http://127.0.0.1:9/hook",
        "",
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
    let again = watcher_cmd(&into)
        .arg("export-opml")
        .output()
        .await
        .unwrap();
    assert_eq!(
        again.stdout, exported.stdout,
        "export → import → export is stable"
    );
}
