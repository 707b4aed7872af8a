//! Gates and budgets end to end: real runners (on a manual, paused clock where time matters)
//! running real stages; deferral with its reason, opening by count across runs and by time with
//! the runner's own catch-up run, a failed gated stage keeping its count, budget exhaustion and
//! `force`, durability across a real runner process's crash, and the REST and CLI views.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use pipelines::Clock;
use pipelines::gate::when;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Dirs, TOKEN, TestRunner, spawn_runner_binary, spawn_runner_in, stage};

/// `etl` → `datasets` (gated; `@GATE@`) → `train`. Each stage appends its name to a file in the
/// work directory; `datasets` fails while the file `fail` exists there.
const GATED: &str = r#"
name = "twin"
[[stages]]
name = "etl"
run = ["sh", "-c", "echo etl >> \"$1/ran\"", "sh", "@WORK@"]

[[stages]]
name = "datasets"
after = ["etl"]
gate = @GATE@
run = ["sh", "-c", "echo datasets >> \"$1/ran\"; test ! -e \"$1/fail\"", "sh", "@WORK@"]

[[stages]]
name = "train"
after = ["datasets"]
run = ["sh", "-c", "echo train >> \"$1/ran\"", "sh", "@WORK@"]
"#;

/// [`GATED`] with `gate` as its `gate = ...` (lines after it may follow).
fn gated(gate: &str) -> String {
    GATED.replace("@GATE@", gate)
}

fn config(links: &[&str]) -> Value {
    json!({"config": {"parameters": {"user_full_name": "Paul", "links": links}}})
}

/// A whole minute, so reasons (which show minutes) are exact.
fn start_time() -> DateTime<Utc> {
    let now = Utc::now();
    now - TimeDelta::seconds(now.timestamp() % 60)
        - TimeDelta::nanoseconds(now.timestamp_subsec_nanos().into())
}

async fn runner_with_clock(dirs: Dirs, clock: &Clock) -> TestRunner {
    let settings = dirs.settings().with_clock(clock.clone());
    spawn_runner_in(dirs, settings).await
}

/// Starts a run with `links` and waits for its end.
async fn run_with(runner: &TestRunner, chain: &str, body: Value) -> Value {
    let id = runner.start(chain, body).await;
    runner.wait_finished(&id).await
}

fn ran(dirs: &Dirs) -> Vec<String> {
    std::fs::read_to_string(dirs.work_file("ran"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn gates(runner: &TestRunner, chain: &str) -> Value {
    let (status, body) = runner.get(&format!("/api/v1/gates?chain={chain}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["chains"].as_array().unwrap().len(), 1, "{body:#}");
    body["chains"][0].clone()
}

#[tokio::test]
async fn a_closed_gate_defers_its_stage_and_what_follows_and_opens_by_count_across_runs() {
    let clock = Clock::manual(start_time());
    let dirs = Dirs::new(&[("twin", &gated(r#"{ min_new_links = 3, or_after = "30d" }"#))]);
    let runner = runner_with_clock(dirs.clone(), &clock).await;

    let run = run_with(&runner, "twin", config(&["https://a/1", "https://a/2"])).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["error"], Value::Null);
    assert_eq!(stage(&run, "etl")["status"], "succeeded");
    let opens = when(clock.now() + TimeDelta::days(30));
    assert_eq!(stage(&run, "datasets")["status"], "deferred");
    assert_eq!(
        stage(&run, "datasets")["error"],
        format!("2 of 3 new links; or on {opens}")
    );
    assert_eq!(stage(&run, "train")["status"], "deferred");
    assert_eq!(
        stage(&run, "train")["error"],
        "waits for deferred stage `datasets`"
    );
    assert_eq!(ran(&dirs), ["etl"]);

    // The same link again does not count twice; a new one makes three.
    let run = run_with(&runner, "twin", config(&["https://a/2"])).await;
    assert_eq!(
        stage(&run, "datasets")["error"],
        format!("2 of 3 new links; or on {opens}")
    );
    let run = run_with(&runner, "twin", config(&["https://a/2", "https://a/3"])).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(stage(&run, "datasets")["status"], "succeeded", "{run:#}");
    assert_eq!(stage(&run, "train")["status"], "succeeded");
    assert_eq!(ran(&dirs), ["etl", "etl", "etl", "datasets", "train"]);

    // Its success reset the count and restarted the clock.
    let view = gates(&runner, "twin").await;
    let gate = &view["gates"][0];
    assert_eq!(gate["stage"], "datasets");
    assert_eq!(gate["new_links"], 0);
    assert_eq!(gate["in_flight_links"], 0);
    assert_eq!(gate["open"], false);
    assert_eq!(gate["min_new_links"], 3);
    assert_eq!(gate["last_success"], json!(clock.now()));
    assert_eq!(gate["opens_at"], json!(clock.now() + TimeDelta::days(30)));
    let run = run_with(&runner, "twin", config(&["https://a/4"])).await;
    assert!(
        stage(&run, "datasets")["error"]
            .as_str()
            .unwrap()
            .starts_with("1 of 3 new links"),
        "{run:#}"
    );
    let (status, body) = runner.get("/api/v1/gates?chain=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    runner.stop().await;
}

/// Waits until chain `chain` has `count` runs; returns them, newest first.
async fn wait_runs(runner: &TestRunner, chain: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = runner.get(&format!("/api/v1/runs?chain={chain}")).await;
        let runs = page["runs"].as_array().unwrap().clone();
        if runs.len() >= count {
            return runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chain {chain} never had {count} runs: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn or_after_opens_the_gate_on_a_paused_clock_with_a_catch_up_run_once_even_after_downtime() {
    let start = start_time();
    let clock = Clock::manual(start);
    let dirs = Dirs::new(&[(
        "twin",
        &gated(r#"{ min_new_links = 10, or_after = "14d" }"#),
    )]);
    let runner = runner_with_clock(dirs.clone(), &clock).await;
    let first = run_with(&runner, "twin", config(&["https://a/1"])).await;
    assert_eq!(stage(&first, "datasets")["status"], "deferred");
    assert_eq!(
        stage(&first, "datasets")["error"],
        format!(
            "1 of 10 new links; or on {}",
            when(start + TimeDelta::days(14))
        )
    );
    // Thirteen days: nothing is due yet.
    clock.advance(TimeDelta::days(13));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(wait_runs(&runner, "twin", 1).await.len(), 1);

    // The runner is down when the gate comes due; it catches up once when it is back.
    let dirs = runner.stop().await;
    clock.advance(TimeDelta::days(2));
    let runner = runner_with_clock(dirs.clone(), &clock).await;
    let runs = wait_runs(&runner, "twin", 2).await;
    let catch_up = runner.wait_finished(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(catch_up["trigger"], "gate", "{catch_up:#}");
    assert_eq!(
        catch_up["idempotency_key"],
        format!(
            "gate:twin:datasets:{}",
            (start + TimeDelta::days(14)).to_rfc3339()
        )
    );
    assert_eq!(catch_up["status"], "succeeded", "{catch_up:#}");
    assert_eq!(stage(&catch_up, "etl")["status"], "skipped");
    assert_eq!(
        stage(&catch_up, "etl")["error"],
        "not part of this gate run, which starts at `datasets`"
    );
    assert_eq!(stage(&catch_up, "datasets")["status"], "succeeded");
    assert_eq!(stage(&catch_up, "train")["status"], "succeeded");
    assert_eq!(ran(&dirs), ["etl", "datasets", "train"], "no new article");

    let view = gates(&runner, "twin").await;
    assert_eq!(view["gates"][0]["new_links"], 0, "{view:#}");
    assert_eq!(view["gates"][0]["last_success"], json!(clock.now()));
    // Nothing waits now: another restart and a month start nothing.
    let dirs = runner.stop().await;
    clock.advance(TimeDelta::days(30));
    let runner = runner_with_clock(dirs, &clock).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(wait_runs(&runner, "twin", 2).await.len(), 2);
    runner.stop().await;
}

#[tokio::test]
async fn a_failed_gated_stage_keeps_its_count_and_is_not_retried_before_gate_retry() {
    let start = start_time();
    let clock = Clock::manual(start);
    let dirs = Dirs::new(&[("twin", &gated("{ min_new_links = 1 }\ngate_retry = \"1d\""))]);
    std::fs::write(dirs.work_file("fail"), "").unwrap();
    let runner = runner_with_clock(dirs.clone(), &clock).await;

    let run = run_with(&runner, "twin", config(&["https://a/1"])).await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(stage(&run, "datasets")["status"], "failed");
    let view = gates(&runner, "twin").await;
    assert_eq!(
        view["gates"][0]["new_links"], 1,
        "the count is kept: {view:#}"
    );
    assert_eq!(view["gates"][0]["last_failure"], json!(start));

    clock.advance(TimeDelta::hours(23));
    let run = run_with(&runner, "twin", config(&["https://a/2"])).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(stage(&run, "datasets")["status"], "deferred");
    assert_eq!(
        stage(&run, "datasets")["error"],
        format!(
            "failed on {}; not tried again before {} (`gate_retry`); 2 new links waiting",
            when(start),
            when(start + TimeDelta::days(1))
        )
    );
    assert_eq!(ran(&dirs), ["etl", "datasets", "etl"]);

    std::fs::remove_file(dirs.work_file("fail")).unwrap();
    clock.advance(TimeDelta::hours(1));
    let run = run_with(&runner, "twin", config(&["https://a/3"])).await;
    assert_eq!(stage(&run, "datasets")["status"], "succeeded", "{run:#}");
    let view = gates(&runner, "twin").await;
    assert_eq!(view["gates"][0]["new_links"], 0, "{view:#}");
    assert_eq!(view["gates"][0]["last_failure"], Value::Null);
    runner.stop().await;
}

/// `etl` → `paid` (cost 12.5) under a budget of 20 per 30 days.
const BUDGETED: &str = r#"
name = "paid"
budget = { limit = 20, per = "30d" }
[[stages]]
name = "etl"
run = ["true"]

[[stages]]
name = "paid"
after = ["etl"]
cost = 12.5
run = ["sh", "-c", "echo paid >> \"$1/ran\"", "sh", "@WORK@"]
"#;

#[tokio::test]
async fn an_exhausted_budget_defers_the_stage_and_force_opens_it() {
    let clock = Clock::manual(start_time());
    let dirs = Dirs::new(&[("paid", BUDGETED)]);
    let runner = runner_with_clock(dirs.clone(), &clock).await;

    let run = run_with(&runner, "paid", json!({"config": {}})).await;
    assert_eq!(stage(&run, "paid")["status"], "succeeded", "{run:#}");
    let run = run_with(&runner, "paid", json!({"config": {}})).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(stage(&run, "paid")["status"], "deferred");
    assert_eq!(
        stage(&run, "paid")["error"],
        format!(
            "budget: an attempt costs 12.5 but 7.5 of 20 per 30days is left; the oldest charge leaves the window on {}",
            when(clock.now() + TimeDelta::days(30))
        )
    );
    assert_eq!(ran(&dirs), ["paid"]);

    let forced = json!({"config": {}, "idempotency_key": "k", "force": true});
    let run = run_with(&runner, "paid", forced.clone()).await;
    assert_eq!(run["force"], true);
    assert_eq!(stage(&run, "paid")["status"], "succeeded", "{run:#}");
    assert_eq!(ran(&dirs), ["paid", "paid"]);
    // `force` is part of what the key names.
    let (status, same) = runner.post_run("paid", forced).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["id"], run["id"]);
    let (status, body) = runner
        .post_run("paid", json!({"config": {}, "idempotency_key": "k"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let budget = gates(&runner, "paid").await["budget"].clone();
    assert_eq!(budget["spent"], 25.0, "{budget:#}");
    assert_eq!(budget["left"], -5.0);
    assert_eq!(budget["limit"], 20.0);
    assert_eq!(budget["costs"]["paid"], 12.5);

    // The window rolls: a month later there is room again.
    clock.advance(TimeDelta::days(30) + TimeDelta::minutes(1));
    let run = run_with(&runner, "paid", json!({"config": {}})).await;
    assert_eq!(stage(&run, "paid")["status"], "succeeded", "{run:#}");
    runner.stop().await;
}

#[tokio::test]
async fn counts_and_spend_survive_a_crash_of_the_runner_process() {
    let dirs = Dirs::new(&[
        ("twin", &gated("{ min_new_links = 3 }")),
        ("paid", BUDGETED),
    ]);
    let (mut process, url) = spawn_runner_binary(&dirs, &[], &[]).await;
    let http = reqwest::Client::new();
    for (chain, body) in [
        ("twin", config(&["https://a/1", "https://a/2"])),
        ("paid", json!({"config": {}})),
    ] {
        let created: Value = http
            .post(format!("{url}/api/v1/chains/{chain}/runs"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let run: Value = http
                .get(format!("{url}/api/v1/runs/{id}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if run["status"] == "succeeded" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{run:#}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    // Crash: SIGKILL, no shutdown at all.
    process.start_kill().unwrap();
    process.wait().await.unwrap();

    let runner = spawn_runner_in(dirs.clone(), dirs.settings()).await;
    let view = gates(&runner, "twin").await;
    assert_eq!(view["gates"][0]["new_links"], 2, "{view:#}");
    assert_eq!(gates(&runner, "paid").await["budget"]["spent"], 12.5);
    let run = run_with(&runner, "twin", config(&["https://a/3"])).await;
    assert_eq!(
        stage(&run, "datasets")["status"],
        "succeeded",
        "2 + 1 links: {run:#}"
    );
    let run = run_with(&runner, "paid", json!({"config": {}})).await;
    assert_eq!(
        stage(&run, "paid")["status"],
        "deferred",
        "7.5 left: {run:#}"
    );
    runner.stop().await;
}

#[tokio::test]
async fn the_cli_shows_gates_budgets_and_deferred_stages() {
    let chain = gated(r#"{ min_new_links = 5, or_after = "14d" }"#)
        .replace(
            "name = \"twin\"",
            "name = \"twin\"\nbudget = { limit = 100, per = \"30d\" }",
        )
        .replace("name = \"train\"", "name = \"train\"\ncost = 40");
    let dirs = Dirs::new(&[("twin", &chain)]);
    let runner = spawn_runner_in(dirs.clone(), dirs.settings()).await;
    let run = run_with(&runner, "twin", config(&["https://a/1", "https://a/2"])).await;
    let id = run["id"].as_str().unwrap().to_owned();
    let dirs = runner.stop().await;

    let state = dirs.state.to_str().unwrap();
    let pipelines = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pipelines"))
            .args(args)
            .env_remove("PIPELINES_URL")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let chains = dirs.chains.to_str().unwrap();
    let text = pipelines(&["gates", "--chains", chains, "--state-dir", state]);
    assert!(text.contains("chain `twin`"), "{text}");
    assert!(
        text.contains("  gate datasets: 2 of 5 new links; or on "),
        "{text}"
    );
    assert!(
        text.contains("opens at 5 new links or 14days after its last success; last success never"),
        "{text}"
    );
    assert!(
        text.contains("  budget: 0 of 100 spent in the last 30days, 100 left"),
        "{text}"
    );
    assert!(text.contains("    train costs 40 per attempt"), "{text}");
    let json: Value = serde_json::from_str(&pipelines(&[
        "gates",
        "twin",
        "--json",
        "--chains",
        chains,
        "--state-dir",
        state,
    ]))
    .unwrap();
    assert_eq!(json["chains"][0]["gates"][0]["new_links"], 2);

    let text = pipelines(&["runs", &id, "--state-dir", state]);
    assert!(
        text.contains(
            "datasets                         deferred            2 of 5 new links; or on "
        ),
        "{text}"
    );
    let text = pipelines(&["runs", "--state-dir", state]);
    assert!(text.contains("succeeded"), "{text}");
    assert!(text.contains("deferred: datasets, train"), "{text}");

    let text = pipelines(&["check", chains]);
    assert!(
        text.contains("      gate: 5 new links or 14days after its last success; after a failure not before 1day"),
        "{text}"
    );
    assert!(
        text.contains("  budget: 100 per 30days (rolling)"),
        "{text}"
    );
}

#[tokio::test]
async fn no_catch_up_starts_while_a_run_of_the_chain_is_running() {
    let clock = Clock::manual(start_time());
    let chain = gated(r#"{ min_new_links = 10, or_after = "1d" }"#).replace(
        r#"run = ["sh", "-c", "echo etl >> \"$1/ran\"", "sh", "@WORK@"]"#,
        r#"run = ["sh", "-c", "while [ ! -e \"$1/go\" ]; do sleep 0.02; done; echo etl >> \"$1/ran\"; test ! -e \"$1/etl-fails\"", "sh", "@WORK@"]"#,
    );
    let dirs = Dirs::new(&[("twin", &chain)]);
    std::fs::write(dirs.work_file("go"), "").unwrap();
    let runner = runner_with_clock(dirs.clone(), &clock).await;
    let first = run_with(&runner, "twin", config(&["https://a/1"])).await;
    assert_eq!(stage(&first, "datasets")["status"], "deferred", "{first:#}");

    // A second run holds the chain (its ETL waits), and fails before it reaches the gate.
    std::fs::remove_file(dirs.work_file("go")).unwrap();
    std::fs::write(dirs.work_file("etl-fails"), "").unwrap();
    let second = runner.start("twin", config(&["https://a/2"])).await;
    runner
        .wait_run(&second, |run| stage(run, "etl")["status"] == "running")
        .await;
    clock.advance(TimeDelta::days(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        wait_runs(&runner, "twin", 2).await.len(),
        2,
        "the due gate waits while a run of its chain is running"
    );

    std::fs::write(dirs.work_file("go"), "").unwrap();
    let second = runner.wait_finished(&second).await;
    assert_eq!(second["status"], "failed", "{second:#}");
    let runs = wait_runs(&runner, "twin", 3).await;
    let catch_up = runner.wait_finished(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(catch_up["trigger"], "gate", "{catch_up:#}");
    assert_eq!(
        stage(&catch_up, "datasets")["status"],
        "succeeded",
        "{catch_up:#}"
    );
    runner.stop().await;
}
