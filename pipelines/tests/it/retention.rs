//! Retention: finished runs older than `keep_runs` are deleted when the runner starts (and hourly),
//! with their run directories and idempotency keys; queued and running runs are kept.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Dirs, spawn_runner_in, wait_dead, wait_pid};

const QUICK: &str = r#"
name = "quick"
[[stages]]
name = "say"
run = ["true"]
"#;

/// Writes its pid to `slow-<run id>.pid` in the scratch directory and sleeps.
const SLOW: &str = r#"
name = "slow"
[[stages]]
name = "sleep"
run = ["sh", "-c", "echo $$ > \"$1/slow-$PIPELINES_RUN_ID.pid\"; exec sleep 300", "sh", "@WORK@"]
"#;

fn run_dir(run: &Value) -> PathBuf {
    PathBuf::from(run["run_dir"].as_str().unwrap())
}

/// Makes `dir` look last changed `age` ago.
fn age(dir: &std::path::Path, age: Duration) {
    std::fs::File::open(dir)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[tokio::test]
async fn finished_runs_past_the_retention_are_deleted_with_their_directories_and_keys() {
    let dirs = Dirs::new(&[("quick", QUICK), ("slow", SLOW)]);
    let settings = dirs
        .settings()
        .with_shutdown_grace(Duration::from_millis(100));
    let runner = spawn_runner_in(dirs.clone(), settings.clone()).await;
    let done = runner
        .start("quick", json!({"config": {}, "idempotency_key": "k1"}))
        .await;
    runner.wait_finished(&done).await;
    let stopped = runner.start("slow", json!({"config": {}})).await;
    let queued = runner.start("slow", json!({"config": {}})).await;
    let stopped_pid = wait_pid(&dirs.work_file(&format!("slow-{stopped}.pid"))).await;
    let done_dir = run_dir(&runner.run(&done).await);
    let stopped_dir = run_dir(&runner.run(&stopped).await);
    let queued_dir = run_dir(&runner.run(&queued).await);
    // Shutdown stops `stopped` (failed, so finished) and leaves `queued` queued.
    let dirs = runner.stop().await;
    wait_dead(stopped_pid).await;
    // A crash between creating a run's directory and its record leaves a directory without a
    // run; anything else in `runs/` is not the runner's to delete.
    let runs = done_dir.parent().unwrap();
    let orphan = runs.join("0190b3c4-0000-7000-8000-000000000000");
    let foreign = runs.join("notes");
    for dir in [&orphan, &foreign] {
        std::fs::create_dir_all(dir).unwrap();
        age(dir, Duration::from_secs(2 * 3600));
    }

    let settings = settings.with_keep_runs(Duration::from_millis(1));
    let runner = spawn_runner_in(dirs, settings).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while runner.get(&format!("/api/v1/runs/{done}")).await.0 != StatusCode::NOT_FOUND
        || orphan.exists()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "old finished runs were not deleted at start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = runner.get(&format!("/api/v1/runs/{stopped}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!done_dir.exists() && !stopped_dir.exists());
    assert!(foreign.exists(), "only run directories are deleted");
    let kept = runner.run(&queued).await;
    assert!(
        matches!(kept["status"].as_str(), Some("queued" | "running")),
        "{kept:#}"
    );
    assert!(queued_dir.join("config.yaml").exists());
    // The deleted run's idempotency key is free again.
    let (status, again) = runner
        .post_run("quick", json!({"config": {}, "idempotency_key": "k1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_ne!(again["id"], done.as_str());

    let queued_pid = wait_pid(&runner.dirs.work_file(&format!("slow-{queued}.pid"))).await;
    runner.stop().await;
    wait_dead(queued_pid).await;
}
