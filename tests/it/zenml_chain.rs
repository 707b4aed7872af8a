//! zenml_chain.rs: the shipped `zenml` chain for real. An article is published to a loopback feed
//! (its page served next to it) → `watcher once` (the real binary) → the embedded runner → the
//! chain's three ZenML pipelines on ZenML's local stack, with a ZENML_CONFIG_PATH of the test's
//! own, which reaches the stages through the chain's `env_allow = ["ZENML_*", ...]`. ZenML's own
//! client then shows a completed `digital_data_etl` run whose `crawl_links` step received exactly
//! the new link and fetched its page (the page's title is in the step's output metadata).
//!
//! `#[ignore]`d: it needs ZenML, whose venv `scripts/engines/zenml.sh` installs:
//! `scripts/engines/zenml.sh run -- cargo test -p e2e-tests --test it zenml_chain -- --ignored`.
//! The venv's python comes from TRIGGER_ZENML_PYTHON; without it the test prints a note and
//! passes, except under CI=true.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::*;

const TITLE: &str = "Twin notes: a page the crawler must fetch";

/// The venv's python, or `None` (with a note) when there is none and CI is not set.
fn zenml_python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("TRIGGER_ZENML_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(python));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but TRIGGER_ZENML_PYTHON is not set: run this test under scripts/engines/zenml.sh"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "note: skipping the zenml chain test: TRIGGER_ZENML_PYTHON is not set (scripts/engines/zenml.sh)"
    );
    None
}

/// What ZenML's client says about the newest `digital_data_etl` run and its `crawl_links` step.
const READ_RUN: &str = r#"
import json
from zenml.client import Client
client = Client()
runs = client.list_pipeline_runs(pipeline=client.get_pipeline("digital_data_etl").id, sort_by="desc:created", size=10)
out = []
for run in runs.items:
    run = client.get_pipeline_run(run.id)
    step = run.steps["crawl_links"]
    outputs = step.outputs.get("crawled_links") or []
    out.append({
        "status": str(run.status.value),
        "step_status": str(step.status.value),
        "step_parameters": step.config.parameters,
        "crawled_links": outputs[0].load() if outputs else None,
        "metadata": outputs[0].run_metadata if outputs else None,
    })
print(json.dumps(out, default=str))
"#;

fn zenml_runs(python: &Path, config_path: &Path) -> Vec<Value> {
    // A file, not `-c`: loading an artifact needs a source root, the script's directory.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("read_run.py");
    std::fs::write(&script, READ_RUN).unwrap();
    let output = std::process::Command::new(python)
        .arg(&script)
        .env("ZENML_CONFIG_PATH", config_path)
        .env("ZENML_ANALYTICS_OPT_IN", "false")
        .env("ZENML_LOGGING_VERBOSITY", "ERROR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

#[tokio::test]
#[ignore = "needs ZenML: scripts/engines/zenml.sh run -- cargo test -p e2e-tests --test it zenml_chain -- --ignored"]
async fn zenml_chain_runs_a_new_article_through_real_zenml_pipelines() {
    let Some(python) = zenml_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zenml_config = dir.path().join("zenml-config");
    let t = serve_one_author(
        tempfile::tempdir_in(dir.path()).unwrap(),
        RUBEN,
        &embedded(&repo_chains(), "zenml"),
    )
    .await;
    // The three pipelines take a while on a busy machine.
    edit_config(&t.cfg, "wait_timeout = \"60s\"", "wait_timeout = \"20m\"");
    let page = format!(
        "<html><head><title>{TITLE}</title></head><body><nav>home</nav><article><h1>Twin notes</h1>\
         <p>This article exists only on a loopback server. The crawl step fetched it for real.</p>\
         <p>Its sentences become the instruct dataset of the last stage.</p></article></body></html>"
    );
    t.feeds.set_bytes(
        "/articles/twin-notes",
        page.into_bytes(),
        "text/html; charset=utf-8",
    );
    let link = t.feeds.url("/articles/twin-notes");

    let venv_bin = python.parent().unwrap();
    let path = std::env::join_paths(std::iter::once(venv_bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let once = |cfg: PathBuf| {
        let mut cmd = watcher_cmd(&cfg);
        cmd.args(["once", "--all"])
            .env("PATH", &path)
            .env("ZENML_CONFIG_PATH", &zenml_config)
            .env("LLM_TWIN_ALLOW_PRIVATE_NETWORKS", "1");
        cmd
    };
    let baseline = once(t.cfg.clone()).output().await.unwrap();
    assert!(baseline.status.success(), "{baseline:?}");
    t.publish_new(&[&link]);
    let delivered = once(t.cfg.clone()).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&delivered.stderr);
    assert!(delivered.status.success(), "{stderr}");

    let s = status(&t.cfg).await;
    assert_eq!(s.deliveries.len(), 1);
    assert_eq!(
        s.deliveries[0].run_state.as_deref(),
        Some("succeeded"),
        "the whole chain ran: {stderr}"
    );

    // ZenML's own record, through its client.
    let runs = zenml_runs(&python, &zenml_config);
    assert_eq!(runs.len(), 1, "one digital_data_etl run: {runs:#?}");
    let run = &runs[0];
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["step_status"], "completed", "{run:#}");
    assert_eq!(
        run["step_parameters"]["links"],
        serde_json::json!([link]),
        "crawl_links received exactly the new link: {run:#}"
    );
    assert_eq!(run["crawled_links"], serde_json::json!([link]));
    let page = &run["metadata"]["pages"][&link];
    assert_eq!(page["title"], TITLE, "the page was fetched: {run:#}");
    assert!(page["words"].as_u64().unwrap() >= 20, "{run:#}");
    assert_eq!(run["metadata"]["127.0.0.1"]["successful"], 1, "{run:#}");
    // The crawler's request reached the page on the feed server.
    let crawler = t
        .feeds
        .requests("/articles/twin-notes")
        .iter()
        .filter(|headers| {
            headers
                .get("user-agent")
                .and_then(|ua| ua.to_str().ok())
                .is_some_and(|ua| ua.starts_with("llm-twin-zenml-chain/"))
        })
        .count();
    assert_eq!(crawler, 1, "crawl_links fetched the page once");
}
