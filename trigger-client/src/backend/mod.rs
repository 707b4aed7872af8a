//! The engines: one [`Backend`] implementation per kind, each only building requests and
//! reading replies (retries, auth refresh and error statuses are the transport's job, in
//! `client`). [`AnyBackend`] dispatches to the target's kind.

use crate::client::Http;
use crate::error::Error;
use crate::target::{Kind, TargetConfig};
use crate::{RunRequest, RunStatus};

pub(crate) mod webhook;

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
}

impl AnyBackend {
    pub(crate) fn new(target: &TargetConfig) -> Result<Self, Error> {
        match target.kind {
            Kind::Webhook => Ok(AnyBackend::Webhook(webhook::Webhook::new(target)?)),
            other => Err(Error::Unsupported {
                kind: other.as_str(),
                message: format!("kind = \"{other}\" is not available in this build yet"),
            }),
        }
    }

    pub(crate) async fn trigger(
        &self,
        http: &Http,
        pipeline: &str,
        req: &RunRequest,
    ) -> Result<String, Error> {
        match self {
            AnyBackend::Webhook(backend) => backend.trigger(http, pipeline, req).await,
        }
    }

    pub(crate) async fn status(&self, http: &Http, id: &str) -> Result<RunStatus, Error> {
        match self {
            AnyBackend::Webhook(backend) => backend.status(http, id).await,
        }
    }

    pub(crate) async fn cancel(&self, http: &Http, id: &str) -> Result<(), Error> {
        match self {
            AnyBackend::Webhook(backend) => backend.cancel(http, id).await,
        }
    }
}
