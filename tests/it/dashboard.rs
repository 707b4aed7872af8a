//! dashboard.rs: both dashboards over the real system: a batch whose run failed (a broken chain),
//! then the watcher daemon with the real `demo` chain on its embedded runner, and a separate
//! `pipelines serve`-style runner with its page. Over HTTP: "Run now" posted twice with one form
//! key starts one run, which reaches succeeded with every stage shown; "Redeliver" starts the
//! failed batch again and it succeeds. In a real browser (headless Chromium, ignored here; run by
//! `.ci/run` through `scripts/browser.sh`): the same clicks, and screenshots of both pages.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// A run's own state (not a stage's) shown as succeeded.
const SUCCEEDED: &str = r#"<span class="run-state"><span class="badge ok">succeeded</span>"#;

const TOKEN: &str = "dashboard-test-token-0123456789";

/// The scene both tests look at.
struct Scene {
    t: OneAuthor,
    watcher: SocketAddr,
    runner: String,
    /// The batch whose run failed.
    failed: String,
    cancel: CancellationToken,
    daemon: tokio::task::JoinHandle<Result<(), watcher::error::WatcherError>>,
    runner_task: tokio::task::JoinHandle<Result<(), pipelines::Error>>,
}

impl Scene {
    async fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        // A `demo` chain whose stage fails: the first batch's run fails.
        let broken = dir.path().join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(
            broken.join("demo.toml"),
            "name = \"demo\"\n[[stages]]\nname = \"digital_data_etl\"\nrun = [\"sh\", \"-c\", \"echo 'failed on purpose' >&2; exit 3\"]\n",
        )
        .unwrap();
        let t = serve_one_author(dir, LIZ, &embedded(&broken, "demo")).await;
        t.baseline_then_publish("https://medium.com/@lizmarley/a-batch-that-failed-once")
            .await;
        let (report, runs) = pass(&t.cfg).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(
            runs[0].1.as_ref().unwrap().state,
            trigger_client::RunState::Failed
        );
        let failed = report.deliveries[0].batch_id.clone();
        // Fixed: the real demo chain from here on.
        edit_config(
            &t.cfg,
            &broken.display().to_string(),
            &demo_chains().display().to_string(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let watcher = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let daemon = tokio::spawn(open_watcher(&t.cfg).run(listener, cancel.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let settings =
            pipelines::RunnerSettings::new(demo_chains(), t.dir.path().join("runner-state"))
                .with_token(TOKEN)
                .with_dashboard();
        let runner = pipelines::Runner::build(listener, settings).unwrap();
        let runner_url = runner.url();
        let runner_task = tokio::spawn(runner.run(cancel.clone()));
        let scene = Scene {
            t,
            watcher,
            runner: runner_url,
            failed,
            cancel,
            daemon,
            runner_task,
        };
        scene
            .wait_for("the page", |page| page.contains("Liz Marley"))
            .await;
        scene
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.watcher)
    }

    async fn get(&self, path: &str) -> String {
        let r = reqwest::get(self.url(path)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.text().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(self.url(path))
            .header(watcher::control::HEADER, "1")
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    /// Waits (up to 90 s) until the live part of the page satisfies `done`.
    async fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let started = tokio::time::Instant::now();
        loop {
            if let Ok(r) = reqwest::get(self.url("/dashboard/live")).await
                && let Ok(page) = r.text().await
                && done(&page)
            {
                return page;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The embedded runner's run directories: one per run it started.
    fn embedded_runs(&self) -> usize {
        std::fs::read_dir(self.t.embedded_runner_state().join("runs"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.daemon.await.unwrap().unwrap();
        self.runner_task.await.unwrap().unwrap();
    }
}

/// The `tr` of batch `batch` in the live part.
fn batch_row<'a>(page: &'a str, batch: &str) -> &'a str {
    let start = page
        .find(&format!(r#"data-batch="{batch}""#))
        .unwrap_or_else(|| panic!("no row for batch {batch}: {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

#[tokio::test]
async fn run_now_starts_one_run_per_form_key_and_redeliver_restarts_a_failed_batch() {
    let scene = Scene::new().await;
    let page = scene.get("/").await;
    assert!(
        batch_row(&page, &scene.failed).contains(">Redeliver</button>"),
        "{page}"
    );
    let key = page
        .split(r#"name="key" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(scene.embedded_runs(), 1, "the failed run");

    // A double click on "Run now", the chain's default_config chosen.
    let form = [("key", key.as_str()), ("config", "default")];
    let ((s1, a), (s2, b)) = tokio::join!(
        scene.post("/dashboard/run", &form),
        scene.post("/dashboard/run", &form)
    );
    assert!(s1.is_success() && s2.is_success(), "{a} {b}");
    assert_eq!(a["run"], b["run"], "one run");
    let run = a["run"].as_str().unwrap().to_owned();
    let live = scene
        .wait_for("the manual run to succeed", |p| {
            p.split(&format!(r#"<tr data-run="{run}">"#))
                .nth(1)
                .is_some_and(|row| row.split("</tr>").next().unwrap().contains(SUCCEEDED))
        })
        .await;
    assert!(live.contains("5/5 stages done"), "{live}");
    assert_eq!(scene.embedded_runs(), 2, "one run for the double click");

    // "Redeliver" the failed batch: a new run, with the fixed chain, succeeds.
    let (status, said) = scene
        .post(&format!("/redeliver?batch={}", scene.failed), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{said}");
    assert_eq!(said["idempotency_key"], format!("{}-r1", scene.failed));
    let failed = scene.failed.clone();
    scene
        .wait_for("the redelivered batch to succeed", |p| {
            batch_row(p, &failed).contains(SUCCEEDED)
        })
        .await;
    assert_eq!(scene.embedded_runs(), 3);
    scene.stop().await;
}

/// The browser test: `scripts/browser.sh run -- cargo test -p e2e-tests --test it
/// browser_dashboards -- --ignored`. Screenshots go to `$DASHBOARD_SHOTS` (default
/// `target/dashboard-shots`; `DASHBOARD_SHOTS=$PWD/docs` refreshes the README's).
#[tokio::test]
#[ignore = "needs Chromium and playwright-core: scripts/browser.sh run -- ..."]
async fn browser_dashboards() {
    let module =
        std::env::var("PLAYWRIGHT_CORE").expect("PLAYWRIGHT_CORE (run through scripts/browser.sh)");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let shots: PathBuf = std::env::var_os("DASHBOARD_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/dashboard-shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let scene = Scene::new().await;
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new("node")
            .arg(repo().join("tests/browser/dashboards.cjs"))
            .env("PLAYWRIGHT_CORE", module)
            .env("CHROMIUM", chromium)
            .env("WATCHER_URL", format!("http://{}", scene.watcher))
            .env("PIPELINES_URL", &scene.runner)
            .env("PIPELINES_TOKEN", TOKEN)
            .env("FAILED_BATCH", &scene.failed)
            .env("SHOTS", &shots)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser script ends within 4 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // What the browser did, seen from the servers: one run for the double click, one for the
    // redelivery (plus the failed one), and the redelivered batch succeeded.
    assert_eq!(scene.embedded_runs(), 3, "{stdout}");
    let page = scene.get("/dashboard/live").await;
    assert!(
        batch_row(&page, &scene.failed).contains(SUCCEEDED),
        "{page}"
    );
    for shot in ["dashboard-watcher.png", "dashboard-pipelines.png"] {
        let meta = std::fs::metadata(shots.join(shot)).unwrap();
        assert!(meta.len() > 10_000, "{shot} is a real picture");
    }
    scene.stop().await;
}
