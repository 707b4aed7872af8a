//! REST contract: every route, auth failures, idempotency, JSON errors with the right status.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TOKEN, spawn_runner, stage};

const QUICK: &str = r#"
name = "quick"
description = "one quick stage"
[params]
greeting = "hello"
[[stages]]
name = "say"
run = ["sh", "-c", "echo \"$1 from $2\"; echo to-stderr >&2", "sh", "{param.greeting}", "{stage}"]
"#;

const NEEDS_PARAM: &str = r#"
name = "needs-param"
[[stages]]
name = "echo"
run = ["echo", "{param.who}"]
"#;

const SLOW: &str = r#"
name = "slow"
[[stages]]
name = "sleep"
run = ["sleep", "30"]
"#;

const SCHEDULED: &str = r#"
name = "nightly"
schedule = "0 3 * * *"
timezone = "Europe/Berlin"
default_config = "nightly.yaml"
[[stages]]
name = "a"
run = ["true"]
[[stages]]
name = "b"
after = ["a"]
run = ["true"]
timeout = "90s"
"#;

async fn runner() -> crate::helpers::TestRunner {
    spawn_runner(&[
        ("quick", QUICK),
        ("needs-param", NEEDS_PARAM),
        ("slow", SLOW),
        ("nightly", SCHEDULED),
    ])
    .await
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let runner = runner().await;
    let response = reqwest::get(runner.url("/healthz")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok", "chains": 4}));
    runner.stop().await;
}

#[tokio::test]
async fn every_api_route_requires_the_bearer_token() {
    let runner = runner().await;
    let routes = [
        ("GET", "/api/v1/chains"),
        ("POST", "/api/v1/chains/quick/runs"),
        ("GET", "/api/v1/runs"),
        ("GET", "/api/v1/runs/some-id"),
        ("POST", "/api/v1/runs/some-id/cancel"),
        ("GET", "/api/v1/runs/some-id/stages/say/log"),
    ];
    let http = reqwest::Client::new();
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Basic dXNlcjpwYXNz"),
            Some(TOKEN),
        ] {
            let mut request = http.request(method.clone(), runner.url(path));
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}"
            );
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        }
    }
    // The scheme is case-insensitive.
    let response = http
        .get(runner.url("/api/v1/chains"))
        .header("Authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    runner.stop().await;
}

#[tokio::test]
async fn create_run_is_idempotent() {
    let runner = runner().await;
    let body = json!({
        "config": {"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://a/1"]}},
        "idempotency_key": "batch-1",
        "params": {"greeting": "hi"}
    });
    let (status, created) = runner.post_run("quick", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["chain"], "quick");
    assert_eq!(created["status"], "queued");
    assert_eq!(created["error"], Value::Null);
    assert_eq!(created["idempotency_key"], "batch-1");
    assert_eq!(created["params"], json!({"greeting": "hi"}));
    assert_eq!(
        stage(&created, "say"),
        &json!({"name": "say", "status": "queued", "exit_code": null, "started_at": null,
                "finished_at": null, "attempts": 0, "error": null})
    );

    // Same key, same body (keys in another order): 200 with the same run.
    let reordered = json!({
        "params": {"greeting": "hi"},
        "idempotency_key": "batch-1",
        "config": {"parameters": {"links": ["https://a/1"], "user_full_name": "Paul Iusztin"}}
    });
    let (status, again) = runner.post_run("quick", reordered).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], id);

    // Same key, different body: 409.
    let mut different = body.clone();
    different["config"]["parameters"]["links"] = json!(["https://a/2"]);
    let (status, conflict) = runner.post_run("quick", different).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert!(
        conflict["error"].as_str().unwrap().contains("batch-1"),
        "{conflict}"
    );

    // Same key, other chain: also a different request.
    let (status, _) = runner.post_run("slow", body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Without a key every POST is a new run.
    let first = runner.start("quick", json!({"config": {}})).await;
    let second = runner.start("quick", json!({"config": {}})).await;
    assert_ne!(first, second);

    let done = runner.wait_finished(id).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let (status, after) = runner.post_run("quick", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after["status"], "succeeded");
    runner.stop().await;
}

#[tokio::test]
async fn create_run_rejects_bad_requests_with_json_errors() {
    let runner = runner().await;
    let cases = [
        (
            "nope",
            json!({"config": {}}),
            StatusCode::NOT_FOUND,
            "unknown chain `nope`",
        ),
        (
            "quick",
            json!({"config": [1, 2]}),
            StatusCode::BAD_REQUEST,
            "`config` must be a JSON object",
        ),
        (
            "quick",
            json!({"config": {}, "extra": 1}),
            StatusCode::BAD_REQUEST,
            "unknown field `extra`",
        ),
        (
            "quick",
            json!({"config": {}, "params": {"x": {"deep": 1}}}),
            StatusCode::BAD_REQUEST,
            "param `x` must be",
        ),
        (
            "quick",
            json!({"config": {}, "idempotency_key": ""}),
            StatusCode::BAD_REQUEST,
            "idempotency_key",
        ),
        (
            "quick",
            json!({}),
            StatusCode::BAD_REQUEST,
            "no `default_config`",
        ),
        (
            "needs-param",
            json!({"config": {}}),
            StatusCode::BAD_REQUEST,
            "needs params `who`",
        ),
        (
            "nightly",
            json!({}),
            StatusCode::BAD_REQUEST,
            "cannot use the default config",
        ),
    ];
    for (chain, body, want_status, want_message) in cases {
        let (status, error) = runner.post_run(chain, body.clone()).await;
        assert_eq!(status, want_status, "{chain} {body}: {error}");
        let message = error["error"]
            .as_str()
            .unwrap_or_else(|| panic!("not a JSON error: {error}"));
        assert!(
            message.contains(want_message),
            "{message:?} lacks {want_message:?}"
        );
    }
    let (status, error) = runner
        .send(
            runner
                .http
                .post(runner.url("/api/v1/chains/quick/runs"))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body")
    );
    // Params fill placeholders: with `who` the run is accepted.
    let id = runner
        .start("needs-param", json!({"config": {}, "params": {"who": "x"}}))
        .await;
    assert_eq!(runner.wait_finished(&id).await["status"], "succeeded");
    runner.stop().await;
}

#[tokio::test]
async fn get_run_and_list_runs_with_filters_and_pages() {
    let runner = runner().await;
    let (status, error) = runner.get("/api/v1/runs/0000-unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("`0000-unknown` not found")
    );

    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = runner.start("quick", json!({"config": {}})).await;
        runner.wait_finished(&id).await;
        ids.push(id);
    }
    let failed = runner
        .start("needs-param", json!({"config": {}, "params": {"who": "x"}}))
        .await;
    runner.wait_finished(&failed).await;

    let (status, all) = runner.get("/api/v1/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["runs"].as_array().unwrap().len(), 4);
    assert_eq!(all["next"], Value::Null);
    assert_eq!(all["runs"][0]["id"], failed.as_str(), "newest first");

    let (_, page) = runner.get("/api/v1/runs?chain=quick&limit=2").await;
    let got: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()]);
    let next = page["next"].as_str().expect("a next cursor");
    let (_, rest) = runner
        .get(&format!("/api/v1/runs?chain=quick&limit=2&cursor={next}"))
        .await;
    let got: Vec<&str> = rest["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[0].as_str()]);
    assert_eq!(rest["next"], Value::Null);

    let (_, succeeded) = runner
        .get("/api/v1/runs?status=succeeded&chain=needs-param")
        .await;
    assert_eq!(succeeded["runs"].as_array().unwrap().len(), 1);
    let (_, none) = runner.get("/api/v1/runs?status=cancelled").await;
    assert_eq!(none["runs"], json!([]));

    for (query, want) in [
        ("status=done", "unknown run status `done`"),
        ("limit=0", "bad `limit`"),
        ("limit=abc", "bad `limit`"),
    ] {
        let (status, error) = runner.get(&format!("/api/v1/runs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(error["error"].as_str().unwrap().contains(want), "{error}");
    }

    let run = runner.run(&ids[0]).await;
    for key in [
        "id",
        "chain",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "stages",
        "error",
        "run_dir",
        "trigger",
    ] {
        assert!(run.get(key).is_some(), "missing {key} in {run:#}");
    }
    assert_eq!(run["trigger"], "api");
    let say = stage(&run, "say");
    assert_eq!(say["status"], "succeeded");
    assert_eq!(say["exit_code"], 0);
    assert!(say["started_at"].is_string() && say["finished_at"].is_string());
    runner.stop().await;
}

#[tokio::test]
async fn cancel_queued_running_finished_and_unknown_runs() {
    let runner = runner().await;
    let running = runner.start("slow", json!({"config": {}})).await;
    let queued = runner.start("slow", json!({"config": {}})).await;
    runner
        .wait_run(&running, |run| stage(run, "sleep")["status"] == "running")
        .await;
    assert_eq!(
        runner.run(&queued).await["status"],
        "queued",
        "concurrency 1 queues"
    );

    let (status, cancelled) = runner.post(&format!("/api/v1/runs/{queued}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(stage(&cancelled, "sleep")["status"], "skipped");

    let (status, cancelling) = runner.post(&format!("/api/v1/runs/{running}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{cancelling}");
    assert!(
        matches!(cancelling["status"].as_str(), Some("running" | "cancelled")),
        "{cancelling:#}"
    );
    assert!(
        cancelling["cancel_requested_at"].is_string(),
        "{cancelling:#}"
    );
    let cancelled = runner.wait_finished(&running).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["error"], "cancelled");
    assert_eq!(stage(&cancelled, "sleep")["status"], "cancelled");

    let (status, error) = runner.post(&format!("/api/v1/runs/{running}/cancel")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("already finished with status `cancelled`")
    );

    let (status, error) = runner.post("/api/v1/runs/unknown/cancel").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    runner.stop().await;
}

#[tokio::test]
async fn stage_log_has_stdout_and_stderr() {
    let runner = runner().await;
    let id = runner.start("quick", json!({"config": {}})).await;
    runner.wait_finished(&id).await;
    let response = runner
        .http
        .get(runner.url(&format!("/api/v1/runs/{id}/stages/say/log")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let log = response.text().await.unwrap();
    assert!(log.contains("hello from say\n"), "{log}");
    assert!(log.contains("to-stderr\n"), "{log}");
    assert!(
        log.starts_with("[pipelines] "),
        "a header line says what ran: {log}"
    );

    let (status, tail) = runner
        .get(&format!("/api/v1/runs/{id}/stages/say/log?offset=100000"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tail, Value::String(String::new()));

    let (status, error) = runner
        .get(&format!("/api/v1/runs/{id}/stages/nope/log"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("has no stage `nope`"),
        "{error}"
    );
    let (status, _) = runner.get("/api/v1/runs/unknown/stages/say/log").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    runner.stop().await;
}

#[tokio::test]
async fn list_chains_describes_each_chain() {
    let runner = runner().await;
    let (status, body) = runner.get("/api/v1/chains").await;
    assert_eq!(status, StatusCode::OK);
    let chains = body["chains"].as_array().unwrap();
    let names: Vec<&str> = chains.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["needs-param", "nightly", "quick", "slow"]);
    let nightly = &chains[1];
    assert_eq!(nightly["schedule"], "0 3 * * *");
    assert_eq!(nightly["timezone"], "Europe/Berlin");
    assert!(nightly["next_scheduled_at"].is_string());
    assert_eq!(nightly["concurrency"], 1);
    assert_eq!(nightly["stages"][1]["after"], json!(["a"]));
    assert_eq!(nightly["stages"][1]["timeout"], "1m 30s");
    assert_eq!(chains[2]["stages"][0]["run"][4], "{param.greeting}");
    runner.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let runner = runner().await;
    let (status, error) = runner.get("/api/v2/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("no route for `GET /api/v2/nothing`")
    );
    let (status, error) = runner
        .send(runner.http.delete(runner.url("/api/v1/runs/x")))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error["error"].is_string(), "{error}");
    runner.stop().await;
}
