//! cli.rs: what a user reads: `--help` pages and the errors of a broken config (snapshots).

use std::process::Command;

fn watcher(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_watcher"))
        .args(args)
        .env_remove("WATCHER_CONFIG")
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

#[test]
fn help_pages() {
    for cmd in [
        &["--help"][..],
        &["once", "--help"],
        &["status", "--help"],
        &["demo", "--help"],
        &["held", "--help"],
        &["release", "--help"],
    ] {
        let out = watcher(cmd);
        assert!(out.status.success());
        insta::assert_snapshot!(
            cmd.join("_").replace("--", ""),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn a_broken_config_gets_one_line_per_problem_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watcher.toml");
    std::fs::write(
        &path,
        r#"[watcher]
interval = "30m"

[trigger]
kind = "webhook"
url = "http://127.0.0.1:9000/hook"
tokn_env = "X"

[[authors]]
name = "Paul Iusztin"
feeds = ["decodingml.substack.com/feed", { url = "https://a.example/feed", cron = "every day" }]
sites = [{ url = "https://b.example", selector = "a[" }]
"#,
    )
    .unwrap();
    let out = watcher(&["--config", path.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(dir.path().to_str().unwrap(), "<dir>");
    insta::assert_snapshot!(stderr);
}

/// Durations so large that adding them to a timestamp overflows: `check` names each key in one
/// line and `once` refuses the config the same way (it used to panic when pruning).
#[test]
fn huge_durations_are_refused_by_check_never_a_panic_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watcher.toml");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        &path,
        format!(
            r#"[watcher]
keep_deliveries = "200000000000d"

[trigger]
kind = "webhook"
url = "http://{closed}/hook"
min_interval = "9000000000000d"
run_lost_after = "40000d"

[[authors]]
name = "Paul Iusztin"
feeds = [{{ url = "http://{closed}/feed", cron = "0 7 * * *", interval = "100000000000d" }}]
"#
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let out = watcher(&["--config", config, "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "watcher.keep_deliveries: 200000000000d is too large; expected at most 100 years",
        "trigger.min_interval: 9000000000000d is too large",
        "trigger.run_lost_after: 40000d is too large",
        "authors[0].feeds[0].interval: 100000000000d is too large",
    ] {
        assert!(stderr.contains(key), "{key}\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    let once = watcher(&["--config", config, "once"]);
    let stderr = String::from_utf8_lossy(&once.stderr);
    assert_eq!(once.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
