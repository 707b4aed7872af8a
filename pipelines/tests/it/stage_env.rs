//! What a stage process's environment holds, seen by real child processes that dump it: the
//! runner's secrets never (project-named ones, and those its embedder names), and with a chain's
//! `env_clear` only `env_allow` plus what the runner always sets.

use std::collections::BTreeSet;

use crate::helpers::{Dirs, TOKEN, spawn_runner_binary, spawn_runner_in, wait_file};
use serde_json::json;

const DUMP: &str = r#"
name = "dump"
[[stages]]
name = "env"
run = ["sh", "-c", "env > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"", "sh", "@WORK@/env"]
"#;

const CLEARED: &str = r#"
name = "dump"
env_clear = true
env_allow = ["HOME", "CARGO_PKG_NAME", "NOT_SET_ANYWHERE_42"]
[[stages]]
name = "env"
run = ["sh", "-c", "env > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"", "sh", "@WORK@/env"]
env = { EXTRA = "{run_id}" }
"#;

const PREFIXED: &str = r#"
name = "dump"
env_clear = true
env_allow = ["ZENML_*"]
[[stages]]
name = "env"
run = ["sh", "-c", "env > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"", "sh", "@WORK@/env"]
"#;

/// Starts the `dump` chain on the runner binary at `url`.
async fn start_dump(url: &str) {
    let status = reqwest::Client::new()
        .post(format!("{url}/api/v1/chains/dump/runs"))
        .bearer_auth(TOKEN)
        .json(&json!({"config": {}}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
}

/// The names of the variables in an `env` dump, minus what `sh` adds by itself.
fn names(dump: &str) -> BTreeSet<String> {
    dump.lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.to_owned()))
        .filter(|name| !matches!(name.as_str(), "PWD" | "OLDPWD" | "SHLVL" | "_"))
        .collect()
}

#[tokio::test]
async fn a_stage_sees_none_of_the_runners_secrets() {
    let dirs = Dirs::new(&[("dump", DUMP)]);
    let (mut child, url) = spawn_runner_binary(
        &dirs,
        &["--secret-env", "ENGINE_KEY"],
        &[
            ("WATCHER_WEBHOOK_SECRET", "whsec-never-in-a-stage"),
            ("ENGINE_KEY", "engine-key-never-in-a-stage"),
        ],
    )
    .await;
    start_dump(&url).await;

    let dump = wait_file(&dirs.work_file("env")).await;
    let seen = names(&dump);
    assert!(seen.contains("PIPELINES_RUN_ID"), "{seen:?}");
    for secret in ["PIPELINES_TOKEN", "WATCHER_WEBHOOK_SECRET", "ENGINE_KEY"] {
        assert!(!seen.contains(secret), "{secret} reached the stage");
    }
    assert!(!dump.contains(TOKEN) && !dump.contains("whsec-never-in-a-stage"));
    child.kill().await.unwrap();
}

#[tokio::test]
async fn an_embedders_secret_variables_are_removed_too() {
    // Cargo sets CARGO_PKG_NAME for the test process: a real variable of the runner's own
    // environment, named as a secret by the embedding program.
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
    let dirs = Dirs::new(&[("dump", DUMP)]);
    let settings = dirs
        .settings()
        .with_secret_env(vec!["CARGO_PKG_NAME".to_owned()]);
    let runner = spawn_runner_in(dirs.clone(), settings).await;
    let id = runner.start("dump", json!({"config": {}})).await;
    runner.wait_finished(&id).await;
    let seen = names(&wait_file(&dirs.work_file("env")).await);
    assert!(seen.contains("PIPELINES_STAGE"), "{seen:?}");
    assert!(
        seen.contains("PATH") && !seen.contains("CARGO_PKG_NAME"),
        "{seen:?}"
    );
    runner.stop().await;
}

#[tokio::test]
async fn with_env_clear_a_stage_sees_only_the_allowed_and_the_always_set() {
    let dirs = Dirs::new(&[("dump", CLEARED)]);
    let settings = dirs
        .settings()
        .with_secret_env(vec!["CARGO_PKG_NAME".to_owned()]);
    let runner = spawn_runner_in(dirs.clone(), settings).await;
    let id = runner.start("dump", json!({"config": {}})).await;
    let run = runner.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let seen = names(&wait_file(&dirs.work_file("env")).await);

    // What the runner documents it always sets, the stage's own `env`, and the allowed
    // variables the runner has (HOME); an allowed secret (CARGO_PKG_NAME) still never passes.
    let mut expected: BTreeSet<String> = pipelines::stage_env::ALWAYS_SET
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    expected.insert("EXTRA".into());
    if std::env::var_os("HOME").is_some() {
        expected.insert("HOME".into());
    }
    assert_eq!(seen, expected);
    runner.stop().await;
}

#[tokio::test]
async fn a_prefix_in_env_allow_passes_a_tools_variables_but_no_secret() {
    let dirs = Dirs::new(&[("dump", PREFIXED)]);
    let (mut child, url) = spawn_runner_binary(
        &dirs,
        &["--secret-env", "ZENML_STORE_API_KEY"],
        &[
            ("ZENML_CONFIG_PATH", "/tmp/zenml-config"),
            ("ZENML_ANALYTICS_OPT_IN", "false"),
            ("ZENML_STORE_API_KEY", "ZENKEY_never-in-a-stage"),
            ("ZENMLISH", "not the prefix"),
        ],
    )
    .await;
    start_dump(&url).await;
    let dump = wait_file(&dirs.work_file("env")).await;
    let zenml: BTreeSet<String> = names(&dump)
        .into_iter()
        .filter(|name| name.starts_with("ZENML"))
        .collect();
    assert_eq!(
        zenml,
        BTreeSet::from(["ZENML_ANALYTICS_OPT_IN".into(), "ZENML_CONFIG_PATH".into()])
    );
    assert!(
        dump.contains("ZENML_CONFIG_PATH=/tmp/zenml-config"),
        "{dump}"
    );
    assert!(!dump.contains("never-in-a-stage"));
    child.kill().await.unwrap();
}
