//! The test harness: `spawn_runner()` starts a real runner (port 0, temp chains and state
//! directories, short grace periods) in this process; `TestRunner` talks to it over HTTP and
//! checks on the real child processes the stages start. Set `TEST_LOG=1` to see the runner's logs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use pipelines::{Runner, RunnerSettings};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-token-0123456789";
/// How long a test waits for a run to reach a state before failing.
const PATIENCE: Duration = Duration::from_secs(30);

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("pipelines=debug")
                .with_test_writer()
                .init();
        }
    });
}

/// A chains directory and a state directory that outlive runner restarts.
#[derive(Debug, Clone)]
pub struct Dirs {
    _root: Arc<TempDir>,
    pub chains: PathBuf,
    pub state: PathBuf,
    /// A scratch directory for files the stages write (pids, markers).
    pub work: PathBuf,
}

impl Dirs {
    /// Fresh directories holding `chains` (`(file stem, TOML)`); the state directory's path has
    /// spaces and quotes in it, so every `{config}` and `{run_dir}` does too.
    pub fn new(chains: &[(&str, &str)]) -> Self {
        let root = TempDir::new().unwrap();
        let dirs = Self {
            chains: root.path().join("chains"),
            state: root.path().join("state dir 'with' \"quotes\"; and spaces"),
            work: root.path().join("work"),
            _root: Arc::new(root),
        };
        std::fs::create_dir_all(&dirs.chains).unwrap();
        std::fs::create_dir_all(&dirs.work).unwrap();
        for (name, toml) in chains {
            dirs.write_chain(name, toml);
        }
        dirs
    }

    /// Writes a chain file; `@WORK@` in `toml` becomes the scratch directory.
    pub fn write_chain(&self, name: &str, toml: &str) {
        let toml = toml.replace("@WORK@", &self.work.to_string_lossy());
        std::fs::write(self.chains.join(format!("{name}.toml")), toml).unwrap();
    }

    pub fn work_file(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    pub fn settings(&self) -> RunnerSettings {
        RunnerSettings::new(&self.chains, &self.state)
            .with_token(TOKEN)
            .with_kill_grace(Duration::from_millis(300))
            .with_shutdown_grace(Duration::from_secs(5))
    }
}

/// A runner serving on a loopback port, and a client for it.
pub struct TestRunner {
    pub url: String,
    pub http: reqwest::Client,
    pub dirs: Dirs,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), pipelines::Error>>,
}

/// Starts a runner over fresh directories holding `chains`.
pub async fn spawn_runner(chains: &[(&str, &str)]) -> TestRunner {
    let dirs = Dirs::new(chains);
    let settings = dirs.settings();
    spawn_runner_in(dirs, settings).await
}

/// Starts a runner over existing directories (e.g. after a restart) with these settings.
pub async fn spawn_runner_in(dirs: Dirs, settings: RunnerSettings) -> TestRunner {
    init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let runner = Runner::build(listener, settings).expect("runner builds");
    let url = runner.url();
    assert_eq!(runner.token().expose(), TOKEN);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(runner.run(cancel.clone()));
    TestRunner {
        url,
        http: reqwest::Client::new(),
        dirs,
        cancel,
        task,
    }
}

impl TestRunner {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `POST /api/v1/chains/{chain}/runs` with `body`; returns status and JSON.
    pub async fn post_run(&self, chain: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(self.url(&format!("/api/v1/chains/{chain}/runs")))
                .json(&body),
        )
        .await
    }

    /// Starts a run and returns its id, asserting 201.
    pub async fn start(&self, chain: &str, body: Value) -> String {
        let (status, run) = self.post_run(chain, body).await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        run["id"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path))).await
    }

    pub async fn run(&self, id: &str) -> Value {
        let (status, run) = self.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        run
    }

    /// Sends with the right token; returns status and JSON body (`Value::String` if not JSON).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.bearer_auth(TOKEN).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Polls run `id` until `done(run)`; panics with the last body after a while.
    pub async fn wait_run(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let run = self.run(id).await;
            if done(&run) {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run never reached the expected state: {run:#}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until run `id` has finished (succeeded, failed or cancelled).
    pub async fn wait_finished(&self, id: &str) -> Value {
        self.wait_run(id, |run| {
            matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        })
        .await
    }

    /// Stops the runner gracefully and returns its directories.
    pub async fn stop(self) -> Dirs {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("runner stops in time")
            .unwrap()
            .expect("runner stops cleanly");
        self.dirs
    }
}

/// The stage named `name` in a run body.
pub fn stage<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|stage| stage["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {run:#}"))
}

/// Waits until `path` exists and returns its trimmed content.
pub async fn wait_file(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a pid written to `path` by a stage.
pub async fn wait_pid(path: &Path) -> i32 {
    wait_file(path).await.parse().unwrap()
}

/// Whether a process is alive (a zombie is dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

/// Waits until `pid` is dead; panics if it outlives a few seconds.
pub async fn wait_dead(pid: i32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} is still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills a pid left by a failed test so it does not linger (best effort).
pub fn reap(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Starts the real `pipelines serve` binary on a free loopback port with `args` (besides
/// `--listen`, `--chains` and `--state-dir`), [`TOKEN`] and `env` in its environment; returns it
/// (killed on drop) and its base URL.
pub async fn spawn_runner_binary(
    dirs: &Dirs,
    args: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipelines"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--chains")
        .arg(&dirs.chains)
        .arg("--state-dir")
        .arg(&dirs.state)
        .env("PIPELINES_TOKEN", TOKEN)
        .env("PIPELINES_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("pipelines runner listening on ") {
                return url.to_owned();
            }
        }
        panic!("the runner exited before listening");
    })
    .await
    .expect("the runner prints its address");
    // Keep draining stdout so the runner never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}
