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
        &["check", "--help"],
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

/// `check --explain-link`: the canonical link, identity key and rule of each link, and whether
/// they are one article (snapshots: what a user reads); a link that is no URL is bad input.
#[test]
fn explain_link_shows_canonical_link_identity_key_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watcher.toml");
    std::fs::write(
        &path,
        r#"[watcher]
tracking_params = ["sk"]

[trigger]
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[[authors]]
name = "Ada"
feeds = ["https://medium.com/feed/@ada"]
"#,
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let explain = |args: &[&str]| {
        let mut all = vec!["--config", config, "check"];
        all.extend_from_slice(args);
        let out = watcher(&all);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let medium = explain(&[
        "--explain-link",
        "https://medium.com/@ada/analytical-engines-0123456789ab?source=rss-b4981c59ffa5------2",
        "--explain-link",
        "https://medium.com/the-pub/analytical-engines-0123456789ab?sk=4f2c",
    ]);
    insta::assert_snapshot!("explain_link_medium", medium);
    let substack = explain(&[
        "--explain-link",
        "https://ada.substack.com/p/notes-on-the-engine?r=1ttoeh&triedRedirect=true",
        "--explain-link",
        "https://www.ada-lovelace.example/p/notes-on-the-engine",
        "--title",
        "Notes on the engine",
    ]);
    insta::assert_snapshot!("explain_link_substack", substack);
    let apart = explain(&[
        "--explain-link",
        "https://ada.substack.com/p/coming-soon",
        "--explain-link",
        "https://www.ada-lovelace.example/p/coming-soon?r=1",
    ]);
    assert!(apart.contains("not one article"), "{apart}");
    assert!(apart.contains("give it with --title"), "{apart}");
    let marked = explain(&[
        "--explain-link",
        "https://www.ada-lovelace.example/p/x?r=1",
        "--generator",
        "Substack",
    ]);
    assert!(
        marked.contains("canonical: https://www.ada-lovelace.example/p/x\n"),
        "{marked}"
    );
    assert!(marked.contains("by feed generator `substack`"), "{marked}");

    let bad = watcher(&["--config", config, "check", "--explain-link", "not a url"]);
    assert_eq!(bad.status.code(), Some(2));
}
