//! The trigger client's `pipelines` backend against the real runner (`pipelines::Runner` on a
//! loopback port): a new run and the same run for a repeated key, 409 for the same key with
//! another request, bearer auth, the runner's error texts, following a run to its end, a failed
//! stage's message, and an idempotent cancel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use trigger_client::{Client, Error, Kind, RetryPolicy, RunHandle, RunRequest, RunState, exit};

const TOKEN: &str = "pipelines-token-abc";

/// Stage scripts wait for `<work>/go-<run id>` before they end (at most 20 s), so a test can hold
/// a run in `running` (or its chain's next run in `queued`) for as long as it needs.
const GATED: &str = r#"for i in $(seq 1000); do [ -e "$1/go-$PIPELINES_RUN_ID" ] && exit 0; sleep 0.02; done; exit 1"#;

/// A runner over fresh directories with chains `demo` (one gated stage, one run at a time),
/// `fails` (a stage exiting 3, then one that never starts) and `defaults` (a `default_config`).
struct Runner {
    dir: tempfile::TempDir,
    url: url::Url,
    engine: pipelines::Engine,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), pipelines::Error>>,
}

impl Runner {
    async fn spawn() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let chains = dir.path().join("chains");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&chains).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let argv = |script: &str| {
            serde_json::to_string(&["sh", "-c", script, "sh", work.to_str().unwrap()]).unwrap()
        };
        std::fs::write(
            chains.join("demo.toml"),
            format!(
                "name = \"demo\"\nconcurrency = 1\n[[stages]]\nname = \"digital_data_etl\"\nrun = {}\n",
                argv(GATED)
            ),
        )
        .unwrap();
        std::fs::write(
            chains.join("fails.toml"),
            "name = \"fails\"\n[[stages]]\nname = \"digital_data_etl\"\nrun = [\"sh\", \"-c\", \"exit 3\"]\n\
             [[stages]]\nname = \"feature_engineering\"\nafter = [\"digital_data_etl\"]\nrun = [\"true\"]\n",
        )
        .unwrap();
        std::fs::write(chains.join("default.yaml"), "parameters: {who: default}\n").unwrap();
        std::fs::write(
            chains.join("defaults.toml"),
            "name = \"defaults\"\ndefault_config = \"default.yaml\"\n[[stages]]\nname = \"a\"\nrun = [\"true\"]\n",
        )
        .unwrap();
        let settings = pipelines::RunnerSettings::new(&chains, dir.path().join("state"))
            .with_token(TOKEN)
            .with_kill_grace(Duration::from_millis(300))
            .with_shutdown_grace(Duration::from_secs(5));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let runner = pipelines::Runner::build(listener, settings).unwrap();
        let url = url::Url::parse(&runner.url()).unwrap();
        let engine = runner.engine().clone();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(runner.run(cancel.clone()));
        Runner {
            dir,
            url,
            engine,
            cancel,
            task,
        }
    }

    /// A client of the runner for chain `demo`, its token read from a file holding `token`.
    fn client(&self, token: &str) -> Client {
        // Named apart from the token: error messages name the file and must not show the token.
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.dir.path().join(format!("token-file-{n}"));
        std::fs::write(&file, format!("{token}\n")).unwrap();
        let mut target = trigger_client::TargetConfig::new(Kind::Pipelines, self.url.clone());
        target.token_file = Some(file);
        target.pipeline = Some("demo".into());
        Client::new(&target)
            .unwrap()
            .with_retry(RetryPolicy::immediate(4))
            .with_poll_interval(Duration::from_millis(10))
    }

    /// Lets the gated stage of run `handle` end.
    fn open_gate(&self, handle: &RunHandle) {
        std::fs::write(self.work().join(format!("go-{}", handle.id)), "").unwrap();
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn run(&self, handle: &RunHandle) -> pipelines::Run {
        self.engine.run(&handle.id).unwrap().unwrap()
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn request(key: &str) -> RunRequest {
    let mut req = RunRequest::new("", key);
    req.config = json!({"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/x"]}});
    req.params.insert("mode".into(), "full".into());
    req
}

fn config_seen(run_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.yaml")).unwrap()).unwrap()
}

#[tokio::test]
async fn trigger_sends_the_whole_config_and_wait_follows_to_success() {
    let runner = Runner::spawn().await;
    let client = runner.client(TOKEN);
    // A first run holds the chain (one run at a time), so the second is seen queued.
    let first = client.trigger(&request("batch-0")).await.unwrap();
    let handle = client.trigger(&request("batch-1")).await.unwrap();
    assert_eq!(handle.to_string(), format!("pipelines:{}", handle.id));

    let run = runner.run(&handle);
    assert_eq!(run.idempotency_key.as_deref(), Some("batch-1"));
    assert_eq!(run.params.get("mode").map(String::as_str), Some("full"));
    assert_eq!(
        config_seen(&run.run_dir),
        json!({"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://decodingml.substack.com/p/x"]}})
    );

    let mut seen = Vec::new();
    let status = client
        .wait(&handle, Duration::from_secs(20), |s| {
            seen.push(s.state);
            match s.state {
                RunState::Queued => runner.open_gate(&first),
                RunState::Running => runner.open_gate(&handle),
                _ => {}
            }
        })
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(status.raw_state, "succeeded");
    assert_eq!(
        seen,
        [RunState::Queued, RunState::Running, RunState::Succeeded]
    );
    runner.stop().await;
}

#[tokio::test]
async fn an_empty_config_lets_the_chains_default_config_apply() {
    let runner = Runner::spawn().await;
    let client = runner.client(TOKEN);
    let mut req = RunRequest::new("defaults", "batch-d");
    req.config = json!({});
    let handle = client.trigger(&req).await.unwrap();
    assert_eq!(
        config_seen(&runner.run(&handle).run_dir),
        json!({"parameters": {"who": "default"}})
    );
    runner.stop().await;
}

#[tokio::test]
async fn a_repeated_key_returns_the_same_run_and_another_body_is_a_conflict() {
    let runner = Runner::spawn().await;
    let client = runner.client(TOKEN);
    let first = client.trigger(&request("batch-2")).await.unwrap();
    let again = client.trigger(&request("batch-2")).await.unwrap();
    assert_eq!(first, again);

    let mut other = request("batch-2");
    other.config = json!({"parameters": {"user_full_name": "Someone Else"}});
    let err = client.trigger(&other).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::USAGE);
    let text = err.to_string();
    assert!(text.contains("idempotency key `batch-2`"), "{text}");
    assert!(
        text.contains("already used with another config or params: idempotency key `batch-2` was already used for run"),
        "{text}"
    );
    runner.open_gate(&first);
    runner.stop().await;
}

#[tokio::test]
async fn a_failed_stage_is_reported_with_its_exit_code() {
    let runner = Runner::spawn().await;
    let client = runner.client(TOKEN);
    let mut req = request("batch-3");
    req.pipeline = "fails".into();
    let handle = client.trigger(&req).await.unwrap();
    let status = client
        .wait(&handle, Duration::from_secs(20), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(
        status.message.as_deref(),
        Some("stage `digital_data_etl` failed: exited with code 3")
    );
    runner.stop().await;
}

#[tokio::test]
async fn cancel_is_idempotent() {
    let runner = Runner::spawn().await;
    let client = runner.client(TOKEN);
    let handle = client.trigger(&request("batch-4")).await.unwrap();
    client.cancel(&handle).await.unwrap();
    let status = client
        .wait(&handle, Duration::from_secs(20), |_| {})
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Cancelled);
    // A retried cancel (its first answer lost) finds the run cancelled: that is success, even
    // though the runner answers 409 "already finished".
    client.cancel(&handle).await.unwrap();
    runner.stop().await;
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_auth_error() {
    let runner = Runner::spawn().await;
    let err = runner
        .client("not-the-token")
        .trigger(&request("k"))
        .await
        .unwrap_err();
    let Error::Auth { status, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 401);
    let text = err.to_string();
    assert!(text.contains("invalid bearer token"), "{text}");
    assert!(text.contains("the token from file"), "{text}");
    assert!(!text.contains("not-the-token"));
    runner.stop().await;
}

#[tokio::test]
async fn an_unknown_chain_or_run_gives_the_runners_404_text() {
    let runner = Runner::spawn().await;
    let client = runner.client(TOKEN);
    let mut req = request("k");
    req.pipeline = "nope".into();
    let err = client.trigger(&req).await.unwrap_err();
    assert!(err.to_string().contains("unknown chain `nope`"), "{err}");
    let err = client
        .status(&"pipelines:run-99".parse().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("run `run-99` not found"), "{err}");
    runner.stop().await;
}

#[tokio::test]
async fn a_handle_of_another_kind_is_refused() {
    let runner = Runner::spawn().await;
    let err = runner
        .client(TOKEN)
        .status(&"prefect:abc".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadHandle { .. }), "{err:?}");
    assert_eq!(err.exit_code(), exit::USAGE);
    runner.stop().await;
}
