//! watch/observe.rs: what the daemon shows its operators beyond `/status`: the Prometheus
//! text of `/metrics` ([`crate::metrics`], plus the embedded runner's), and the age checks of
//! `/healthz` ([`crate::vitals`]). Store reads run on the blocking pool.

use std::time::Duration;

use chrono::Utc;

use super::Watcher;
use crate::delivery::Phase;
use crate::metrics::Snapshot;
use crate::store::{Store, StoreError};
use crate::vitals::{AgeLimits, age_problem};

impl Watcher {
    /// The text of `/metrics`.
    pub async fn metrics_text(&self) -> Result<String, StoreError> {
        let store = Store::clone(&self.store);
        let failing_after = self.config.watcher.failing_after;
        let db = self.config.watcher.state_dir.join("db");
        let (snapshot, bytes) = sled_gate::blocking(move || {
            // An unreadable db dir reads as 0 bytes: the scan above would have failed too.
            let bytes = crate::store::dir_size(&db).map_or(0, |(size, _)| size);
            Snapshot::read(&store, failing_after).map(|snap| (snap, bytes))
        })
        .await?;
        let age = self.vitals.last_success_age(Utc::now());
        let mut text = self.metrics.render(&snapshot, bytes, age);
        if let Some(embedded) = &self.embedded {
            text.push_str(&embedded.engine().metrics());
        }
        Ok(text)
    }

    /// Why `/healthz` should fail on ages: no successful poll for `health_poll_age` (when there
    /// are sources), or a pending delivery older than `health_delivery_age`.
    pub async fn age_problem(&self) -> Result<Option<String>, StoreError> {
        let store = Store::clone(&self.store);
        let now = Utc::now();
        let oldest = sled_gate::blocking(move || {
            Ok::<_, StoreError>(
                store
                    .unsettled_deliveries()?
                    .into_iter()
                    .filter(|(_, d)| d.phase() == Phase::Pending)
                    .map(|(_, d)| d.created_at)
                    .min(),
            )
        })
        .await?;
        let oldest_age = oldest.map(|at| (now - at).to_std().unwrap_or(Duration::ZERO));
        // Every author has a source (`check` says so).
        let poll_age = (!self.config.authors.is_empty()).then(|| self.vitals.last_success_age(now));
        let limits = AgeLimits {
            poll: self.config.watcher.health_poll_age,
            delivery: self.config.watcher.health_delivery_age,
        };
        Ok(age_problem(limits, poll_age, oldest_age))
    }

    /// The newest successful poll the store remembers, so a restarted daemon keeps counting
    /// from it.
    pub(super) fn remember_last_success(&self) -> Result<(), StoreError> {
        let newest = self
            .store
            .sources()?
            .into_iter()
            .filter_map(|(_, s)| s.last_success)
            .max();
        self.vitals.remember_success(newest);
        Ok(())
    }
}
