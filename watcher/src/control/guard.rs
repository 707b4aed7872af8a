//! control/guard.rs: who may talk to the daemon's loopback endpoint. A web page the operator
//! visits can reach 127.0.0.1 too, so every request must be addressed to a loopback name (`Host`
//! is `localhost`, 127.0.0.0/8 or `::1`, any port: against DNS rebinding, which would let a page
//! read `/status`), and every state-changing request must carry the [`HEADER`], which a
//! cross-origin form cannot send and a cross-origin script can send only after a CORS preflight
//! this endpoint never grants. A request from a page of another origin (`Origin` not loopback) is
//! refused outright. Refusals are 403 with a one-line reason.

use std::net::IpAddr;

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The header every state-changing request must carry (the CLI sends `X-Watcher-Control: 1`).
pub const HEADER: &str = "x-watcher-control";

/// The middleware: refuses with 403 what [`check`] refuses, passes the rest on.
pub async fn guard(req: Request, next: Next) -> Response {
    match check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(reason) => (StatusCode::FORBIDDEN, format!("forbidden: {reason}\n")).into_response(),
    }
}

/// Why a request is refused, if it is.
pub fn check(method: &Method, headers: &HeaderMap) -> Result<(), String> {
    let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or("?"));
    match host {
        None => {
            return Err(
                "no `Host` header; address the endpoint as 127.0.0.1, ::1 or localhost".into(),
            );
        }
        Some(h) if !is_loopback_host(h) => {
            return Err(format!(
                "`Host: {}` is not a loopback name or address (this refuses DNS rebinding); address the endpoint as 127.0.0.1, ::1 or localhost",
                crate::printable::printable(h)
            ));
        }
        Some(_) => {}
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("?");
        if !is_loopback_origin(origin) {
            return Err(format!(
                "requests from web pages of other origins are refused (`Origin: {}`)",
                crate::printable::printable(origin)
            ));
        }
    }
    let reads = matches!(*method, Method::GET | Method::HEAD);
    if !reads && !headers.contains_key(HEADER) {
        return Err(
            "a state-changing request must carry the header `X-Watcher-Control: 1` (the watcher CLI sends it; a cross-origin form cannot)"
                .into(),
        );
    }
    Ok(())
}

/// `localhost`, an address in 127.0.0.0/8 or `::1` (or its IPv4-mapped form), with any port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:9860`
        Some(rest) => match rest.split_once(']') {
            Some((addr, port)) if port.is_empty() || port.starts_with(':') => addr,
            _ => return false,
        },
        // `127.0.0.1:9860`, `localhost`; a bare IPv6 address has several colons.
        None if host.matches(':').count() > 1 => host,
        None => host.split_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// `http://localhost:PORT`, `http://127.0.0.1`, `http://[::1]:PORT` (any scheme of the two).
fn is_loopback_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(is_loopback_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn loopback_hosts_with_any_port() {
        for ok in [
            "localhost",
            "LocalHost:9860",
            "localhost.:1",
            "127.0.0.1",
            "127.0.0.1:9860",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:9860",
            "::1",
            "[::ffff:127.0.0.1]:9860",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9860",
            "localhost.evil.example",
            "10.0.0.1:9860",
            "0.0.0.0:9860",
            "[::2]:9860",
            "[::1]x",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn a_post_needs_the_header_and_a_get_does_not() {
        let h = headers(&[("host", "127.0.0.1:9860")]);
        assert!(check(&Method::GET, &h).is_ok());
        let refused = check(&Method::POST, &h).unwrap_err();
        assert!(refused.contains("X-Watcher-Control"), "{refused}");
        let h = headers(&[("host", "127.0.0.1:9860"), (HEADER, "1")]);
        assert!(check(&Method::POST, &h).is_ok());
    }

    #[test]
    fn other_origins_and_hosts_are_refused_even_for_reads() {
        let h = headers(&[("host", "evil.example:9860")]);
        assert!(check(&Method::GET, &h).unwrap_err().contains("rebinding"));
        let h = headers(&[
            ("host", "127.0.0.1:9860"),
            ("origin", "http://evil.example"),
            (HEADER, "1"),
        ]);
        assert!(
            check(&Method::POST, &h)
                .unwrap_err()
                .contains("evil.example")
        );
        let h = headers(&[
            ("host", "localhost:9860"),
            ("origin", "http://localhost:8080"),
        ]);
        assert!(check(&Method::GET, &h).is_ok());
    }
}
