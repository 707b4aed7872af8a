//! Reading an engine's answer: [`Reply`] (status, headers, capped body), its JSON, the
//! engine's own error text from any of the shapes engines use, and the error a reply becomes.

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{self, HeaderMap};
use serde::de::DeserializeOwned;
use url::Url;

use crate::auth::Auth;
use crate::error::Error;
use crate::target::redact;

/// A response that is not transient: 2xx, 3xx, or a 4xx the backend may want to interpret.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub method: Method,
    pub url: Url,
    pub kind: &'static str,
}

impl Reply {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON, or a protocol error naming what was expected.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Json {
            kind: self.kind,
            method: self.method.to_string(),
            url: redact(&self.url),
            start: snippet(&self.body, 120),
            source,
        })
    }

    /// A protocol error about this reply.
    pub(crate) fn protocol(&self, problem: impl Into<String>) -> Error {
        Error::Protocol {
            kind: self.kind,
            method: self.method.to_string(),
            url: redact(&self.url),
            problem: problem.into(),
        }
    }

    /// The engine's own error text: `detail`, `error`, `message` or `exception_message` from a
    /// JSON body (in any of the shapes FastAPI, ZenML, Airflow and the runner use), else the
    /// body's first line(s).
    pub(crate) fn engine_message(&self) -> String {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&self.body)
            && let Some(message) = message_from_json(&value)
        {
            return message;
        }
        let text = snippet(&self.body, 500);
        if text.is_empty() {
            format!("empty body ({})", reason(self.status))
        } else {
            text
        }
    }

    /// This reply as an error: 401/403 become [`Error::Auth`] with a hint from `auth`.
    pub(crate) fn error(&self, auth: &Auth) -> Error {
        let method = self.method.to_string();
        let url = redact(&self.url);
        if matches!(self.status, 401 | 403) {
            return Error::Auth {
                kind: self.kind,
                method,
                url,
                status: self.status,
                message: self.engine_message(),
                hint: auth.hint(self.status),
            };
        }
        Error::Status {
            kind: self.kind,
            method,
            url,
            status: self.status,
            message: self.engine_message(),
            retry_after: None,
        }
    }

    /// `Ok(self)` for 2xx, else [`Reply::error`].
    pub(crate) fn success(self, auth: &Auth) -> Result<Reply, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.error(auth))
        }
    }

    /// The `Location` header resolved against the request URL.
    pub(crate) fn location(&self) -> Option<Url> {
        let value = self.headers.get(header::LOCATION)?.to_str().ok()?;
        self.url.join(value).ok()
    }
}

/// The first `max` characters of a body, lossily decoded, whitespace collapsed.
/// A redirect's `Location` as an error may show it: resolved against `base`, without
/// credentials, at most 200 characters, control characters escaped (`-` when there is none).
pub(crate) fn location(headers: &reqwest::header::HeaderMap, base: &url::Url) -> String {
    let Some(raw) = headers.get(reqwest::header::LOCATION) else {
        return "-".into();
    };
    let raw = String::from_utf8_lossy(raw.as_bytes());
    let shown = match base.join(&raw) {
        Ok(url) => redact(&url),
        Err(_) => raw.into_owned(),
    };
    escape_controls(&snippet(shown.as_bytes(), 200))
}

/// `text` with its control characters (C0, DEL, C1: `\n`, `\u{1b}`) and bidi controls (the
/// embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069, the marks U+200E, U+200F,
/// U+061C) escaped, so what an engine sent cannot move a terminal's cursor, retitle it or show
/// text in another order than it is stored. The watcher's `printable` uses the same rule.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// Appends `c` to `out`, escaped as [`escape_controls`] does.
pub fn push_escaped(out: &mut String, c: char) {
    if c.is_control() {
        out.extend(c.escape_default());
    } else if reorders(c) {
        out.extend(c.escape_unicode());
    } else {
        out.push(c);
    }
}

/// Whether `c` is a bidi control (see [`escape_controls`]).
pub fn reorders(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

pub(crate) fn snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > max {
        let cut: String = collapsed.chars().take(max).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("unknown status")
}

/// Finds the human message in the JSON error shapes engines use.
fn message_from_json(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    // ZenML's 422: a top-level `["ExceptionClass", "message + traceback"]`.
    if let Some(message) = exception_pair(value) {
        return Some(message);
    }
    let object = value.as_object()?;
    for key in ["detail", "error", "message", "exception_message", "title"] {
        let Some(field) = object.get(key) else {
            continue;
        };
        match field {
            Value::String(text) if !text.is_empty() => return Some(text.clone()),
            // ZenML: ["ExceptionClass", "message"]
            Value::Array(_) if exception_pair(field).is_some() => return exception_pair(field),
            // FastAPI validation: [{"loc": [...], "msg": "..."}]
            Value::Array(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .filter_map(|item| {
                        let msg = item.get("msg")?.as_str()?;
                        let loc = item
                            .get("loc")
                            .and_then(Value::as_array)
                            .map(|loc| {
                                loc.iter()
                                    .map(|part| match part {
                                        Value::String(s) => s.clone(),
                                        other => other.to_string(),
                                    })
                                    .collect::<Vec<_>>()
                                    .join(".")
                            })
                            .unwrap_or_default();
                        Some(if loc.is_empty() {
                            msg.to_owned()
                        } else {
                            format!("{loc}: {msg}")
                        })
                    })
                    .collect();
                if !parts.is_empty() {
                    return Some(parts.join("; "));
                }
            }
            // Airflow 409: {"reason": ..., "message": ...}; nested {"error": {"message": ...}}
            Value::Object(_) => {
                if let Some(message) = message_from_json(field) {
                    return Some(message);
                }
                if let Some(reason) = field.get("reason").and_then(Value::as_str) {
                    return Some(reason.to_owned());
                }
            }
            _ => {}
        }
    }
    None
}

/// ZenML's `["ExceptionClass", "message"]` as `ExceptionClass: message`, without the server-side
/// traceback ZenML appends to some messages (`File "/path/on/the/server.py", line N, in f`), and
/// at most 500 characters.
fn exception_pair(value: &serde_json::Value) -> Option<String> {
    let [class, message] = value.as_array()?.as_slice() else {
        return None;
    };
    let (class, message) = (class.as_str()?, message.as_str()?);
    let kept: Vec<&str> = message
        .lines()
        .take_while(|line| !line.trim_start().starts_with("File \""))
        .collect();
    let message = snippet(kept.join("\n").as_bytes(), 500);
    Some(if message.is_empty() {
        class.to_owned()
    } else {
        format!("{class}: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zenml_422_arrays_lose_their_traceback() {
        // What ZenML 0.98 answers to `{"run_configuration": 5}`.
        let body = json!([
            "ValueError",
            "1 validation error:\n  {'type': 'model_attributes_type', 'loc': ('body', 'run_configuration'), 'msg': 'Input should be a valid dictionary or object to extract fields from', 'input': 5}\n\n  File \"/srv/venv/lib/python3.11/site-packages/zenml/zen_server/utils.py\", line 459, in create_snapshot_run\n    create_snapshot_run(snapshot_id, ...)"
        ]);
        let message = message_from_json(&body).unwrap();
        assert_eq!(
            message,
            "ValueError: 1 validation error: {'type': 'model_attributes_type', 'loc': ('body', 'run_configuration'), 'msg': 'Input should be a valid dictionary or object to extract fields from', 'input': 5}"
        );
        assert_eq!(
            message_from_json(&json!({"detail": ["RuntimeError", ""]})).as_deref(),
            Some("RuntimeError")
        );
        assert_eq!(message_from_json(&json!(["a", "b", "c"])), None);
    }

    #[test]
    fn messages_from_engine_error_shapes() {
        let cases = [
            (
                json!({"detail": "Deployment not found"}),
                "Deployment not found",
            ),
            (
                json!({"detail": ["CredentialsNotValid", "Authentication error: invalid username or password"]}),
                "CredentialsNotValid: Authentication error: invalid username or password",
            ),
            (
                json!({"detail": [{"type": "missing", "loc": ["body", "logical_date"], "msg": "Field required"}]}),
                "body.logical_date: Field required",
            ),
            (
                json!({"detail": {"reason": "Unique constraint violation", "message": "Serious error when handling your request."}}),
                "Serious error when handling your request.",
            ),
            (json!({"error": "unknown chain `x`"}), "unknown chain `x`"),
            (json!({"exception_message": "Unauthorized"}), "Unauthorized"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                message_from_json(&value).as_deref(),
                Some(expected),
                "{value}"
            );
        }
    }
}
