//! The chains' cron schedules: one task per scheduled chain submitting a run at each firing,
//! keyed by the firing time so a firing is never submitted twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use runner_api::{RunRequest, Trigger};

use super::Engine;
use crate::causes::error_chain;
use crate::schedule;

impl Engine {
    /// Starts one task per chain with a schedule, until shutdown.
    pub(super) fn start_schedules(&self) {
        for chain in self.inner.chains.iter() {
            if let Some(schedule) = chain.schedule().cloned() {
                let engine = self.clone();
                let chain = Arc::clone(chain);
                let stopping = self.inner.stopping.clone();
                tracing::info!(chain = chain.name(), schedule = schedule.expr(), timezone = %schedule.timezone(), "schedule active");
                self.inner.tracker.spawn(async move {
                    schedule::run_schedule(&schedule, stopping, |at| {
                        let engine = engine.clone();
                        let chain = chain.name().to_owned();
                        async move { engine.fire_schedule(&chain, at).await }
                    })
                    .await;
                });
            }
        }
    }

    async fn fire_schedule(&self, chain: &str, at: chrono::DateTime<Utc>) {
        let request = RunRequest {
            config: None,
            idempotency_key: Some(format!("schedule:{chain}:{}", at.to_rfc3339())),
            params: BTreeMap::new(),
            force: false,
        };
        match self.submit(chain, request, Trigger::Schedule).await {
            Ok(submitted) => {
                tracing::info!(chain, run_id = %submitted.run().id, at = %at, "scheduled run queued");
            }
            Err(err) => {
                tracing::error!(chain, error = %error_chain(&err), "scheduled run not started")
            }
        }
    }
}
