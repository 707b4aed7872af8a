//! demo.rs: `watcher demo`: the whole system, offline, in seconds. A loopback feed server (the
//! feed kit) with two bundled real-world feeds, the embedded runner with the `demo` chain, a baseline, one new
//! article published, then detection → config written → run triggered → each stage finishing.

use std::io::Write;
use std::path::Path;
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

/// The longest the demo waits for the chain.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

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
    let feeds = FeedServer::spawn()
        .await
        .map_err(|source| WatcherError::Listen {
            addr: "127.0.0.1:0".parse().expect("valid"),
            source,
        })?;
    for (_, path, body) in FEEDS {
        feeds.set_feed(path, body);
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
        "demo: embedded pipelines runner on {runner_url}, chain `demo`"
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

    let link = "https://medium.com/@lizmarley/what-the-watcher-saw-0001";
    feeds.publish(FEEDS[0].1, link, "What the watcher saw");
    writeln!(
        out,
        "2. published a new article to Liz Marley's feed: {link}"
    )?;

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
