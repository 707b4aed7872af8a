//! store_failure.rs: the state dir on a small tmpfs, filled until sled's writes fail: the
//! daemon answers `/healthz` with 503 and the reason, exits with the store's exit code (4), and
//! after space returns a restarted daemon delivers everything that was staged, once.
//!
//! The tmpfs is mounted in a private mount namespace: the test runs itself again under
//! `unshare -m` (tests run as root in CI; without root it is skipped, except when `CI=true`).

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::helpers::*;

/// Set in the re-executed test: it runs inside the private mount namespace, and writes this file
/// when the scenario passed (so a renamed test cannot pass by running nothing).
const IN_NAMESPACE: &str = "WATCHER_TEST_IN_MOUNT_NAMESPACE";
const TEST: &str =
    "store_failure::a_full_disk_stops_the_daemon_with_503_and_exit_4_and_a_restart_loses_nothing";

#[test]
fn a_full_disk_stops_the_daemon_with_503_and_exit_4_and_a_restart_loses_nothing() {
    if let Some(passed) = std::env::var_os(IN_NAMESPACE) {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(full_disk_scenario());
        std::fs::write(passed, "passed").unwrap();
        return;
    }
    // /proc/self belongs to the process's effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !root && !ci {
        eprintln!("skipped: mounting a tmpfs needs root (this test never skips with CI=true)");
        return;
    }
    let passed = tempfile::tempdir().unwrap().keep().join("passed");
    let status = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, &passed)
        .status()
        .expect("unshare runs (util-linux)");
    assert!(
        status.success(),
        "the scenario inside `unshare -m` failed: {status:?}"
    );
    assert!(
        passed.exists(),
        "the scenario did not run under `unshare -m`"
    );
    let _ = std::fs::remove_dir_all(passed.parent().unwrap());
}

/// A tmpfs mounted on a directory, unmounted when dropped (so the temp dir around it can go).
struct Tmpfs<'a>(&'a Path);

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0).status();
    }
}

fn mount_tmpfs<'a>(dir: &'a Path, size: &str) -> Tmpfs<'a> {
    std::fs::create_dir_all(dir).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs on {}", dir.display());
    Tmpfs(dir)
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC, not {e}");
                break;
            }
        }
    }
    let _ = file.sync_all();
    written
}

async fn healthz(addr: &str) -> Option<(u16, String)> {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let code = resp.status().as_u16();
    Some((code, resp.text().await.unwrap_or_default()))
}

async fn full_disk_scenario() {
    // A feed without <ttl>, so the 1s interval holds.
    let t = spawn_one_author("Liz", "medium-lizmarley.rss.xml").await;
    let state = t.dir.path().join("state");
    let _tmpfs = mount_tmpfs(&state, "16m");
    // Staged items wait for the batch window: what is staged when the disk fills must survive.
    edit_config(&t.cfg, "interval = \"30m\"", "interval = \"1s\"");
    edit_config(&t.cfg, "batch_window = \"0s\"", "batch_window = \"1h\"");
    let listen = load(&t.cfg).watcher.listen.to_string();

    let mut daemon = watcher_cmd(&t.cfg)
        .arg("run")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_healthy(&listen).await;
    // The baseline, then one new article, staged (the window holds it).
    eventually("the feed is polled", || {
        !t.feeds.requests(FEED_PATH).is_empty()
    })
    .await;
    t.publish("https://rubenerd.com/staged/", "Staged");
    wait_for_staged(&t, &listen).await;

    let filler = state.join("filler");
    let filled = fill(&filler);
    eprintln!("filled the tmpfs with {filled} bytes");
    t.feeds
        .publish(FEED_PATH, "https://rubenerd.com/after-full/", "After");

    // sled's next write fails: /healthz says why, and the daemon exits with the store's code.
    let mut seen_503 = None;
    let exit = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Some((503, body)) = healthz(&listen).await {
                seen_503.get_or_insert(body);
            }
            if let Some(status) = daemon.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the daemon stops after the store failed");
    let body = seen_503.expect("/healthz answered 503 while the store was failing");
    assert!(body.starts_with("store failing: "), "{body}");
    assert!(body.contains("No space left on device"), "{body}");
    assert_eq!(exit.code(), Some(4), "{exit:?}");
    assert!(t.rx.received().is_empty());

    // Space returns; the service manager starts the watcher again.
    std::fs::remove_file(&filler).unwrap();
    edit_config(&t.cfg, "batch_window = \"1h\"", "batch_window = \"0s\"");
    let mut daemon = watcher_cmd(&t.cfg)
        .arg("run")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    t.rx.wait_for(1).await;
    // Both articles: the staged one, and the one found while the disk was full.
    eventually("both articles are delivered", || {
        delivered_links(&t.rx).len() >= 2
    })
    .await;
    let mut links = delivered_links(&t.rx);
    links.sort();
    assert_eq!(
        links,
        [
            "https://rubenerd.com/after-full/",
            "https://rubenerd.com/staged/"
        ],
        "nothing staged is lost, nothing is sent twice"
    );
    stop_with_sigterm(&mut daemon).await;
}

/// Waits until the daemon reports one staged item.
async fn wait_for_staged(t: &OneAuthor, listen: &str) {
    let _ = t;
    let started = tokio::time::Instant::now();
    loop {
        let status: serde_json::Value = reqwest::get(format!("http://{listen}/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["staged"] == 1 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
