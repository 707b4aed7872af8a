//! metrics.rs: `GET /metrics` of the runner's API: Prometheus text with `pipelines_` names,
//! runs by chain and status, stage durations and the queue, behind the bearer token.

use reqwest::StatusCode;

use crate::helpers::{TOKEN, spawn_runner};

const QUICK: &str = r#"
name = "quick"
[[stages]]
name = "say"
run = ["echo", "hello"]
"#;

const FAILING: &str = r#"
name = "failing"
[[stages]]
name = "fail"
run = ["false"]
"#;

#[tokio::test]
async fn metrics_count_runs_by_chain_and_status_behind_the_token() {
    let runner = spawn_runner(&[("quick", QUICK), ("failing", FAILING)]).await;
    let id = runner
        .start("quick", serde_json::json!({"config": {}}))
        .await;
    runner.wait_finished(&id).await;
    let id = runner
        .start("failing", serde_json::json!({"config": {}}))
        .await;
    runner.wait_finished(&id).await;

    let http = reqwest::Client::new();
    let refused = http.get(runner.url("/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let response = http
        .get(runner.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    for line in [
        "pipelines_runs_total{chain=\"quick\",status=\"succeeded\"} 1",
        "pipelines_runs_total{chain=\"failing\",status=\"failed\"} 1",
        "pipelines_runs_total{chain=\"quick\",status=\"failed\"} 0",
        "pipelines_stage_duration_seconds_count{chain=\"quick\",status=\"succeeded\"} 1",
        "pipelines_stage_duration_seconds_count{chain=\"failing\",status=\"failed\"} 1",
        "pipelines_queue_length 0",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("pipelines_"), "{line}");
    }
    runner.stop().await;
}
