//! websub/telemetry.rs: push's own Prometheus series, registered with the watcher's registry
//! (`metrics.rs`) and fed by the callback server and the daemon: deliveries received by outcome,
//! and the histogram of the watcher's own share of push latency (a delivery received → the
//! trigger sent for what its poll found). No label names a source or a hub. The counts of
//! sources by push state are read from the store at scrape time (`metrics.rs`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// Every delivery outcome, as the `outcome` label spells it.
pub const OUTCOMES: [&str; 5] = [
    "accepted",
    "bad_signature",
    "unknown_callback",
    "too_large",
    "too_slow",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Handles to push's series (clones share them).
#[derive(Debug, Clone)]
pub struct PushMetrics {
    deliveries: Family<OutcomeLabel, Counter>,
    share: Histogram,
}

impl PushMetrics {
    /// Registers push's series with `registry` (prefixed `watcher_push_`).
    pub fn register(registry: &mut Registry) -> PushMetrics {
        let deliveries = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "push_deliveries",
            "WebSub deliveries received, by outcome (accepted, bad_signature, unknown_callback, too_large, too_slow)",
            deliveries.clone(),
        );
        for outcome in OUTCOMES {
            drop(deliveries.get_or_create(&OutcomeLabel { outcome }));
        }
        // 1 ms .. about 17 s, a step of 1.5: fine enough to tell 50 ms from 75 ms.
        let share = Histogram::new(exponential_buckets(0.001, 1.5, 25));
        registry.register_with_unit(
            "push_to_trigger",
            "The watcher's own share of push latency: a delivery received to the trigger sent for what its poll found (the batch window included)",
            Unit::Seconds,
            share.clone(),
        );
        PushMetrics { deliveries, share }
    }

    /// Counts one delivery with `outcome` (one of [`OUTCOMES`]).
    pub fn delivery(&self, outcome: &'static str) {
        self.deliveries
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Observes one delivery-to-trigger time.
    pub fn share(&self, took: Duration) {
        self.share.observe(took.as_secs_f64());
    }
}
