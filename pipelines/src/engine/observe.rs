//! What the engine shows Prometheus: its metrics ([`crate::metrics`]) with the queues read at
//! scrape time.

use super::Engine;
use crate::metrics::QueueSnapshot;

impl Engine {
    /// The runner's metrics in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let queues = {
            let queues = self.lock_queues();
            QueueSnapshot {
                chains: queues
                    .iter()
                    .map(|(chain, q)| (chain.clone(), (q.waiting.len(), q.active.len())))
                    .collect(),
            }
        };
        self.inner.metrics.render(&queues)
    }
}
