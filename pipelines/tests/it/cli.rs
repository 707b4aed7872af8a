//! The `pipelines` binary: `check` on the shipped chains and on broken ones, `run` of the shipped
//! demo chain end to end (in-process and through a server), `runs`, and the loopback guard.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::helpers::{Dirs, TOKEN, spawn_runner_in};

fn pipelines(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pipelines"));
    command
        .args(args)
        .env_remove("PIPELINES_TOKEN")
        .env_remove("PIPELINES_URL");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn shipped_chains() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("chains")
}

#[test]
fn check_accepts_the_shipped_chains() {
    let out = pipelines(&["check", shipped_chains().to_str().unwrap()], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("chain `demo`"), "{stdout}");
    assert!(stdout.contains("chain `llm-twin`"), "{stdout}");
    assert!(
        stdout.contains("- digital_data_etl: poetry run python -m tools.run --run-etl --no-cache --etl-config-filename {config_name}"),
        "{stdout}"
    );
    // The zenml chain needs no ZenML to be checked (and warns about nothing here).
    let zenml = &stdout[stdout.find("chain `zenml`").unwrap()..];
    assert!(
        zenml.contains(
            "- digital_data_etl: python3 zenml/run.py digital_data_etl --config {config}"
        ),
        "{stdout}"
    );
    assert!(!zenml.contains("warning"), "{stdout}");
    assert!(stdout.contains("3 chain file(s) OK"), "{stdout}");
    // The LLM Twin's two dataset stages are gated; training and evaluation wait with them.
    let gate = "      gate: 10 new links or 14days after its last success; after a failure not before 1day";
    assert_eq!(stdout.matches(gate).count(), 2, "{stdout}");
    for stage in ["generate_instruct_datasets", "generate_preference_datasets"] {
        let twin = &stdout[stdout.find("chain `llm-twin`").unwrap()..];
        let at = twin
            .find(&format!("- {stage} (after feature_engineering)"))
            .unwrap();
        assert!(
            twin[at..].lines().nth(1).unwrap().starts_with(gate),
            "{stdout}"
        );
    }
}

#[test]
fn check_reports_each_problem_with_file_and_key() {
    let dirs = Dirs::new(&[(
        "broken",
        "name = \"broken\"\nschedule = \"every day\"\n[[stages]]\nname = \"a\"\nrun = [\"x\", \"{nope}\"]\nafter = [\"b\"]\n",
    )]);
    let out = pipelines(&["check", dirs.chains.to_str().unwrap()], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an invalid chain file is bad input"
    );
    let stderr = text(&out.stderr);
    let file = dirs.chains.join("broken.toml");
    for want in [
        "error: 4 problems in chain files; fix them and run `pipelines check`:".to_owned(),
        format!(
            "{}: `schedule`: bad cron expression `every day`",
            file.display()
        ),
        format!("{}: `default_config`: missing", file.display()),
        format!(
            "{}: `stages[a].after`: unknown stage `b`; expected one of `a`",
            file.display()
        ),
        format!(
            "{}: `stages[a].run[1]`: unknown placeholder `{{nope}}`",
            file.display()
        ),
    ] {
        assert!(stderr.contains(&want), "{want:?} not in:\n{stderr}");
    }
}

/// The shipped demo chain with its default config, in this process: what a user sees first.
#[test]
fn run_executes_the_demo_chain_in_process() {
    let dirs = Dirs::new(&[]);
    let chains = shipped_chains();
    let state = dirs.state.to_str().unwrap();
    let out = pipelines(
        &[
            "run",
            "demo",
            "--chains",
            chains.to_str().unwrap(),
            "--state-dir",
            state,
        ],
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for stage in [
        "digital_data_etl",
        "feature_engineering",
        "generate_instruct_datasets",
        "generate_preference_datasets",
        "summary",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.contains(stage) && line.ends_with("succeeded (exit 0)")),
            "{stage} did not succeed:\n{stdout}"
        );
    }
    let run_dir = stdout
        .lines()
        .find_map(|line| line.strip_prefix("run directory (config, logs, outputs): "))
        .expect("the run directory is printed");
    let outputs = Path::new(run_dir).join("outputs");
    let summary = std::fs::read_to_string(outputs.join("summary.md")).unwrap();
    assert!(summary.contains("- authors: Maxime Labonne"), "{summary}");
    assert!(summary.contains("- documents: 3"), "{summary}");
    let instruct = std::fs::read_to_string(outputs.join("instruct_dataset.jsonl")).unwrap();
    assert_eq!(instruct.lines().count(), 3);

    let out = pipelines(&["runs", "--state-dir", state], &[]);
    let listing = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        listing.lines().nth(1).unwrap().contains(" demo "),
        "{listing}"
    );
    assert!(listing.contains("succeeded"), "{listing}");
}

/// Both config shapes the watcher sends, through a server, with `--wait`.
#[tokio::test]
async fn run_through_a_server_with_both_config_shapes() {
    let dirs = Dirs::new(&[]);
    for entry in std::fs::read_dir(shipped_chains()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            std::fs::copy(&path, dirs.chains.join(path.file_name().unwrap())).unwrap();
        }
    }
    copy_dir(&shipped_chains().join("demo"), &dirs.chains.join("demo"));
    let settings = dirs.settings();
    let runner = spawn_runner_in(dirs.clone(), settings).await;
    let end_to_end = dirs.work_file("end_to_end.yaml");
    std::fs::write(
        &end_to_end,
        "parameters:\n  author_links:\n    - user_full_name: Paul Iusztin\n      links: [https://decodingml.substack.com/p/a]\n    - user_full_name: Maxime Labonne\n      links: [https://mlabonne.github.io/blog/posts/b.html, https://maximelabonne.substack.com/p/c]\n",
    )
    .unwrap();
    let url = runner.url.clone();
    let config = end_to_end.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        pipelines(
            &[
                "run",
                "demo",
                "--config",
                &config,
                "--url",
                &url,
                "--wait",
                "--idempotency-key",
                "e2e-1",
            ],
            &[("PIPELINES_TOKEN", TOKEN)],
        )
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let id = stdout.split_whitespace().nth(1).unwrap().to_owned();
    let run = runner.run(&id).await;
    let outputs = Path::new(run["run_dir"].as_str().unwrap()).join("outputs");
    let seen: Value =
        serde_json::from_str(&std::fs::read_to_string(outputs.join("config_seen.json")).unwrap())
            .unwrap();
    assert_eq!(
        seen["parameters"]["author_links"][1]["links"][1],
        "https://maximelabonne.substack.com/p/c"
    );
    let summary = std::fs::read_to_string(outputs.join("summary.md")).unwrap();
    assert!(
        summary.contains("- authors: Maxime Labonne, Paul Iusztin"),
        "{summary}"
    );
    assert!(summary.contains("- documents: 3"), "{summary}");

    // The same key again names the same run; `runs ID --url` shows it.
    let url = runner.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        pipelines(
            &[
                "run",
                "demo",
                "--config",
                end_to_end.to_str().unwrap(),
                "--url",
                &url,
                "--idempotency-key",
                "e2e-1",
            ],
            &[("PIPELINES_TOKEN", TOKEN)],
        )
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("run {id} of chain `demo` already exists")),
        "{stdout}"
    );
    let url = runner.url.clone();
    let shown = id.clone();
    let out = tokio::task::spawn_blocking(move || {
        pipelines(
            &["runs", &shown, "--url", &url],
            &[("PIPELINES_TOKEN", TOKEN)],
        )
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("status     succeeded"), "{stdout}");
    assert!(stdout.contains("generate_preference_datasets"), "{stdout}");
    runner.stop().await;
}

#[test]
fn serve_refuses_a_non_loopback_address_without_allow_remote() {
    let dirs = Dirs::new(&[]);
    let out = pipelines(
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--chains",
            shipped_chains().to_str().unwrap(),
            "--state-dir",
            dirs.state.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on `0.0.0.0:0`"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

#[test]
fn runs_on_a_state_dir_in_use_points_to_url() {
    // A state dir locked by another process: use a runner process? Opening it here twice is
    // enough, since the binary is another process.
    let dirs = Dirs::new(&[]);
    let _state = pipelines::state::State::open(&dirs.state.join("db")).unwrap();
    let out = pipelines(&["runs", "--state-dir", dirs.state.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is in use by another process"), "{stderr}");
}

#[test]
fn an_unreachable_runner_exits_3() {
    // Port 1 on loopback: nothing listens there.
    let out = pipelines(
        &["runs", "--url", "http://127.0.0.1:1"],
        &[("PIPELINES_TOKEN", "secret")],
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot reach the runner"), "{stderr}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}
