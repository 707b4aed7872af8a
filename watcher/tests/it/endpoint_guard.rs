//! endpoint_guard.rs: the real daemon's loopback endpoint refuses what a web page could send: a
//! cross-origin simple form POST (no `X-Watcher-Control` header) to `/retry`, `/redeliver`,
//! `/release` and `/discard` gets 403 with a one-line reason, and any request whose `Host` is not
//! loopback (DNS rebinding) gets 403, GETs too; the CLI, which sends the header, still works.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// Sends `request` (raw HTTP/1.1, `Connection: close`) to `addr`; returns the status code and
/// the body.
async fn raw(addr: &str, request: String) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let code = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// A bodiless request for `path` addressed to `host`, with `headers` (each ending in `\r\n`).
fn request(method: &str, path: &str, host: &str, headers: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

/// What a page on http://evil.example submits with `<form method=post action=...>`.
fn form_post(addr: &str, path: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nConnection: close\r\n\r\nbatch=x"
    )
}

#[tokio::test]
async fn cross_origin_forms_and_rebound_hosts_are_refused_and_the_cli_is_not() {
    let t = spawn_one_author("Ruben", "rubenerd-hugo.rss.xml").await;
    let listen = load(&t.cfg).watcher.listen.to_string();
    let port = load(&t.cfg).watcher.listen.port();
    let mut daemon = watcher_cmd(&t.cfg).arg("run").spawn().unwrap();
    wait_healthy(&listen).await;

    for path in [
        "/retry",
        "/redeliver?batch=x",
        "/release?all=true",
        "/discard?all=true",
    ] {
        let (code, body) = raw(&listen, form_post(&listen, path)).await;
        assert_eq!(code, 403, "{path}: {body}");
        assert_eq!(
            body.trim_end().lines().count(),
            1,
            "{path}: one line: {body}"
        );
        assert!(body.starts_with("forbidden: "), "{path}: {body}");
    }
    // Same-origin-looking but without the header (curl -X POST): refused, naming the header.
    let (code, body) = raw(&listen, request("POST", "/retry", &listen, "")).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("X-Watcher-Control: 1"), "{body}");

    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
    for (method, path) in [("GET", "/status"), ("GET", "/held"), ("POST", "/retry")] {
        let rebound = format!("evil.example:{port}");
        let (code, body) = raw(
            &listen,
            request(method, path, &rebound, "X-Watcher-Control: 1\r\n"),
        )
        .await;
        assert_eq!(code, 403, "{method} {path}: {body}");
        assert!(body.contains("evil.example"), "{body}");
    }

    // Loopback names pass, with the header for a POST.
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let (code, body) = raw(
            &listen,
            request("POST", "/retry", &host, "X-Watcher-Control: 1\r\n"),
        )
        .await;
        assert_eq!(code, 200, "{host}: {body}");
    }
    // The CLI sends the header.
    let retry = watcher_cmd(&t.cfg).arg("retry").output().await.unwrap();
    assert!(
        retry.status.success(),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    assert_eq!(status_json(&t.cfg).await["sources"][0]["author"], "Ruben");

    stop_with_sigterm(&mut daemon).await;
}
