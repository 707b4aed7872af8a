//! The per-chain FIFO queues: starting waiting runs while their chain is under its concurrency
//! limit, each in a task with its `run` span, and starting the next one when a run ends.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Engine;

impl Engine {
    /// Starts queued runs of `chain_name` while it is under its concurrency limit.
    pub(super) fn dispatch(&self, chain_name: &str) {
        if self.inner.stopping.is_cancelled() {
            return;
        }
        let Some(chain) = self.inner.chains.get(chain_name).cloned() else {
            return;
        };
        let mut queues = self.lock_queues();
        let queue = queues.entry(chain_name.to_owned()).or_default();
        while queue.active.len() < chain.concurrency() {
            let Some(id) = queue.waiting.pop_front() else {
                break;
            };
            let cancel = CancellationToken::new();
            queue.active.insert(id.clone(), cancel.clone());
            let engine = self.clone();
            let chain = Arc::clone(&chain);
            let span = tracing::info_span!("run", chain = chain.name(), run_id = %id);
            self.inner.tracker.spawn(
                async move {
                    engine.execute_run(&chain, &id, cancel).await;
                    engine
                        .lock_queues()
                        .entry(chain.name().to_owned())
                        .or_default()
                        .active
                        .remove(&id);
                    engine.dispatch(chain.name());
                    engine.inner.runs_ended.notify_waiters();
                }
                .instrument(span),
            );
        }
    }
}
