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
