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

/// A loopback HTTP server in a thread: `/article` is an article page, `/moved` redirects to it,
/// anything else is 404. Returns its base URL.
fn serve_article() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let response = match path {
                "/article" => {
                    let body = "<html><head><title>Site | Sleepy article</title></head><body><nav>Home About</nav><article><h1>A sleepy article</h1><p>The first stage fetched this page over loopback. It kept the title and the main text.</p><p>The navigation and the footer were left out. Each sentence here becomes part of a small dataset.</p></article><footer>Footer text</footer></body></html>";
                    format!("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                }
                "/moved" => "HTTP/1.1 301 Moved\r\nLocation: /article\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                "/escape" => "HTTP/1.1 302 Found\r\nLocation: http://10.255.255.1/admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    base
}

fn jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `pipelines run demo` in this process on a config listing `links` (with `params`); returns
/// the run's outputs directory.
fn run_demo(dirs: &Dirs, links: &[String], params: &[&str]) -> PathBuf {
    let config = dirs.work_file("config.json");
    std::fs::write(
        &config,
        serde_json::json!({"parameters": {"user_full_name": "Liz Marley", "links": links}})
            .to_string(),
    )
    .unwrap();
    let chains = shipped_chains();
    let mut args = vec![
        "run",
        "demo",
        "--chains",
        chains.to_str().unwrap(),
        "--state-dir",
        dirs.state.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    for param in params {
        args.extend(["--param", param]);
    }
    let out = pipelines(&args, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let run_dir = stdout
        .lines()
        .find_map(|line| line.strip_prefix("run directory (config, logs, outputs): "))
        .expect("the run directory is printed");
    Path::new(run_dir).join("outputs")
}

/// The shipped demo chain with its default config, in this process: what a user sees first.
/// Fetching from this machine only, its three public links are refused; the stages go on.
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
            "--param",
            "fetch_allow=loopback",
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
    assert!(summary.contains("- documents: 0 (0 words)"), "{summary}");
    assert!(summary.contains("- links not fetched: 3"), "{summary}");
    let failed = jsonl(&outputs.join("failed_links.jsonl"));
    assert_eq!(failed.len(), 3);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("`mlabonne.github.io` is not this machine"),
        "{failed:?}"
    );

    let out = pipelines(&["runs", "--state-dir", state], &[]);
    let listing = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        listing.lines().nth(1).unwrap().contains(" demo "),
        "{listing}"
    );
    assert!(listing.contains("succeeded"), "{listing}");
}

/// The first stage fetches a page (through a redirect), keeps it raw and as title and main
/// text, records a link it cannot fetch and goes on; the later stages work on the text.
#[test]
fn the_demo_chain_collects_an_articles_text() {
    let dirs = Dirs::new(&[]);
    let base = serve_article();
    let links = [
        format!("{base}/moved"),
        format!("{base}/gone"),
        format!("{base}/escape"),
    ];
    let outputs = run_demo(&dirs, &links, &["fetch_allow=loopback"]);
    let docs = jsonl(&outputs.join("cleaned_documents.jsonl"));
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["title"], "A sleepy article");
    assert_eq!(
        docs[0]["text"],
        "The first stage fetched this page over loopback. It kept the title and the main text.\n\nThe navigation and the footer were left out. Each sentence here becomes part of a small dataset."
    );
    let raw = jsonl(&outputs.join("raw_documents.jsonl"));
    assert_eq!(raw[0]["final_url"], format!("{base}/article"));
    let page = std::fs::read_to_string(outputs.join(raw[0]["raw_file"].as_str().unwrap())).unwrap();
    assert!(page.contains("<footer>Footer text</footer>"), "{page}");
    let failed = jsonl(&outputs.join("failed_links.jsonl"));
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["link"], links[1]);
    assert_eq!(failed[0]["error"], "HTTP 404");
    assert_eq!(
        failed[1]["error"],
        "`10.255.255.1` resolves to 10.255.255.1, not a loopback address; refused",
        "a redirect cannot leave the allowed addresses"
    );
    let instruct = jsonl(&outputs.join("instruct_dataset.jsonl"));
    let answers: Vec<&str> = instruct
        .iter()
        .map(|r| r["answer"].as_str().unwrap())
        .collect();
    assert_eq!(
        answers,
        [
            "It kept the title and the main text.",
            "The navigation and the footer were left out.",
            "Each sentence here becomes part of a small dataset."
        ]
    );
    let chunks = jsonl(&outputs.join("chunks.jsonl"));
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["words"], 33);
}

/// The shipped chain fetches from public addresses only: a link to this machine is refused.
#[test]
fn the_shipped_demo_chain_refuses_this_machine() {
    let dirs = Dirs::new(&[]);
    let base = serve_article();
    let outputs = run_demo(&dirs, &[format!("{base}/article")], &[]);
    assert!(jsonl(&outputs.join("cleaned_documents.jsonl")).is_empty());
    let failed = jsonl(&outputs.join("failed_links.jsonl"));
    assert_eq!(
        failed[0]["error"],
        "`127.0.0.1` resolves to 127.0.0.1, not a public address; refused"
    );
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
    // Offline: the config's public links are refused, not fetched.
    let demo = dirs.chains.join("demo.toml");
    let chain = std::fs::read_to_string(&demo).unwrap();
    std::fs::write(
        &demo,
        chain.replace("fetch_allow = \"public\"", "fetch_allow = \"loopback\""),
    )
    .unwrap();
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
    assert!(summary.contains("- links not fetched: 3"), "{summary}");

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
