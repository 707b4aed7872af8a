//! The crate's error type, its transient/permanent split and the CLI's exit-code mapping.
//!
//! Messages are lowercase, name the value in backticks, keep the cause as `#[source]` (never
//! repeated in the message) and end with a hint where one helps. No variant ever holds a secret.

use std::path::PathBuf;
use std::time::Duration;

/// Exit codes of the `trigger-client` CLI (and a suggestion for any caller).
pub mod exit {
    /// The command did what was asked (with `--wait`: the run succeeded).
    pub const SUCCESS: i32 = 0;
    /// The run failed or was cancelled (or did not finish within `--timeout`).
    pub const RUN_FAILED: i32 = 1;
    /// Usage or configuration error, including requests the engine rejected (4xx).
    pub const USAGE: i32 = 2;
    /// The engine could not be reached, or kept failing, after retries.
    pub const UNREACHABLE: i32 = 3;
    /// The store failed. Part of the contract the workspace's binaries share; the trigger
    /// client keeps no store, so its CLI never exits with it.
    pub const STORE_FAILED: i32 = 4;
}

/// Everything that can go wrong while starting, following or cancelling a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A target key is missing or invalid.
    #[error("invalid target config: `{key}` {problem}")]
    Config { key: String, problem: String },

    /// A secret file a target key names cannot be read.
    #[error("invalid target config: `{key}` names `{}`, which cannot be read", path.display())]
    SecretFile {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A URL template a target key holds does not give a valid URL.
    #[error("invalid target config: `{key}` = `{template}` does not give a valid URL")]
    BadUrl {
        key: String,
        template: String,
        #[source]
        source: url::ParseError,
    },

    /// A targets file cannot be read or does not hold the named table.
    #[error("targets file `{}` {problem}", path.display())]
    ConfigFile {
        path: PathBuf,
        problem: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A pipeline config file cannot be read or parsed.
    #[error("pipeline config `{}` {problem} (hint: it is YAML or JSON, e.g. `parameters: {{user_full_name: ..., links: [...]}}`)", path.display())]
    PipelineConfig {
        path: PathBuf,
        problem: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A run handle does not have the `<kind>:<id>` form.
    #[error(
        "invalid run handle `{handle}`: {problem} (expected `<kind>:<id>`, e.g. `prefect:0b7c4a52-...`)"
    )]
    BadHandle { handle: String, problem: String },

    /// The request is not valid for this engine (e.g. a `prefect` pipeline without `/`).
    #[error("invalid request: {problem}")]
    Request { problem: String },

    /// The HTTP client cannot be set up (e.g. no TLS backend).
    #[error("cannot build the HTTP client")]
    HttpClient {
        #[source]
        source: reqwest::Error,
    },

    /// A request cannot be built from its parts (e.g. an invalid header value).
    #[error("cannot build the request `{method} {url}`")]
    Build {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// No TCP connection could be made.
    #[error(
        "cannot connect to {kind} at `{url}` (hint: is the server running, and is `url` right?)"
    )]
    Connect {
        kind: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The request or its response did not complete in time.
    #[error("{kind} did not answer `{method} {url}` in time (hint: raise `request_timeout`)")]
    Timeout {
        kind: &'static str,
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The connection broke while sending or reading.
    #[error("{kind} connection broke during `{method} {url}`")]
    Transport {
        kind: &'static str,
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The engine answered with an error status; `message` is the engine's own text.
    #[error("{kind} answered {status} to `{method} {url}`: {message}")]
    Status {
        kind: &'static str,
        method: String,
        url: String,
        status: u16,
        message: String,
        /// The server's `Retry-After`, already converted to a delay.
        retry_after: Option<Duration>,
    },

    /// The engine refused our credentials (401/403).
    #[error("{kind} refused the request `{method} {url}` with {status}: {message} (hint: {hint})")]
    Auth {
        kind: &'static str,
        method: String,
        url: String,
        status: u16,
        message: String,
        hint: String,
    },

    /// The engine answered 2xx with something we cannot read.
    #[error("unexpected answer from {kind} to `{method} {url}`: {problem}")]
    Protocol {
        kind: &'static str,
        method: String,
        url: String,
        problem: String,
    },

    /// The engine answered 2xx with a body that is not the JSON we expected.
    #[error(
        "unexpected answer from {kind} to `{method} {url}`: the body is not the JSON we expected; it starts with `{start}`"
    )]
    Json {
        kind: &'static str,
        method: String,
        url: String,
        /// The body's first characters.
        start: String,
        #[source]
        source: serde_json::Error,
    },

    /// A webhook receiver named a status URL on another origin than the webhook's: it is never
    /// asked (the token would go there). Both origins are `scheme://host:port` as the URL parser
    /// serialized them (ASCII, no path, query or credentials).
    #[error(
        "the webhook receiver named a status URL on `{origin}`, not on the webhook's origin `{expected}`; it is not followed (hint: serve the status on the webhook's origin, or set `status_url` in the target)"
    )]
    ForeignStatusUrl { origin: String, expected: String },

    /// The engine redirected to another origin (or answered some other 3xx): not followed, so an
    /// answer never chooses where the client connects (nor where its credentials go).
    #[error(
        "{kind} answered {status} to `{method} {url}`, redirecting to `{location}`: not followed, only redirects within the target's own origin are (hint: set the target's url to where the engine really is)"
    )]
    Redirected {
        kind: &'static str,
        method: String,
        url: String,
        status: u16,
        /// The `Location`, resolved, credentials removed, control characters escaped.
        location: String,
    },

    /// The engine cannot do this at all (e.g. ZenML OSS starting runs, webhook cancel).
    #[error("{message}")]
    Unsupported { kind: &'static str, message: String },

    /// Transient failures went on until the retry policy gave up.
    #[error("{kind} still failing after {attempts} attempts in {}", humantime::format_duration(rounded(*elapsed)))]
    Exhausted {
        kind: &'static str,
        attempts: u32,
        elapsed: Duration,
        #[source]
        last: Box<Error>,
    },

    /// `wait` ran out of time before the run finished.
    #[error("run `{run}` is still {state} after {} (hint: raise `--timeout`, or follow it later with `trigger-client status {run}`)", humantime::format_duration(*timeout))]
    WaitTimeout {
        run: String,
        state: String,
        timeout: Duration,
    },
}

impl Error {
    /// True when trying the same request again may succeed: connect errors, timeouts, broken
    /// connections, and the statuses 408, 425, 429 and 5xx. Pure: looks only at the error.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Transport { .. } => true,
            Error::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }

    /// The delay the server asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the engine answered, if this error carries one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } | Error::Auth { status, .. } => Some(*status),
            Error::Exhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The CLI exit code for this error: see [`exit`].
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::WaitTimeout { .. } => exit::RUN_FAILED,
            Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::Exhausted { .. } => exit::UNREACHABLE,
            Error::Status { status, .. } if *status >= 500 => exit::UNREACHABLE,
            Error::Config { .. }
            | Error::SecretFile { .. }
            | Error::BadUrl { .. }
            | Error::HttpClient { .. }
            | Error::Build { .. }
            | Error::ConfigFile { .. }
            | Error::PipelineConfig { .. }
            | Error::BadHandle { .. }
            | Error::Request { .. }
            | Error::Status { .. }
            | Error::Auth { .. }
            // An answer we cannot read: most likely the wrong URL (not retried, so not "unreachable").
            | Error::Protocol { .. }
            | Error::Json { .. }
            | Error::ForeignStatusUrl { .. }
            | Error::Redirected { .. }
            | Error::Unsupported { .. } => exit::USAGE,
        }
    }
}

/// A duration fit for people: whole milliseconds under 10s, whole seconds above.
fn rounded(duration: Duration) -> Duration {
    if duration < Duration::from_secs(10) {
        Duration::from_millis(duration.as_millis() as u64)
    } else {
        Duration::from_secs(duration.as_secs())
    }
}

/// 408 Request Timeout, 425 Too Early, 429 Too Many Requests and every 5xx.
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Error {
        Error::Status {
            kind: "webhook",
            method: "POST".into(),
            url: "http://x/".into(),
            status: code,
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn transient_statuses() {
        for code in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 405, 409, 410, 422] {
            assert!(!status(code).is_transient(), "{code}");
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(status(404).exit_code(), exit::USAGE);
        let exhausted = Error::Exhausted {
            kind: "webhook",
            attempts: 4,
            elapsed: Duration::from_micros(1_500_321),
            last: Box::new(status(503)),
        };
        assert_eq!(exhausted.exit_code(), exit::UNREACHABLE);
        assert_eq!(
            exhausted.to_string(),
            "webhook still failing after 4 attempts in 1s 500ms"
        );
        assert_eq!(exhausted.status(), Some(503));
    }
}
