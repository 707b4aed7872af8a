//! rest_shape.rs: a snapshot of every REST answer's JSON shape (keys, types, statuses), so a
//! refactor of the runner or of its client cannot change what engines and scripts read. Values
//! that differ per run (ids, times, paths) are replaced by their type.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_runner;

const CHAIN: &str = r#"
name = "shape"
description = "two stages"
[params]
greeting = "hello"
[[stages]]
name = "first"
run = ["true"]
[[stages]]
name = "second"
after = ["first"]
run = ["sh", "-c", "exit 3"]
"#;

const SLOW: &str = r#"
name = "slow"
[[stages]]
name = "sleep"
run = ["sleep", "30"]
"#;

const GATED: &str = r#"
name = "gated"
budget = { limit = 10, per = "30d" }
[[stages]]
name = "first"
run = ["true"]
cost = 1.5
[[stages]]
name = "second"
after = ["first"]
run = ["true"]
gate = { min_new_links = 5 }
"#;

/// Keys whose values change from run to run: replaced by `<type>`.
const VOLATILE: &[&str] = &[
    "id",
    "run_id",
    "created_at",
    "started_at",
    "finished_at",
    "cancel_requested_at",
    "run_dir",
    "next",
    "log",
    "at",
    "since",
    "window_start",
    "next_release_at",
];

/// `value` with volatile keys replaced by their type, the test's directory by `<tmp>` and run
/// ids inside messages by `<uuid>`.
fn shape(value: &Value, tmp: &str) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if VOLATILE.contains(&key.as_str()) && !value.is_null() {
                        Value::String(format!("<{}>", type_name(value)))
                    } else {
                        shape(value, tmp)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| shape(v, tmp)).collect()),
        Value::String(text) => Value::String(without_uuids(&text.replace(tmp, "<tmp>"))),
        other => other.clone(),
    }
}

/// `text` with every UUID (8-4-4-4-12 hex digits) replaced by `<uuid>`.
fn without_uuids(text: &str) -> String {
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            })
    };
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() >= 36 && rest.is_char_boundary(36) && is_uuid(&rest[..36]) {
            out.push_str("<uuid>");
            rest = &rest[36..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

#[tokio::test]
async fn every_answer_keeps_its_json_shape() {
    let runner = spawn_runner(&[("shape", CHAIN), ("slow", SLOW), ("gated", GATED)]).await;
    let tmp = runner
        .dirs
        .chains
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut answers = serde_json::Map::new();
    let mut record = |name: &str, (status, body): (StatusCode, Value)| {
        answers.insert(
            name.to_owned(),
            json!({"status": status.as_u16(), "body": shape(&body, &tmp)}),
        );
    };

    let health = reqwest::get(runner.url("/healthz")).await.unwrap();
    record(
        "GET /healthz",
        (health.status(), health.json().await.unwrap()),
    );
    record("GET /api/v1/chains", runner.get("/api/v1/chains").await);

    let body = json!({"config": {"a": 1}, "idempotency_key": "k1", "params": {"greeting": "hi"}});
    let created = runner.post_run("shape", body.clone()).await;
    let id = created.1["id"].as_str().unwrap().to_owned();
    record("POST /api/v1/chains/shape/runs (new)", created);
    record(
        "POST /api/v1/chains/shape/runs (same key, other body)",
        runner
            .post_run(
                "shape",
                json!({"config": {"a": 2}, "idempotency_key": "k1"}),
            )
            .await,
    );
    record(
        "POST /api/v1/chains/nope/runs",
        runner.post_run("nope", json!({})).await,
    );
    let finished = runner.wait_finished(&id).await;
    assert_eq!(finished["status"], "failed", "{finished:#}");
    record(
        "POST /api/v1/chains/shape/runs (same key, same body, finished run)",
        runner.post_run("shape", body).await,
    );
    record(
        "GET /api/v1/runs/{id} (failed)",
        runner.get(&format!("/api/v1/runs/{id}")).await,
    );
    record(
        "GET /api/v1/runs?chain=shape&limit=1",
        runner.get("/api/v1/runs?chain=shape&limit=1").await,
    );
    let log = runner
        .http
        .get(runner.url(&format!("/api/v1/runs/{id}/stages/first/log")))
        .bearer_auth(crate::helpers::TOKEN)
        .send()
        .await
        .unwrap();
    record(
        "GET /api/v1/runs/{id}/stages/first/log (status only)",
        (log.status(), Value::Null),
    );
    record(
        "GET /api/v1/runs/{id}/stages/nope/log",
        runner
            .get(&format!("/api/v1/runs/{id}/stages/nope/log"))
            .await,
    );
    record(
        "POST /api/v1/runs/{id}/cancel (finished)",
        runner.post(&format!("/api/v1/runs/{id}/cancel")).await,
    );
    let slow = runner.start("slow", json!({"config": {}})).await;
    runner
        .wait_run(&slow, |run| run["stages"][0]["status"] == "running")
        .await;
    record(
        "POST /api/v1/runs/{id}/cancel (running)",
        runner.post(&format!("/api/v1/runs/{slow}/cancel")).await,
    );
    runner.wait_finished(&slow).await;
    record(
        "GET /api/v1/runs/missing",
        runner.get("/api/v1/runs/missing").await,
    );
    let unauthorised = reqwest::get(runner.url("/api/v1/runs")).await.unwrap();
    record(
        "GET /api/v1/runs (no token)",
        (unauthorised.status(), unauthorised.json().await.unwrap()),
    );
    record("GET /nowhere", runner.get("/nowhere").await);

    let deferring = runner
        .start(
            "gated",
            json!({"config": {"parameters": {"links": ["https://a/1"]}}, "force": false}),
        )
        .await;
    record(
        "GET /api/v1/runs/{id} (deferred stage)",
        (StatusCode::OK, runner.wait_finished(&deferring).await),
    );
    record("GET /api/v1/gates", runner.get("/api/v1/gates").await);
    record(
        "GET /api/v1/gates?chain=nope",
        runner.get("/api/v1/gates?chain=nope").await,
    );

    insta::assert_snapshot!(serde_json::to_string_pretty(&Value::Object(answers)).unwrap());
    runner.stop().await;
}
