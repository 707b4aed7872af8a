//! What a client sends to start a run: the body of `POST` [`CHAIN_RUNS`](crate::paths::CHAIN_RUNS)
//! and the query of `GET` [`RUNS`](crate::paths::RUNS), with the limits the runner enforces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest accepted idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Default and largest `limit` of a run listing.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// A request to start a run, as clients build it and the engine takes it.
///
/// It serializes to the body the runner accepts, which the runner reads leniently as a
/// [`RunRequestBody`] (so hand-written `curl` bodies may give params as numbers or booleans).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The config the stages read; `None` uses the chain's `default_config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    /// The same key again returns the same run (and a different request with it is a conflict).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Values for `{param.NAME}`, over the chain's defaults.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Opens every gate and budget for this run (recorded in the run, and part of what an
    /// idempotency key names). Left out of the body when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
}

fn is_false(flag: &bool) -> bool {
    !flag
}

/// The body of `POST` [`CHAIN_RUNS`](crate::paths::CHAIN_RUNS) as the runner reads it, before
/// its checks turn it into a [`RunRequest`]: every field optional, nothing else allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequestBody {
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    #[serde(default)]
    pub force: Option<bool>,
}

/// The query of `GET` [`RUNS`](crate::paths::RUNS); empty values count as absent. Kept as text
/// so the runner can say exactly what was wrong with a value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// A [`RunStatus`](crate::RunStatus) in snake case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// 1 to [`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The query of `GET` [`GATES`](crate::paths::GATES).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_serializes_to_a_body_the_runner_reads() {
        let mut request = RunRequest {
            idempotency_key: Some("k".into()),
            ..RunRequest::default()
        };
        request.params.insert("mode".into(), "full".into());
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            json!({"idempotency_key": "k", "params": {"mode": "full"}})
        );
        let body: RunRequestBody = serde_json::from_value(json).unwrap();
        assert_eq!(body.params["mode"], "full");
        assert!(body.config.is_none());
    }
}
