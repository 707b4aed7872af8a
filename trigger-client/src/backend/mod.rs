//! The engines: one [`Backend`] implementation per kind, each only building requests and
//! reading replies (retries, auth refresh and error statuses are the transport's job, in
//! `client`). [`AnyBackend`] dispatches to the target's kind. Also here: the URL and
//! identifier rules every backend shares.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::Error;
use crate::http::Http;
use crate::target::{Kind, TargetConfig};
use crate::{RunRequest, RunStatus};

mod airflow;
mod pipelines;
mod prefect;
pub(crate) mod webhook;
mod zenml;

/// What every engine can be asked. `pipeline` is the request's pipeline, already defaulted
/// from the target; ids are the engine's run ids (the part after `<kind>:` in a handle).
pub(crate) trait Backend {
    /// Starts one run (idempotently, keyed by `req.idempotency_key`) and returns its id.
    async fn trigger(&self, http: &Http, pipeline: &str, req: &RunRequest)
    -> Result<String, Error>;
    /// The run's current state.
    async fn status(&self, http: &Http, id: &str) -> Result<RunStatus, Error>;
    /// Asks the engine to cancel the run.
    async fn cancel(&self, http: &Http, id: &str) -> Result<(), Error>;
}

/// The target's backend, chosen by `kind`.
pub(crate) enum AnyBackend {
    Webhook(webhook::Webhook),
    Pipelines(pipelines::Pipelines),
    Zenml(zenml::Zenml),
    Airflow(airflow::Airflow),
    Prefect(prefect::Prefect),
}

/// Calls the same method on whichever backend is inside.
macro_rules! dispatch {
    ($self:ident, $backend:ident => $call:expr) => {
        match $self {
            AnyBackend::Webhook($backend) => $call,
            AnyBackend::Pipelines($backend) => $call,
            AnyBackend::Zenml($backend) => $call,
            AnyBackend::Airflow($backend) => $call,
            AnyBackend::Prefect($backend) => $call,
        }
    };
}

impl AnyBackend {
    pub(crate) fn new(target: &TargetConfig) -> Result<Self, Error> {
        Ok(match target.kind {
            Kind::Webhook => AnyBackend::Webhook(webhook::Webhook::new(target)?),
            Kind::Pipelines => AnyBackend::Pipelines(pipelines::Pipelines::new(target)?),
            Kind::Zenml => AnyBackend::Zenml(zenml::Zenml::new(target)?),
            Kind::Airflow => AnyBackend::Airflow(airflow::Airflow::new(target)?),
            Kind::Prefect => AnyBackend::Prefect(prefect::Prefect::new(target)?),
        })
    }

    pub(crate) async fn trigger(
        &self,
        http: &Http,
        pipeline: &str,
        req: &RunRequest,
    ) -> Result<String, Error> {
        dispatch!(self, backend => backend.trigger(http, pipeline, req).await)
    }

    pub(crate) async fn status(&self, http: &Http, id: &str) -> Result<RunStatus, Error> {
        dispatch!(self, backend => backend.status(http, id).await)
    }

    pub(crate) async fn cancel(&self, http: &Http, id: &str) -> Result<(), Error> {
        dispatch!(self, backend => backend.cancel(http, id).await)
    }

    /// The pipelines runner's record of run `id` (stages included); `None` for other engines.
    pub(crate) async fn runner_run(
        &self,
        http: &Http,
        id: &str,
    ) -> Result<Option<runner_api::Run>, Error> {
        match self {
            AnyBackend::Pipelines(backend) => backend.run(http, id).await.map(Some),
            _ => Ok(None),
        }
    }
}

/// `base` with `segments` appended as path segments, each percent-encoded (so a chain, DAG or
/// run id can never change the path's shape).
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// An identifier engines accept (`[A-Za-z0-9_.~:+-]`, at most 200 characters) derived from an
/// idempotency key: the key itself when it already fits, else its allowed characters plus a
/// digest of the whole key, so different keys never share an identifier.
pub(crate) fn safe_identifier(key: &str) -> String {
    const MAX: usize = 200;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_.~:+-".contains(c);
    if !key.is_empty() && key.len() <= MAX && key.chars().all(allowed) {
        return key.to_owned();
    }
    let clean: String = key
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(MAX - 17)
        .collect();
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{clean}-{}", &digest[..16])
}

/// An id engines send as a string or a number.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum IdValue {
    Text(String),
    Number(i64),
}

impl IdValue {
    pub(crate) fn into_string(self) -> String {
        match self {
            IdValue::Text(text) => text,
            IdValue::Number(number) => number.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_encodes_segments_and_keeps_base_path() {
        let base = Url::parse("http://127.0.0.1:4200/api").unwrap();
        assert_eq!(
            endpoint(&base, &["deployments", "name", "my flow", "a/b"]).as_str(),
            "http://127.0.0.1:4200/api/deployments/name/my%20flow/a%2Fb"
        );
        let base = Url::parse("http://127.0.0.1:8731/").unwrap();
        assert_eq!(
            endpoint(&base, &["api", "runs"]).as_str(),
            "http://127.0.0.1:8731/api/runs"
        );
    }

    #[test]
    fn valid_keys_are_kept() {
        assert_eq!(safe_identifier("batch-0a1b2c"), "batch-0a1b2c");
        assert_eq!(safe_identifier("a_b.c~d:e+f-1"), "a_b.c~d:e+f-1");
    }

    #[test]
    fn other_keys_are_cleaned_and_made_unique() {
        let a = safe_identifier("paul iusztin/2024");
        let c = safe_identifier("paul iusztin?2024");
        assert!(a.starts_with("paul_iusztin_2024-"), "{a}");
        assert_eq!(safe_identifier("paul_iusztin_2024"), "paul_iusztin_2024");
        assert_ne!(a, c);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.~:+-".contains(c))
        );
        assert!(safe_identifier(&"x".repeat(500)).len() <= 200);
        assert_eq!(safe_identifier("é"), safe_identifier("é"), "deterministic");
    }
}
