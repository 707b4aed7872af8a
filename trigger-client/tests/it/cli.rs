//! The `trigger-client` binary end to end: help text (snapshots), output, `--target` files and
//! the exit statuses 0/1/2/3, against the fake Prefect.

use std::process::Output;

use axum::http::Method;
use serde_json::Value;

use crate::prefect::fake_prefect;

/// The fake Prefect's credentials, as `auth_string_env` reads them.
const PF_AUTH: (&str, &str) = ("PF_AUTH", "admin:ci-secret");

async fn trigger_client(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_trigger-client"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("TRIGGER_TARGET")
        .env_remove("TRIGGER_TARGETS_FILE");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn help_texts() {
    for (name, args) in [
        ("help", &["--help"][..]),
        ("short_help", &["-h"][..]),
        ("run_help", &["run", "--help"][..]),
        ("status_help", &["status", "--help"][..]),
        ("cancel_help", &["cancel", "--help"][..]),
    ] {
        let output = trigger_client(args, &[]).await;
        assert!(output.status.success());
        insta::assert_snapshot!(name, text(&output.stdout));
    }
}

#[tokio::test]
async fn run_wait_succeeds_with_exit_0_and_prints_the_id_then_states() {
    let engine = fake_prefect().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("digital_data_etl_paul_iusztin.yaml");
    std::fs::write(&config, "parameters:\n  user_full_name: Paul Iusztin\n  links:\n    - https://decodingml.substack.com/p/a\n").unwrap();
    let url = format!("{}api", engine.url);
    let output = trigger_client(
        &[
            "run",
            "--kind",
            "prefect",
            "--url",
            &url,
            "--auth-string-env",
            "PF_AUTH",
            "digital_data_etl/ci",
            "--config",
            config.to_str().unwrap(),
            "--wait",
            "--poll-interval",
            "10ms",
        ],
        &[PF_AUTH],
    )
    .await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.trim().starts_with("prefect:0b7c4a52-"), "{stdout}");
    assert!(
        stderr.contains(": running\n")
            && stderr.contains("succeeded (COMPLETED): All states completed."),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_failed_run_exits_1_with_the_engines_message() {
    let engine = fake_prefect().await;
    let url = format!("{}api", engine.url);
    let output = trigger_client(
        &[
            "run",
            "--kind",
            "prefect",
            "--url",
            &url,
            "--auth-string-env",
            "PF_AUTH",
            "fail-flow/ci",
            "--wait",
            "--poll-interval",
            "10ms",
        ],
        &[PF_AUTH],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed: Flow run encountered an exception: RuntimeError: boom"),
        "{stderr}"
    );
}

#[tokio::test]
async fn targets_file_json_output_status_and_cancel() {
    let engine = fake_prefect().await;
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[trigger]\nkind = \"prefect\"\nurl = \"{}api\"\npipeline = \"slow-flow/ci\"\nauth_string_env = \"PF_AUTH\"\nchain = \"ignored-watcher-key\"\n",
            engine.url
        ),
    )
    .unwrap();
    let common = [
        "--targets-file",
        targets.to_str().unwrap(),
        "--target",
        "trigger",
    ];
    let envs = [PF_AUTH];
    let run = "prefect:0b7c4a52-0000-4000-8000-000000000000";

    let mut args = vec![
        "run",
        "--idempotency-key",
        "batch-cli",
        "--param",
        "mode=full",
        "--json",
    ];
    args.extend(common);
    let output = trigger_client(&args, &envs).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let started: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(started["run"], run);
    assert_eq!(started["idempotency_key"], "batch-cli");
    let created = engine.bodies_to(Method::POST, "/create_flow_run");
    assert_eq!(created[0]["parameters"]["mode"], "full");
    assert_eq!(created[0]["idempotency_key"], "batch-cli");

    let mut args = vec!["status", run, "--json"];
    args.extend(common);
    let output = trigger_client(&args, &envs).await;
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["state"], "queued");

    let mut args = vec!["cancel", run];
    args.extend(common);
    let output = trigger_client(&args, &envs).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let mut args = vec!["status", run];
    args.extend(common);
    let output = trigger_client(&args, &envs).await;
    assert_eq!(
        text(&output.stdout).trim(),
        "cancelled: cancelled by trigger-client"
    );
}

#[tokio::test]
async fn usage_and_config_errors_exit_2() {
    let no_target = trigger_client(&["run", "demo"], &[]).await;
    assert_eq!(no_target.status.code(), Some(2));
    assert!(text(&no_target.stderr).contains("error: invalid target config: `kind` is missing (hint: pass --kind and --url, or --target NAME)"));

    let bad_flag = trigger_client(&["run", "--kind", "dagster"], &[]).await;
    assert_eq!(bad_flag.status.code(), Some(2));

    let missing_file = trigger_client(
        &[
            "status",
            "prefect:1",
            "--target",
            "x",
            "--targets-file",
            "/nonexistent/targets.toml",
        ],
        &[],
    )
    .await;
    assert_eq!(missing_file.status.code(), Some(2));
    assert!(
        text(&missing_file.stderr)
            .contains("targets file `/nonexistent/targets.toml` cannot be read"),
        "{}",
        text(&missing_file.stderr)
    );

    let engine = fake_prefect().await;
    let url = format!("{}api", engine.url);
    let rejected = trigger_client(
        &[
            "run",
            "--kind",
            "prefect",
            "--url",
            &url,
            "--auth-string-env",
            "PF_AUTH",
            "nope/ci",
        ],
        &[PF_AUTH],
    )
    .await;
    assert_eq!(rejected.status.code(), Some(2));
    assert!(
        text(&rejected.stderr).contains("Deployment not found"),
        "{}",
        text(&rejected.stderr)
    );

    let unset_env = trigger_client(
        &[
            "run",
            "--kind",
            "prefect",
            "--url",
            &url,
            "--auth-string-env",
            "SURELY_UNSET_VAR_42",
            "slow-flow/ci",
        ],
        &[],
    )
    .await;
    assert_eq!(unset_env.status.code(), Some(2));
    assert!(
        text(&unset_env.stderr).contains("`SURELY_UNSET_VAR_42`, which is not set"),
        "{}",
        text(&unset_env.stderr)
    );
}

#[tokio::test]
async fn an_unreachable_engine_exits_3() {
    let url = crate::helpers::closed_port_url().await.to_string();
    let output = trigger_client(
        &[
            "run",
            "--kind",
            "webhook",
            "--url",
            &url,
            "--max-attempts",
            "2",
            "p",
        ],
        &[],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("still failing after 2 attempts in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("transient failure, retrying"),
        "each retry is logged: {stderr}"
    );
}

#[tokio::test]
async fn an_engines_control_characters_are_escaped_not_printed() {
    use axum::http::StatusCode;
    use axum::routing::post;
    // A hostile receiver: its error text would clear the screen, retitle the terminal and
    // reverse what follows.
    let engine = crate::kit::fake_engine(())
        .route(
            "/hook",
            post(|| async {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(serde_json::json!({
                        "error": "bad \u{1b}[2J\u{1b}]0;owned\u{7} \u{202e}txet"
                    })),
                )
            }),
        )
        .spawn()
        .await;
    let url = engine.url.join("hook").unwrap().to_string();
    let output = trigger_client(&["run", "--kind", "webhook", "--url", &url, "p"], &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}') && !stderr.contains('\u{202e}'),
        "{stderr:?}"
    );
    assert!(
        stderr.contains(r"bad \u{1b}[2J\u{1b}]0;owned\u{7} \u{202e}txet"),
        "{stderr}"
    );
}
