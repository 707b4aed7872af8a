//! Restart after a crash: the real `pipelines serve` binary is SIGKILLed mid-run; the next
//! runner kills the process group it left, marks the run failed ("interrupted by restart") and
//! starts the run that was queued behind it.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    Dirs, TOKEN, alive, reap, spawn_runner_binary, spawn_runner_in, stage, wait_dead, wait_pid,
};

const LONG: &str = r#"
name = "long"
[params]
seconds = "300"
[[stages]]
name = "work"
run = ["sh", "-c", "(printenv PIPELINES_TOKEN || echo unset) > \"$1/token-$2\"; sleep $2 & echo $! > \"$1/child-$2.pid\"; echo $$ > \"$1/leader-$2.pid\"; wait", "sh", "@WORK@", "{param.seconds}"]

[[stages]]
name = "after"
after = ["work"]
run = ["true"]
"#;

/// Starts `pipelines serve` as a child process (short kill grace) on a free port.
async fn spawn_runner_process(dirs: &Dirs) -> (tokio::process::Child, String) {
    spawn_runner_binary(dirs, &["--kill-grace", "300ms"], &[]).await
}

#[tokio::test]
async fn a_crashed_runners_groups_are_killed_and_its_run_failed_at_the_next_start() {
    let dirs = Dirs::new(&[("long", LONG)]);
    let (mut process, url) = spawn_runner_process(&dirs).await;
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(format!("{url}/api/v1/chains/long/runs"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let interrupted: serde_json::Value = post(json!({"config": {}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let queued: serde_json::Value = post(json!({"config": {}, "params": {"seconds": "0"}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queued["status"], "queued");
    let leader = wait_pid(&dirs.work_file("leader-300.pid")).await;
    let child = wait_pid(&dirs.work_file("child-300.pid")).await;
    assert_eq!(
        std::fs::read_to_string(dirs.work_file("token-300")).unwrap(),
        "unset\n",
        "stages never see the runner's PIPELINES_TOKEN"
    );

    // Crash: SIGKILL the runner. Its stage group lives on (it has its own process group).
    process.start_kill().unwrap();
    process.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let survived = alive(leader) && alive(child);
    if !survived {
        reap(leader);
        reap(child);
    }
    assert!(
        survived,
        "a stage outlives a crashed runner until the next start"
    );

    // Restart (in-process this time): the leftover group is killed at build time.
    let settings = dirs.settings();
    let runner = spawn_runner_in(dirs, settings).await;
    wait_dead(leader).await;
    wait_dead(child).await;

    let run = runner.run(interrupted["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(run["error"], "interrupted by restart");
    assert_eq!(stage(&run, "work")["status"], "failed");
    assert_eq!(stage(&run, "work")["error"], "interrupted by restart");
    assert_eq!(stage(&run, "after")["status"], "skipped");
    assert!(run["finished_at"].is_string());

    let run = runner.wait_finished(queued["id"].as_str().unwrap()).await;
    assert_eq!(
        run["status"], "succeeded",
        "the queued run starts after the restart: {run:#}"
    );
    runner.stop().await;
}

#[tokio::test]
async fn a_second_runner_on_the_same_state_dir_is_refused() {
    let dirs = Dirs::new(&[("long", LONG)]);
    let runner = spawn_runner_in(dirs.clone(), dirs.settings()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = pipelines::Runner::build(listener, dirs.settings()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("is in use by another process"),
        "{message}"
    );
    assert!(message.contains("--url"), "{message}");
    runner.stop().await;
}
