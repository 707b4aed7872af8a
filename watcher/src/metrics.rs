//! metrics.rs: the daemon's Prometheus metrics, served as `GET /metrics` on `[watcher] listen`
//! (Prometheus text format 0.0.4, with `prometheus-client`). Counters and the poll histogram
//! are kept as the daemon works; the gauges (sources failing/held/gone, deliveries and runs by
//! state, store size, age of the last successful poll, sources by push state) are read from the
//! store at scrape time, so they are never stale; push's own series are `websub/telemetry.rs`'s. No label carries a source, an author or a URL: the number of series
//! does not grow with the config. The embedded runner's `pipelines_` metrics follow the
//! watcher's in the same answer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::delivery::Phase;
use crate::outbox::DeliveryReport;
use crate::poll::PollOutcome;
use crate::store::{Store, StoreError};

/// The `Content-Type` of `/metrics`.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every poll result, as the `result` label spells it.
const POLL_RESULTS: [&str; 6] = [
    "not_modified",
    "baseline",
    "new",
    "throttled",
    "gone",
    "failed",
];

/// The `result` label of a poll.
fn poll_result(outcome: &PollOutcome) -> &'static str {
    match outcome {
        PollOutcome::NotModified => "not_modified",
        PollOutcome::Baseline { .. } => "baseline",
        PollOutcome::Polled { .. } => "new",
        PollOutcome::Throttled { .. } => "throttled",
        PollOutcome::Gone => "gone",
        PollOutcome::Failed { .. } => "failed",
    }
}

/// The run states a delivery can show (`started`: not asked yet), always exported.
const RUN_STATES: [&str; 8] = [
    "started",
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "untracked",
    "lost",
];

/// What the store says at scrape time.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// `failing`, `held` and `gone` sources.
    pub sources: BTreeMap<&'static str, i64>,
    /// Deliveries by phase (`pending`, `done`, `failed`).
    pub deliveries: BTreeMap<&'static str, i64>,
    /// Deliveries with a run, by the run's last known state.
    pub runs: BTreeMap<String, i64>,
    /// Sources by WebSub push state (`none` without a subscription or while one ends).
    pub push: BTreeMap<&'static str, i64>,
}

/// Every push state a source can be counted in.
const PUSH_STATES: [&str; 6] = ["none", "pending", "live", "denied", "missed", "failed"];

impl Snapshot {
    /// Reads the counts from the store (a scan: call it on the blocking pool).
    pub fn read(store: &Store, failing_after: u32) -> Result<Snapshot, StoreError> {
        let mut snap = Snapshot::default();
        for state in ["failing", "held", "gone"] {
            snap.sources.insert(state, 0);
        }
        for phase in ["pending", "done", "failed"] {
            snap.deliveries.insert(phase, 0);
        }
        for state in RUN_STATES {
            snap.runs.insert(state.to_owned(), 0);
        }
        for state in PUSH_STATES {
            snap.push.insert(state, 0);
        }
        let held = store.held_counts()?;
        let push = store.push_by_source()?;
        for (key, source) in store.sources()? {
            let state = match push.get(&key).map(|s| s.state.label()) {
                None | Some("ending") => "none",
                Some(state) => state,
            };
            *snap.push.entry(state).or_default() += 1;
            let counts = [
                ("failing", source.consecutive_failures >= failing_after),
                ("held", held.get(&key).is_some_and(|n| *n > 0)),
                ("gone", source.gone),
            ];
            for (state, yes) in counts {
                *snap.sources.entry(state).or_default() += i64::from(yes);
            }
        }
        for (_, delivery) in store.deliveries()? {
            let phase = match delivery.phase() {
                Phase::Pending => "pending",
                Phase::Done => "done",
                Phase::Failed => "failed",
            };
            *snap.deliveries.entry(phase).or_default() += 1;
            if let Some(run) = delivery.run() {
                let state = run.follow.name().unwrap_or("started");
                *snap.runs.entry(state.to_owned()).or_default() += 1;
            }
        }
        Ok(snap)
    }
}

/// The watcher's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// The registry, locked while the scrape-time gauges are set and everything is encoded.
    registry: Mutex<Registry>,
    polls: Family<ResultLabel, Counter>,
    poll_duration: Histogram,
    new_items: Counter,
    delivery_attempts: Family<OutcomeLabel, Counter>,
    sources: Family<StateLabel, Gauge>,
    deliveries: Family<StateLabel, Gauge>,
    runs: Family<StateLabel, Gauge>,
    store_size: Gauge,
    last_success_age: Gauge<f64, AtomicU64>,
    push_sources: Family<StateLabel, Gauge>,
    /// Push's own series, fed by the callback server and the daemon.
    pub push: crate::websub::telemetry::PushMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("watcher");
        let polls = Family::<ResultLabel, Counter>::default();
        registry.register(
            "polls",
            "Polls that ended, by result (not_modified, baseline, new, throttled, gone, failed)",
            polls.clone(),
        );
        for result in POLL_RESULTS {
            drop(polls.get_or_create(&ResultLabel { result }));
        }
        // 50 ms .. about 7 minutes: a poll's deadline is 5 minutes by default.
        let poll_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register_with_unit(
            "poll_duration",
            "How long polls took (fetching and parsing, not waiting for a slot)",
            Unit::Seconds,
            poll_duration.clone(),
        );
        let new_items = Counter::default();
        registry.register(
            "new_items",
            "New articles found by polls (held ones included, baselines not)",
            new_items.clone(),
        );
        let delivery_attempts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Delivery attempts (run requests to the engine), by outcome (started, failed)",
            delivery_attempts.clone(),
        );
        for outcome in ["started", "failed"] {
            drop(delivery_attempts.get_or_create(&OutcomeLabel { outcome }));
        }
        let sources = Family::<StateLabel, Gauge>::default();
        registry.register(
            "sources",
            "Configured sources that are failing (failing_after failures in a row), hold items, or are gone (410)",
            sources.clone(),
        );
        let deliveries = Family::<StateLabel, Gauge>::default();
        registry.register(
            "deliveries",
            "Deliveries in the store, by state (pending, done, failed)",
            deliveries.clone(),
        );
        let runs = Family::<StateLabel, Gauge>::default();
        registry.register(
            "runs",
            "Runs of the deliveries in the store, by their last known state",
            runs.clone(),
        );
        let store_size = Gauge::default();
        registry.register_with_unit(
            "store_size",
            "Size of the sled store on disk",
            Unit::Bytes,
            store_size.clone(),
        );
        let last_success_age = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "last_successful_poll_age",
            "Time since a poll last succeeded (fetched or not modified); since the start before the first",
            Unit::Seconds,
            last_success_age.clone(),
        );
        let push_sources = Family::<StateLabel, Gauge>::default();
        registry.register(
            "push_sources",
            "Sources by WebSub push state (none, pending, live, denied, missed, failed)",
            push_sources.clone(),
        );
        let push = crate::websub::telemetry::PushMetrics::register(&mut registry);
        registry.register(
            "build",
            "The watcher's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics {
            registry: Mutex::new(registry),
            polls,
            poll_duration,
            new_items,
            delivery_attempts,
            sources,
            deliveries,
            runs,
            store_size,
            last_success_age,
            push_sources,
            push,
        }
    }

    /// Counts one poll that ended with `outcome` after `took`.
    pub fn polled(&self, outcome: &PollOutcome, took: Duration) {
        self.polls
            .get_or_create(&ResultLabel {
                result: poll_result(outcome),
            })
            .inc();
        self.poll_duration.observe(took.as_secs_f64());
        if let PollOutcome::Polled { new, .. } = outcome {
            self.new_items.inc_by(new.len() as u64);
        }
    }

    /// Counts the attempts of one delivery pass.
    pub fn delivered(&self, reports: &[DeliveryReport]) {
        for report in reports {
            let outcome = if report.outcome.is_ok() {
                "started"
            } else {
                "failed"
            };
            self.delivery_attempts
                .get_or_create(&OutcomeLabel { outcome })
                .inc();
        }
    }

    /// The text Prometheus scrapes: the counters, and the gauges set from `snapshot`, the store's
    /// size and the age of the last successful poll.
    pub fn render(
        &self,
        snapshot: &Snapshot,
        store_bytes: u64,
        last_success_age: Duration,
    ) -> String {
        let set = |family: &Family<StateLabel, Gauge>,
                   counts: &mut dyn Iterator<Item = (String, i64)>| {
            for (state, n) in counts {
                family.get_or_create(&StateLabel { state }).set(n);
            }
        };
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        set(
            &self.sources,
            &mut snapshot.sources.iter().map(|(k, v)| (k.to_string(), *v)),
        );
        set(
            &self.deliveries,
            &mut snapshot.deliveries.iter().map(|(k, v)| (k.to_string(), *v)),
        );
        set(&self.runs, &mut snapshot.runs.clone().into_iter());
        set(
            &self.push_sources,
            &mut snapshot.push.iter().map(|(k, v)| (k.to_string(), *v)),
        );
        self.store_size
            .set(i64::try_from(store_bytes).unwrap_or(i64::MAX));
        self.last_success_age.set(last_success_age.as_secs_f64());
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_render_names_every_family_with_the_prefix_and_no_source_labels() {
        let m = Metrics::new();
        m.polled(&PollOutcome::NotModified, Duration::from_millis(30));
        m.polled(
            &PollOutcome::Failed {
                error: "https://example.com/feed: 500".into(),
            },
            Duration::from_secs(2),
        );
        let mut snap = Snapshot::default();
        snap.sources.insert("failing", 1);
        snap.runs.insert("succeeded".into(), 3);
        snap.push.insert("missed", 1);
        m.push.delivery("bad_signature");
        m.push.share(Duration::from_millis(12));
        let text = m.render(&snap, 4096, Duration::from_secs(90));
        for line in [
            "watcher_polls_total{result=\"not_modified\"} 1",
            "watcher_polls_total{result=\"failed\"} 1",
            "watcher_polls_total{result=\"new\"} 0",
            "watcher_poll_duration_seconds_count 2",
            "watcher_sources{state=\"failing\"} 1",
            "watcher_runs{state=\"succeeded\"} 3",
            "watcher_store_size_bytes 4096",
            "watcher_last_successful_poll_age_seconds 90.0",
            "watcher_build_info{version=\"",
            "watcher_push_sources{state=\"missed\"} 1",
            "watcher_push_deliveries_total{outcome=\"bad_signature\"} 1",
            "watcher_push_deliveries_total{outcome=\"accepted\"} 0",
            "watcher_push_to_trigger_seconds_count 1",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("watcher_"), "{line}");
            assert!(!line.contains("example.com"), "{line}");
        }
    }
}
