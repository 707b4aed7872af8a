//! demo.rs: `watcher demo`: the whole system, offline, in seconds. A loopback feed server (the
//! feed kit) with two bundled real-world feeds and the article pages of what it publishes, the
//! embedded runner with the `demo` chain (a copy allowed to fetch from this machine only: see
//! [`offline_chains`]), a baseline, two new articles published, then detection → config written
//! → run triggered → each stage finishing → the text the chain collected.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::WatcherError;
use crate::feedkit::FeedServer;
use crate::poll::PollOutcome;
use crate::watch::{OnceOptions, Watcher};

/// Two real feeds (MIT-licensed captures from the test corpus).
const FEEDS: &[(&str, &str, &str)] = &[
    (
        "Liz Marley",
        "/liz/feed",
        include_str!("../testdata/corpus/public/medium-lizmarley.rss.xml"),
    ),
    (
        "Ruben Schade",
        "/ruben/feed",
        include_str!("../testdata/corpus/public/rubenerd-hugo.rss.xml"),
    ),
];

/// The articles the demo publishes to Liz Marley's feed: path on the feed server, title, and
/// the paragraphs of its page (30 words and more, so the chain has sentences to work on).
const ARTICLES: &[(&str, &str, &[&str])] = &[
    (
        "/liz/what-the-watcher-saw",
        "What the watcher saw",
        &[
            "The watcher polls every feed on its own schedule and remembers each article it has seen. When a new one appears, it writes a fresh pipeline config that lists the new link.",
            "Then the chain starts. Its first stage fetches the article, keeps the raw page, and extracts the title and the main text. Menus, headers and footers are left out.",
            "Later stages cut the text into overlapping chunks and build small datasets from the article's own sentences. Nothing in this demo needs the internet.",
        ],
    ),
    (
        "/liz/chunks-and-sentences",
        "Chunks and sentences",
        &[
            "A language model learns a voice from what an author actually wrote. So the datasets pair each sentence of an article with the sentence that follows it.",
            "The instruct dataset asks the model to continue the article. The preference dataset prefers the real next sentence to a refusal. Both are tiny here, but the flow is the real one.",
        ],
    ),
];

/// The longest the demo waits for the chain.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// An article page: a site's navigation and footer around the article, as real pages have.
fn article_page(title: &str, paragraphs: &[&str]) -> String {
    let body: String = paragraphs.iter().map(|p| format!("<p>{p}</p>\n")).collect();
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title} | Liz Marley</title></head>\n<body><nav><a href=\"/\">Home</a> <a href=\"/about\">About</a></nav>\n<article><h1>{title}</h1>\n{body}</article>\n<footer>Written by Liz Marley. Subscribe for more.</footer></body></html>\n"
    )
}

/// Writes into `into` a copy of the `demo` chain in `chains` that may fetch from this machine
/// only (`[params] fetch_allow = "loopback"`), its paths pointing back at `chains`. The shipped
/// chain fetches from public addresses only, so a feed cannot make it read a local service;
/// the demo and the tests, whose article pages are on loopback, run this copy.
pub fn offline_chains(chains: &Path, into: &Path) -> Result<PathBuf, WatcherError> {
    let source = chains.join("demo.toml");
    let problem = |what: String| WatcherError::Usage(format!("cannot copy the demo chain: {what}"));
    let text = std::fs::read_to_string(&source)
        .map_err(|e| problem(format!("`{}`: {e}", source.display())))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| problem(format!("`{}`: {e}", source.display())))?;
    let chains = std::path::absolute(chains).unwrap_or_else(|_| chains.to_path_buf());
    let absolute = |key: &str, default: &str| {
        let relative = doc.get(key).and_then(|v| v.as_str()).unwrap_or(default);
        chains.join(relative).display().to_string()
    };
    let workdir = absolute("workdir", ".");
    let default_config = doc
        .get("default_config")
        .and_then(|v| v.as_str())
        .map(|_| absolute("default_config", ""));
    doc["workdir"] = toml_edit::value(workdir);
    if let Some(config) = default_config {
        doc["default_config"] = toml_edit::value(config);
    }
    doc["params"]["fetch_allow"] = toml_edit::value("loopback");
    std::fs::create_dir_all(into).map_err(|e| problem(format!("`{}`: {e}", into.display())))?;
    let target = into.join("demo.toml");
    std::fs::write(&target, doc.to_string())
        .map_err(|e| problem(format!("`{}`: {e}", target.display())))?;
    Ok(into.to_path_buf())
}

fn demo_config(feed_base: &str, chains: &Path) -> String {
    let mut text = format!(
        r#"# written by `watcher demo`
[watcher]
state_dir = "state"
output_dir = "configs"
interval = "30m"
listen = "127.0.0.1:0"

[trigger]
kind = "embedded"
pipeline = "demo"
chains_dir = {chains}
retry_base_delay = "1s"
"#,
        chains = serde_json::to_string(&chains.display().to_string()).expect("a string"),
    );
    for (name, path, _) in FEEDS {
        text.push_str(&format!(
            "\n[[authors]]\nname = \"{name}\"\nfeeds = [\"{feed_base}{path}\"]\n"
        ));
    }
    text
}

/// Runs the demo in `dir` with the chains in `chains`; returns whether the run succeeded.
pub async fn run(dir: &Path, chains: &Path, out: &mut impl Write) -> Result<bool, WatcherError> {
    let chains = std::path::absolute(chains).unwrap_or_else(|_| chains.to_path_buf());
    if !chains.join("demo.toml").exists() {
        return Err(WatcherError::Usage(format!(
            "no demo chain at `{}`; hint: run from the repository root or pass --chains DIR (the package installs them in /usr/share/watcher/chains)",
            chains.join("demo.toml").display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| WatcherError::Usage(format!("cannot create `{}`: {e}", dir.display())))?;
    let shipped = chains;
    let chains = offline_chains(&shipped, &dir.join("chains"))?;
    let feeds = FeedServer::spawn()
        .await
        .map_err(|source| WatcherError::Listen {
            addr: "127.0.0.1:0".parse().expect("valid"),
            source,
        })?;
    for (_, path, body) in FEEDS {
        feeds.set_feed(path, body);
    }
    for (path, title, paragraphs) in ARTICLES {
        let page = article_page(title, paragraphs);
        feeds.set_bytes(path, page.into_bytes(), "text/html; charset=utf-8");
    }
    let feed_base = feeds.url("");

    let config_path = dir.join("watcher.toml");
    std::fs::write(&config_path, demo_config(&feed_base, &chains))
        .map_err(|e| WatcherError::Usage(format!("cannot write the demo config: {e}")))?;
    let config = crate::preflight::load(&config_path)?;
    writeln!(out, "demo: working in {}", dir.display())?;
    writeln!(
        out,
        "demo: feed server on {feed_base} with {} real feeds",
        FEEDS.len()
    )?;

    let watcher = Watcher::open(config)?;
    let runner = watcher.embedded().expect("the demo config is embedded");
    let runner_url = runner.url().to_string();
    let runner_token = runner.token().to_owned();
    writeln!(
        out,
        "demo: embedded pipelines runner on {runner_url}, chain `demo` of {} (fetching from this machine only)",
        shipped.display()
    )?;

    let all = OnceOptions {
        all: true,
        ..OnceOptions::default()
    };
    let first = watcher.once(all, |_, _, _| {}).await?;
    for p in &first.polls {
        if let PollOutcome::Baseline { recorded } = p.outcome {
            writeln!(
                out,
                "1. baseline: {recorded} items recorded for {} (nothing triggered)",
                p.source.author
            )?;
        }
    }

    for (path, title, paragraphs) in ARTICLES {
        let link = feeds.url(path);
        feeds.publish(FEEDS[0].1, &link, title);
        let words: usize = paragraphs
            .iter()
            .map(|p| p.split_whitespace().count())
            .sum();
        writeln!(
            out,
            "2. published a new article to Liz Marley's feed: {link} ({words} words)"
        )?;
    }

    let second = watcher.once(all, |_, _, _| {}).await?;
    for p in &second.polls {
        if let PollOutcome::Polled { new, .. } = &p.outcome
            && !new.is_empty()
        {
            writeln!(
                out,
                "3. detected {} new article(s) for {}",
                new.len(),
                p.source.author
            )?;
        }
    }
    let Some(delivery) = second.deliveries.first() else {
        writeln!(out, "demo FAILED: nothing was delivered")?;
        watcher.shutdown().await?;
        return Ok(false);
    };
    writeln!(out, "4. config written: {}", delivery.config_path.display())?;
    if let Ok(text) = std::fs::read_to_string(&delivery.config_path) {
        for line in text.lines() {
            writeln!(out, "     {line}")?;
        }
    }
    let run = match &delivery.outcome {
        Ok(run) => run.clone(),
        Err(e) => {
            writeln!(out, "demo FAILED: {}", crate::causes::one_line(e))?;
            watcher.shutdown().await?;
            return Ok(false);
        }
    };
    writeln!(
        out,
        "5. run triggered over REST: {run} (idempotency key {})",
        delivery.batch_id
    )?;

    let run_id = run.id.clone();
    let final_run = follow_stages(&runner_url, &runner_token, &run_id, out).await?;
    watcher
        .wait_for_runs(&second, Duration::from_secs(5), |_, _| {})
        .await?;
    watcher.shutdown().await?;
    let Some(final_run) = final_run else {
        writeln!(out, "demo FAILED: could not follow run {run_id}")?;
        return Ok(false);
    };
    let status = final_run.status;
    let run_dir = final_run.run_dir;
    let outputs = run_dir.join("outputs");
    writeln!(out, "7. run {run_id} {status}")?;
    writeln!(out, "   stage outputs: {}", outputs.display())?;
    if let Ok(entries) = std::fs::read_dir(&outputs) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        for n in names {
            writeln!(out, "     {n}")?;
        }
    }
    writeln!(out, "   stage logs: {}", run_dir.join("logs").display())?;
    print_collected(&outputs, out)?;
    let ok = status == pipelines::RunStatus::Succeeded;
    writeln!(out, "demo {}", if ok { "succeeded" } else { "FAILED" })?;
    Ok(ok)
}

/// Prints each stage's changes until the run ends; returns the final run.
async fn follow_stages(
    url: &str,
    token: &str,
    run_id: &str,
    out: &mut impl Write,
) -> std::io::Result<Option<pipelines::Run>> {
    let Ok(base) = url::Url::parse(url) else {
        return Ok(None);
    };
    let client = pipelines::Client::new(base, token.trim());
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    let mut seen: Vec<(String, pipelines::StageStatus)> = Vec::new();
    writeln!(out, "6. following the chain:")?;
    while tokio::time::Instant::now() < deadline {
        let Ok(run) = client.run(run_id).await else {
            return Ok(None);
        };
        for stage in &run.stages {
            let step = (stage.name.clone(), stage.status);
            if !seen.contains(&step) && stage.status != pipelines::StageStatus::Queued {
                writeln!(out, "   stage {:<30} {}", stage.name, stage.status)?;
                seen.push(step);
            }
        }
        if run.status.is_finished() {
            return Ok(Some(run));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// What the chain's first stage collected: each document's title, size and opening words.
fn print_collected(outputs: &Path, out: &mut impl Write) -> std::io::Result<()> {
    let Ok(text) = std::fs::read_to_string(outputs.join("cleaned_documents.jsonl")) else {
        return Ok(());
    };
    writeln!(out, "8. collected text (cleaned_documents.jsonl):")?;
    for line in text.lines() {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let title = doc["title"].as_str().unwrap_or("");
        let body = doc["text"].as_str().unwrap_or("");
        let opening: String = body
            .split_whitespace()
            .take(16)
            .collect::<Vec<_>>()
            .join(" ");
        writeln!(
            out,
            "   \"{}\" ({} words): {} ...",
            crate::printable::printable_within(title, 80),
            doc["words"],
            crate::printable::printable_within(&opening, 160)
        )?;
    }
    Ok(())
}
