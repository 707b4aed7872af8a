//! demo.rs: `watcher demo` (the binary) end to end: it stays offline, and the chain collects the
//! text of the article pages it serves: titles and main text without the page's menus and
//! footer, chunks, and datasets made of the articles' own sentences.

use std::path::Path;

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_demo_chain_collects_the_text_of_the_published_articles() {
    let dir = tempfile::tempdir().unwrap();
    let chains = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/chains");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_watcher"))
        .arg("demo")
        .arg("--dir")
        .arg(dir.path().join("demo"))
        .arg("--chains")
        .arg(&chains)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("fetching from this machine only"),
        "{stdout}"
    );
    assert!(
        stdout.contains("8. collected text (cleaned_documents.jsonl):\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("   \"What the watcher saw\" (85 words): The watcher polls every feed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("   \"Chunks and sentences\" (59 words): "),
        "{stdout}"
    );
    let outputs = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("stage outputs: "))
        .expect("the outputs are named");
    let outputs = Path::new(outputs);

    let docs = jsonl(&outputs.join("cleaned_documents.jsonl"));
    let mut titles: Vec<&str> = docs.iter().map(|d| d["title"].as_str().unwrap()).collect();
    titles.sort_unstable();
    assert_eq!(titles, ["Chunks and sentences", "What the watcher saw"]);
    for doc in &docs {
        let text = doc["text"].as_str().unwrap();
        assert!(doc["words"].as_u64().unwrap() >= 30, "{doc}");
        assert!(
            doc["link"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:"),
            "{doc}"
        );
        for chrome in ["Home", "About", "Subscribe", "Liz Marley"] {
            assert!(
                !text.contains(chrome),
                "{chrome:?} is the page's, not the article's: {text}"
            );
        }
    }
    let saw = docs
        .iter()
        .find(|d| d["title"] == "What the watcher saw")
        .unwrap();
    assert!(
        saw["text"]
            .as_str()
            .unwrap()
            .starts_with("The watcher polls every feed on its own schedule"),
        "{saw}"
    );
    assert!(jsonl(&outputs.join("failed_links.jsonl")).is_empty());
    let raw = jsonl(&outputs.join("raw_documents.jsonl"));
    assert_eq!(raw.len(), 2);
    for doc in &raw {
        let page =
            std::fs::read_to_string(outputs.join(doc["raw_file"].as_str().unwrap())).unwrap();
        assert!(page.contains("<footer>"), "the raw page is kept as it came");
    }
    // Later stages work on that text: chunks of it, and sentence pairs taken from it.
    let chunks = jsonl(&outputs.join("chunks.jsonl"));
    assert!(chunks.len() >= 2, "{chunks:?}");
    let all_text: String = docs
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let instruct = jsonl(&outputs.join("instruct_dataset.jsonl"));
    assert!(instruct.len() >= 4, "{instruct:?}");
    for row in &instruct {
        let answer = row["answer"].as_str().unwrap();
        assert!(all_text.contains(answer), "{answer:?} is not the article's");
    }
    let preference = jsonl(&outputs.join("preference_dataset.jsonl"));
    assert_eq!(preference.len(), instruct.len());
    let summary = std::fs::read_to_string(outputs.join("summary.md")).unwrap();
    assert!(summary.contains("- documents: 2 ("), "{summary}");
    assert!(summary.contains("- links not fetched: 0"), "{summary}");
}
