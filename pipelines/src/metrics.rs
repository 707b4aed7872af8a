//! The runner's Prometheus metrics (`prometheus-client`), served as `GET /metrics` by the API
//! (behind the bearer token, like `/api`) and appended to the watcher's `/metrics` when the
//! runner is embedded: runs that ended by chain and status, runs queued and running by chain,
//! the queue's length and a histogram of stage durations. Labels name chains and statuses only
//! (chains are few; no run id, stage argument or path ever becomes a label).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use runner_api::{RunStatus, StageStatus};

/// The `Content-Type` of `/metrics`.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    chain: String,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    chain: String,
    status: &'static str,
}

/// 100 ms .. about 4.5 hours: demo stages take a second, training takes hours.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 3.0, 12))
}

/// Runs and stages in flight per chain, read from the queues at scrape time.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Per chain: (queued, running).
    pub chains: BTreeMap<String, (usize, usize)>,
}

/// The runner's metrics.
#[derive(Debug)]
pub struct RunnerMetrics {
    registry: Mutex<Registry>,
    runs: Family<RunLabels, Counter>,
    active: Family<RunLabels, Gauge>,
    queue: Gauge,
    stage_duration: Family<StageLabels, Histogram, fn() -> Histogram>,
}

impl RunnerMetrics {
    /// The metrics of a runner with `chains`, each chain's series present from the start.
    pub fn new<'a>(chains: impl IntoIterator<Item = &'a str>) -> RunnerMetrics {
        let mut registry = Registry::with_prefix("pipelines");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "runs",
            "Runs that ended since the runner started, by chain and status (succeeded, failed, cancelled)",
            runs.clone(),
        );
        let active = Family::<RunLabels, Gauge>::default();
        registry.register(
            "runs_active",
            "Runs not ended yet, by chain and status (queued, running)",
            active.clone(),
        );
        let queue = Gauge::default();
        registry.register(
            "queue_length",
            "Runs waiting for their chain's concurrency slot, over all chains",
            queue.clone(),
        );
        let stage_duration =
            Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                stage_histogram,
            );
        registry.register_with_unit(
            "stage_duration",
            "How long stages took (all attempts), by chain and the stage's end (succeeded, failed, cancelled)",
            Unit::Seconds,
            stage_duration.clone(),
        );
        for chain in chains {
            for status in [
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::Cancelled,
            ] {
                drop(runs.get_or_create(&RunLabels {
                    chain: chain.to_owned(),
                    status: status.as_str(),
                }));
            }
            for status in [RunStatus::Queued, RunStatus::Running] {
                drop(active.get_or_create(&RunLabels {
                    chain: chain.to_owned(),
                    status: status.as_str(),
                }));
            }
        }
        RunnerMetrics {
            registry: Mutex::new(registry),
            runs,
            active,
            queue,
            stage_duration,
        }
    }

    /// A run of `chain` ended with `status`.
    pub fn run_ended(&self, chain: &str, status: RunStatus) {
        self.runs
            .get_or_create(&RunLabels {
                chain: chain.to_owned(),
                status: status.as_str(),
            })
            .inc();
    }

    /// A stage of `chain` ended with `status` after `took`.
    pub fn stage_ended(&self, chain: &str, status: StageStatus, took: Duration) {
        self.stage_duration
            .get_or_create(&StageLabels {
                chain: chain.to_owned(),
                status: status.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text Prometheus scrapes, with the gauges set from `queues`.
    pub fn render(&self, queues: &QueueSnapshot) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut waiting = 0;
        for (chain, (queued, running)) in &queues.chains {
            waiting += queued;
            for (status, n) in [(RunStatus::Queued, queued), (RunStatus::Running, running)] {
                self.active
                    .get_or_create(&RunLabels {
                        chain: chain.clone(),
                        status: status.as_str(),
                    })
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
        }
        self.queue.set(i64::try_from(waiting).unwrap_or(i64::MAX));
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
    fn a_render_has_every_chain_and_the_counts() {
        let m = RunnerMetrics::new(["demo", "llm-twin"]);
        m.run_ended("demo", RunStatus::Succeeded);
        m.stage_ended("demo", StageStatus::Succeeded, Duration::from_millis(1500));
        let mut queues = QueueSnapshot::default();
        queues.chains.insert("llm-twin".into(), (2, 1));
        let text = m.render(&queues);
        for line in [
            "pipelines_runs_total{chain=\"demo\",status=\"succeeded\"} 1",
            "pipelines_runs_total{chain=\"llm-twin\",status=\"failed\"} 0",
            "pipelines_runs_active{chain=\"llm-twin\",status=\"queued\"} 2",
            "pipelines_runs_active{chain=\"llm-twin\",status=\"running\"} 1",
            "pipelines_queue_length 2",
            "pipelines_stage_duration_seconds_count{chain=\"demo\",status=\"succeeded\"} 1",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
    }
}
