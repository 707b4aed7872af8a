//! The client side of the harness: loopback servers on port 0 (fake engines are built with
//! `kit`), targets and clients with zero retry delays, the real-engine switches, the binary,
//! and logs behind `TEST_LOG=1`.

use axum::Router;
use trigger_client::{Client, Kind, RetryPolicy, TargetConfig};
use url::Url;

/// Starts `router` on 127.0.0.1:0 and returns its base URL (`http://127.0.0.1:PORT/`).
pub async fn spawn(router: Router) -> Url {
    init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Url::parse(&format!("http://{addr}/")).unwrap()
}

/// A loopback address on which nothing listens.
pub async fn closed_port_url() -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    Url::parse(&format!("http://{addr}/hook")).unwrap()
}

/// Logs to the test output when `TEST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("trigger_client=debug")
            .with_test_writer()
            .try_init();
    }
}

/// A target of `kind` at `base.join(path)`.
pub fn target(kind: Kind, base: &Url, path: &str) -> TargetConfig {
    TargetConfig::new(kind, base.join(path).unwrap())
}

/// A file holding `secret` (a token, password or key file a target names); it lives as long
/// as the returned guard.
pub fn secret_file(secret: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), secret).unwrap();
    file
}

/// A client with 4 attempts and no delays.
pub fn client(target: &TargetConfig) -> Client {
    Client::new(target)
        .unwrap()
        .with_retry(RetryPolicy::immediate(4))
        .with_poll_interval(std::time::Duration::from_millis(10))
}

/// The value of `var`, which names a real engine started by `scripts/engines/*.sh`. Unset means
/// no engine: the test prints a note and should pass, except under `CI=true`, where a missing
/// engine is a failure.
pub fn real_engine(var: &str, test: &str, script: &str) -> Option<String> {
    use std::io::Write;
    if let Some(value) = std::env::var(var).ok().filter(|value| !value.is_empty()) {
        return Some(value);
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("CI=true but {var} is not set: run this test under `{script} run -- ...`");
    }
    // Straight to the process's stderr: libtest captures only the print macros.
    let _ = writeln!(
        std::io::stderr(),
        "note: skipping {test}: {var} is not set (start the engine with {script})"
    );
    None
}

/// Runs the `trigger-client` binary.
pub async fn trigger_client_bin(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_trigger-client"))
        .args(args)
        .output()
        .await
        .unwrap()
}

/// A key no earlier test run used.
pub fn unique_key(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("it-{name}-{nanos}")
}

/// The digital_data_etl-shaped config fixture.
pub fn etl_fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/digital_data_etl_paul_iusztin.yaml")
}
