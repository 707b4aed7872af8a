//! Process groups: cancel and timeout end a stage's whole group (SIGTERM, grace, SIGKILL), and
//! shutdown lets stages finish for the grace period, then stops them.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    Dirs, alive, reap, spawn_runner, spawn_runner_in, stage, wait_dead, wait_pid,
};

/// The leader (sh) starts a child (sleep) in the same group and waits; both pids are written.
const SLEEPER: &str = r#"
name = "sleeper"
[[stages]]
name = "sleep"
run = ["sh", "-c", "sleep 300 & echo $! > \"$1/child.pid\"; echo $$ > \"$1/leader.pid\"; wait", "sh", "@WORK@"]

[[stages]]
name = "never"
after = ["sleep"]
run = ["true"]
"#;

/// Same, but the whole group ignores SIGTERM, so only SIGKILL ends it.
const STUBBORN: &str = r#"
name = "stubborn"
[[stages]]
name = "sleep"
timeout = "1s"
run = ["sh", "-c", "trap '' TERM; sleep 300 & echo $! > \"$1/child.pid\"; echo $$ > \"$1/leader.pid\"; wait", "sh", "@WORK@"]
"#;

#[tokio::test]
async fn cancel_kills_the_running_stages_whole_process_group() {
    let runner = spawn_runner(&[("sleeper", SLEEPER)]).await;
    let id = runner.start("sleeper", json!({"config": {}})).await;
    let leader = wait_pid(&runner.dirs.work_file("leader.pid")).await;
    let child = wait_pid(&runner.dirs.work_file("child.pid")).await;
    assert!(alive(leader) && alive(child));

    let (status, run) = runner.post(&format!("/api/v1/runs/{id}/cancel")).await;
    assert_eq!(status, 200, "{run}");
    assert!(run["cancel_requested_at"].is_string(), "{run:#}");
    let run = runner.wait_finished(&id).await;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(stage(&run, "sleep")["status"], "cancelled");
    assert_eq!(stage(&run, "sleep")["error"], "cancelled");
    assert_eq!(stage(&run, "never")["status"], "skipped");
    let gone = !alive(leader) && !alive(child);
    reap(leader);
    reap(child);
    assert!(gone, "the run ends once the group is gone");
    runner.stop().await;
}

/// The whole group ignores SIGTERM and no timeout: only a cancel's SIGKILL ends it.
const DEAF: &str = r#"
name = "deaf"
[[stages]]
name = "sleep"
run = ["sh", "-c", "trap '' TERM; sleep 300 & echo $! > \"$1/child.pid\"; echo $$ > \"$1/leader.pid\"; wait", "sh", "@WORK@"]
"#;

#[tokio::test]
async fn cancel_answers_at_once_and_the_run_ends_cancelled_after_the_kill_grace() {
    let dirs = Dirs::new(&[("deaf", DEAF)]);
    let grace = Duration::from_secs(2);
    let settings = dirs.settings().with_kill_grace(grace);
    let runner = spawn_runner_in(dirs, settings).await;
    let id = runner.start("deaf", json!({"config": {}})).await;
    let leader = wait_pid(&runner.dirs.work_file("leader.pid")).await;
    let child = wait_pid(&runner.dirs.work_file("child.pid")).await;

    let asked = Instant::now();
    let (status, run) = runner.post(&format!("/api/v1/runs/{id}/cancel")).await;
    let answered = asked.elapsed();
    assert_eq!(status, 200, "{run}");
    assert!(answered < grace / 2, "cancel waited {answered:?}");
    assert_eq!(run["status"], "running", "{run:#}");
    let requested = run["cancel_requested_at"].clone();
    assert!(requested.is_string(), "{run:#}");
    // A client that timed out and retries is told the same, not that the run finished.
    let (status, again) = runner.post(&format!("/api/v1/runs/{id}/cancel")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["cancel_requested_at"], requested);

    let run = runner.wait_finished(&id).await;
    let ended = asked.elapsed();
    reap(leader);
    reap(child);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(stage(&run, "sleep")["status"], "cancelled");
    assert!(
        ended >= grace,
        "SIGKILL after the grace, ended after {ended:?}"
    );
    wait_dead(leader).await;
    wait_dead(child).await;
    let (status, _) = runner.post(&format!("/api/v1/runs/{id}/cancel")).await;
    assert_eq!(status, 409);
    runner.stop().await;
}

#[tokio::test]
async fn a_timeout_kills_the_whole_group_even_when_it_ignores_sigterm() {
    let runner = spawn_runner(&[("stubborn", STUBBORN)]).await;
    let started = Instant::now();
    let id = runner.start("stubborn", json!({"config": {}})).await;
    let leader = wait_pid(&runner.dirs.work_file("leader.pid")).await;
    let child = wait_pid(&runner.dirs.work_file("child.pid")).await;
    let run = runner.wait_finished(&id).await;
    let took = started.elapsed();
    reap(leader);
    reap(child);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(run["error"], "stage `sleep` failed: timed out after 1s");
    let sleep = stage(&run, "sleep");
    assert_eq!(sleep["status"], "failed");
    assert_eq!(sleep["exit_code"], serde_json::Value::Null);
    assert!(
        took >= Duration::from_millis(1300),
        "timeout 1s + grace 300ms, took {took:?}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    wait_dead(leader).await;
    wait_dead(child).await;
    runner.stop().await;
}

const TWO_STEPS: &str = r#"
name = "two-steps"
[[stages]]
name = "first"
run = ["sh", "-c", "echo $$ > \"$1/leader.pid\"; sleep 0.5", "sh", "@WORK@"]

[[stages]]
name = "second"
after = ["first"]
run = ["touch", "@WORK@/second-ran"]
"#;

#[tokio::test]
async fn shutdown_lets_running_stages_finish_and_keeps_queued_runs() {
    let runner = spawn_runner(&[("two-steps", TWO_STEPS)]).await;
    let first = runner.start("two-steps", json!({"config": {}})).await;
    let queued = runner.start("two-steps", json!({"config": {}})).await;
    wait_pid(&runner.dirs.work_file("leader.pid")).await;
    let dirs = runner.stop().await;

    std::fs::remove_file(dirs.work_file("leader.pid")).unwrap();
    let settings = dirs.settings();
    let runner = spawn_runner_in(dirs, settings).await;
    let run = runner.run(&first).await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(run["error"], "interrupted by shutdown");
    assert_eq!(
        stage(&run, "first")["status"],
        "succeeded",
        "it finished within the grace"
    );
    assert_eq!(stage(&run, "second")["status"], "skipped");

    // The queued run survived the restart and runs now.
    let run = runner.wait_finished(&queued).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert!(runner.dirs.work_file("second-ran").exists());
    runner.stop().await;
}

#[tokio::test]
async fn shutdown_stops_stages_that_outlive_the_grace_period() {
    let dirs = crate::helpers::Dirs::new(&[(
        "stubborn",
        STUBBORN.replace("timeout = \"1s\"\n", "").as_str(),
    )]);
    let settings = dirs
        .settings()
        .with_shutdown_grace(Duration::from_millis(300));
    let runner = spawn_runner_in(dirs, settings).await;
    let id = runner.start("stubborn", json!({"config": {}})).await;
    let leader = wait_pid(&runner.dirs.work_file("leader.pid")).await;
    let child = wait_pid(&runner.dirs.work_file("child.pid")).await;
    let started = Instant::now();
    let dirs = runner.stop().await;
    let took = started.elapsed();
    let gone = !alive(leader) && !alive(child);
    reap(leader);
    reap(child);
    assert!(gone, "the group is gone when the runner returns");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    let settings = dirs.settings();
    let runner = spawn_runner_in(dirs, settings).await;
    let run = runner.run(&id).await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(stage(&run, "sleep")["status"], "failed");
    assert_eq!(stage(&run, "sleep")["error"], "stopped at runner shutdown");
    runner.stop().await;
}
