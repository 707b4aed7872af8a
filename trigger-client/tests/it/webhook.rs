//! Webhook contract: body and headers as sent, the signature as a receiver verifies it,
//! retries with one Idempotency-Key, and 4xx failing at once with the receiver's text.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use trigger_client::{Error, Kind, RetryPolicy, RunRequest, RunState, exit, webhook_signature};

use crate::helpers::{client, closed_port_url};
use crate::kit::{FakeEngine, Shared, fake_engine};

const SECRET: &str = "whsec-test-1234";

/// Checks `X-Watcher-Signature` the way a receiver would: recompute over `t + "." + body`.
fn signature_is_valid(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("x-watcher-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(timestamp) = header
        .split(',')
        .find_map(|part| part.strip_prefix("t="))
        .and_then(|t| t.parse::<i64>().ok())
    else {
        return false;
    };
    let now = chrono::Utc::now().timestamp();
    (now - timestamp).abs() < 300 && webhook_signature(secret.as_bytes(), timestamp, body) == header
}

fn secret_file() -> tempfile::NamedTempFile {
    crate::helpers::secret_file(&format!("{SECRET}\n"))
}

/// A receiver that verifies the signature, answers 201 with an id and a status URL, and
/// serves that status.
async fn verifying_receiver() -> FakeEngine<()> {
    async fn hook(headers: HeaderMap, body: Bytes) -> Response {
        if !signature_is_valid(SECRET, &headers, &body) {
            return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
        }
        if headers.get("content-type").map(|v| v.as_bytes()) != Some(b"application/json") {
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "json only").into_response();
        }
        (
            StatusCode::CREATED,
            axum::Json(json!({"id": "run-7", "status_url": "/runs/run-7"})),
        )
            .into_response()
    }
    fake_engine(())
        .route("/hook", post(hook))
        .route(
            "/runs/run-7",
            get(|| async {
                axum::Json(json!({"status": "succeeded", "message": "1 article crawled"}))
            }),
        )
        .spawn()
        .await
}

#[tokio::test]
async fn posts_the_payload_as_is_with_key_and_valid_signature() {
    let engine = verifying_receiver().await;
    let secret = secret_file();
    let mut target = engine.target(Kind::Webhook, "hook");
    target.secret_file = Some(secret.path().to_owned());
    let client = client(&target);

    let payload = json!({"author": "Paul Iusztin", "items": [{"url": "https://decodingml.substack.com/p/x"}]});
    let mut req = RunRequest::new("digital_data_etl", "batch-0a1b2c");
    req.payload = Some(payload.clone());
    let handle = client.trigger(&req).await.unwrap();

    assert_eq!(handle.to_string(), "webhook:run-7");
    let seen = engine.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.path()),
        ("POST", "/hook")
    );
    assert_eq!(seen[0].header("idempotency-key"), Some("batch-0a1b2c"));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert!(
        seen[0]
            .header("user-agent")
            .unwrap()
            .starts_with("trigger-client/")
    );
    assert_eq!(seen[0].json(), payload, "the payload is sent as-is");

    let status = client.status(&handle).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(status.message.as_deref(), Some("1 article crawled"));
}

#[tokio::test]
async fn secret_from_env_var_signs_too() {
    // Cargo sets CARGO_PKG_NAME for test processes: a real env var without `set_var`.
    let engine = fake_engine(())
        .route(
            "/hook",
            post(|h: HeaderMap, b: Bytes| async move {
                if signature_is_valid("trigger-client", &h, &b) {
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }),
        )
        .spawn()
        .await;
    let mut target = engine.target(Kind::Webhook, "hook");
    target.secret_env = Some("CARGO_PKG_NAME".into());
    let handle = client(&target)
        .trigger(&RunRequest::new("p", "k-1"))
        .await
        .unwrap();
    assert_eq!(
        handle.id, "k-1",
        "no id in the answer: the key names the run"
    );
}

#[tokio::test]
async fn default_body_carries_pipeline_key_config_and_params() {
    let engine = accepting_receiver(StatusCode::ACCEPTED).await;
    let client = client(&engine.target(Kind::Webhook, "hook"));
    let mut req = RunRequest::new("digital_data_etl", "batch-1");
    req.config =
        json!({"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://a/1"]}});
    req.params.insert("source".into(), "cli".into());
    let handle = client.trigger(&req).await.unwrap();

    assert_eq!(handle.id, "batch-1");
    let seen = engine.requests();
    assert_eq!(
        seen[0].header("x-watcher-signature"),
        None,
        "no secret, no signature"
    );
    assert_eq!(
        seen[0].json(),
        json!({
            "pipeline": "digital_data_etl",
            "idempotency_key": "batch-1",
            "config": {"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://a/1"]}},
            "params": {"source": "cli"},
        })
    );
}

/// A receiver whose `/hook` always answers `status` with an empty body.
async fn accepting_receiver(status: StatusCode) -> FakeEngine<()> {
    fake_engine(())
        .route("/hook", post(move || async move { status }))
        .spawn()
        .await
}

/// Fails with 503 + `Retry-After: 1` twice, then creates one run per key (counted in the state).
async fn flaky_receiver() -> FakeEngine<usize> {
    async fn hook(State(runs): State<Shared<usize>>) -> Response {
        *runs.lock().unwrap() += 1;
        (StatusCode::CREATED, axum::Json(json!({"run_id": 42}))).into_response()
    }
    fake_engine(0)
        .fail(0..2, || {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "1")],
                "busy",
            )
                .into_response()
        })
        .route("/hook", post(hook))
        .spawn()
        .await
}

#[tokio::test]
async fn retries_503_honouring_retry_after_with_one_key() {
    let engine = flaky_receiver().await;
    let secret = secret_file();
    let mut target = engine.target(Kind::Webhook, "hook");
    target.secret_file = Some(secret.path().to_owned());
    // Zero backoff, but a 2s cap: only Retry-After can make it wait.
    let client = client(&target).with_retry(RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::ZERO,
        max_delay: Duration::from_secs(2),
    });

    let started = Instant::now();
    let handle = client
        .trigger(&RunRequest::new("p", "batch-retry"))
        .await
        .unwrap();

    assert_eq!(handle.id, "42");
    assert_eq!(*engine.state(), 1, "exactly one run");
    let seen = engine.requests();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|s| s.header("idempotency-key") == Some("batch-retry"))
    );
    assert!(
        seen.iter().all(|s| s.body == seen[0].body),
        "identical body on every attempt"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 honoured twice"
    );
}

#[tokio::test]
async fn a_4xx_fails_at_once_with_the_receivers_text() {
    let engine = fake_engine(())
        .route(
            "/hook",
            post(|| async {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({"error": "payload has no `author`"})),
                )
            }),
        )
        .spawn()
        .await;
    let err = client(&engine.target(Kind::Webhook, "hook"))
        .trigger(&RunRequest::new("p", "k"))
        .await
        .unwrap_err();

    assert_eq!(engine.count(), 1, "no retry on 422");
    assert!(!err.is_transient());
    assert_eq!(err.exit_code(), exit::USAGE);
    let text = err.to_string();
    assert!(
        text.contains("422") && text.contains("payload has no `author`"),
        "{text}"
    );
}

#[tokio::test]
async fn persistent_5xx_gives_up_naming_attempts_and_time() {
    let engine = fake_engine(())
        .route(
            "/hook",
            post(|| async { (StatusCode::BAD_GATEWAY, "upstream down") }),
        )
        .spawn()
        .await;
    let err = client(&engine.target(Kind::Webhook, "hook"))
        .with_retry(RetryPolicy::immediate(3))
        .trigger(&RunRequest::new("p", "k"))
        .await
        .unwrap_err();

    assert_eq!(engine.count(), 3);
    assert_eq!(err.exit_code(), exit::UNREACHABLE);
    assert!(err.to_string().contains("after 3 attempts in"), "{err}");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        cause.contains("502") && cause.contains("upstream down"),
        "{cause}"
    );
}

#[tokio::test]
async fn unreachable_receiver_is_a_transient_connect_error() {
    let target = trigger_client::TargetConfig::new(Kind::Webhook, closed_port_url().await);
    let err = client(&target)
        .with_retry(RetryPolicy::immediate(2))
        .trigger(&RunRequest::new("p", "k"))
        .await
        .unwrap_err();
    let Error::Exhausted { attempts, last, .. } = &err else {
        panic!("expected Exhausted, got {err:?}");
    };
    assert_eq!(*attempts, 2);
    assert!(matches!(**last, Error::Connect { .. }), "{last:?}");
    assert!(last.to_string().contains("is the server running"), "{last}");
    assert_eq!(err.exit_code(), exit::UNREACHABLE);
}

#[tokio::test]
async fn status_follows_location_and_cancel_is_unsupported() {
    let engine = fake_engine(())
        .route(
            "/hook",
            post(|| async { (StatusCode::ACCEPTED, [("location", "/jobs/abc")], "") }),
        )
        .route(
            "/jobs/abc",
            get(|| async { axum::Json(json!({"state": "running"})) }),
        )
        .spawn()
        .await;
    let client = client(&engine.target(Kind::Webhook, "hook"));
    let handle = client.trigger(&RunRequest::new("p", "abc")).await.unwrap();
    assert_eq!(
        client.status(&handle).await.unwrap().state,
        RunState::Running
    );

    let err = client.cancel(&handle).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");

    let unknown: trigger_client::RunHandle = "webhook:other".parse().unwrap();
    let err = client.status(&unknown).await.unwrap_err();
    assert!(err.to_string().contains("status_url"), "{err}");
}

#[tokio::test]
async fn status_url_template_works_across_processes() {
    let engine = fake_engine(())
        .route(
            "/runs/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    axum::Json(json!({"status": "failed", "error": format!("{id} broke")}))
                },
            ),
        )
        .spawn()
        .await;
    let mut target = engine.target(Kind::Webhook, "hook");
    target.status_url = Some(format!("{}runs/{{id}}", engine.url));
    let status = client(&target)
        .status(&"webhook:batch-9".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(status.message.as_deref(), Some("batch-9 broke"));
}

#[tokio::test]
async fn secrets_never_reach_errors_or_debug() {
    let engine = accepting_receiver(StatusCode::UNAUTHORIZED).await;
    let secret = secret_file();
    let mut target = engine.target(Kind::Webhook, "hook");
    target.secret_file = Some(secret.path().to_owned());
    target.token_file = Some(secret.path().to_owned());
    let client = client(&target);
    let err = client
        .trigger(&RunRequest::new("p", "k"))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err:?}");
    for text in [
        format!("{err}"),
        format!("{err:?}"),
        format!("{client:?}"),
        format!("{target:?}"),
    ] {
        assert!(!text.contains(SECRET), "secret leaked: {text}");
    }
    assert!(err.to_string().contains("check or renew"), "{err}");
}

#[tokio::test]
async fn wait_outlasts_an_engine_that_stops_answering_for_a_while() {
    // Poll 0 answers (running), polls 1-3 get 502, poll 4 answers (succeeded).
    let engine = fake_engine(false)
        .fail(1..=3, || {
            (StatusCode::BAD_GATEWAY, "restarting").into_response()
        })
        .route(
            "/runs/{id}",
            get(|State(answered): State<Shared<bool>>| async move {
                let status = if std::mem::replace(&mut *answered.lock().unwrap(), true) {
                    "succeeded"
                } else {
                    "running"
                };
                axum::Json(json!({"status": status}))
            }),
        )
        .spawn()
        .await;
    let mut target = engine.target(Kind::Webhook, "hook");
    target.status_url = Some(format!("{}runs/{{id}}", engine.url));
    let client = client(&target).with_retry(RetryPolicy::immediate(1));
    let status = client
        .wait(
            &"webhook:b".parse().unwrap(),
            Duration::from_secs(5),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(engine.count(), 5);
}

/// A receiver on 127.0.0.1 that names a status URL on another port of 127.0.0.1 (another origin).
async fn receiver_pointing_at(other: &str, by_location: bool) -> FakeEngine<()> {
    let status_url = format!("{other}runs/x?user=secret-path");
    fake_engine(())
        .route(
            "/hook",
            post(move || {
                let status_url = status_url.clone();
                async move {
                    if by_location {
                        (StatusCode::ACCEPTED, [("location", status_url)], "").into_response()
                    } else {
                        (
                            StatusCode::CREATED,
                            axum::Json(json!({"id": "run-x", "status_url": status_url})),
                        )
                            .into_response()
                    }
                }
            }),
        )
        .spawn()
        .await
}

#[tokio::test]
async fn a_status_url_on_another_origin_is_refused_and_never_asked() {
    for by_location in [false, true] {
        let other = fake_engine(())
            .route(
                "/runs/x",
                get(|| async { axum::Json(json!({"status": "succeeded"})) }),
            )
            .spawn()
            .await;
        let receiver = receiver_pointing_at(other.url.as_str(), by_location).await;
        let token = crate::helpers::secret_file(&format!("{SECRET}\n"));
        let mut target = receiver.target(Kind::Webhook, "hook");
        target.token_file = Some(token.path().to_owned());
        let client = client(&target);
        let handle = client
            .trigger(&RunRequest::new("p", "run-x"))
            .await
            .unwrap();

        let err = client.status(&handle).await.unwrap_err();
        assert!(
            matches!(err, Error::ForeignStatusUrl { .. }),
            "{by_location}: {err:?}"
        );
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            !text.contains(SECRET) && !text.contains("secret-path"),
            "{text}"
        );
        assert!(
            text.contains(&format!("127.0.0.1:{}", other.url.port().unwrap())),
            "{text}"
        );
        assert_eq!(err.exit_code(), exit::USAGE);
        assert_eq!(other.count(), 0, "the other origin got a request");
    }
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed_one_within_the_origin_is() {
    // Where the hostile receiver points: another origin (another port) that must see nothing.
    let elsewhere = fake_engine(())
        .route("/hook", post(|| async { StatusCode::CREATED }))
        .spawn()
        .await;
    let away = elsewhere.url.join("hook").unwrap().to_string();
    let engine = fake_engine(())
        .route(
            "/hook",
            post(move || {
                let away = away.clone();
                async move { (StatusCode::TEMPORARY_REDIRECT, [("location", away)]) }
            }),
        )
        .route(
            "/moved",
            post(|| async { (StatusCode::PERMANENT_REDIRECT, [("location", "/hook2")]) }),
        )
        .route(
            "/hook2",
            post(|| async { (StatusCode::CREATED, axum::Json(json!({"run_id": 7}))) }),
        )
        .spawn()
        .await;

    let err = client(&engine.target(Kind::Webhook, "hook"))
        .trigger(&RunRequest::new("p", "k"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Redirected { status: 307, .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), exit::USAGE);
    assert!(!err.is_transient());
    assert_eq!(engine.count(), 1, "not retried");
    assert_eq!(elsewhere.count(), 0, "the other origin was never asked");
    let text = err.to_string();
    assert!(
        text.contains(elsewhere.url.as_str()) && text.contains("not followed"),
        "{text}"
    );

    let handle = client(&engine.target(Kind::Webhook, "moved"))
        .trigger(&RunRequest::new("p", "k2"))
        .await
        .unwrap();
    assert_eq!(handle.id, "7", "a redirect within the origin is followed");
}
