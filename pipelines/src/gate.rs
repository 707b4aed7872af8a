//! What a gate decides (pure): the durable counters of one gated stage ([`GateRecord`]: the
//! distinct links waiting, the links a running attempt took, the clock start, the last success
//! and failure), whether a run may pass, when the runner should catch up by itself, and the
//! words a deferred stage gets. The chain file syntax is in `chain::gate`, the store in `state`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::chain::{Gate, MAX_MIN_NEW_LINKS};

/// The durable counters of one gated stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    /// Digests of the distinct links that arrived since the stage last succeeded.
    #[serde(default)]
    pub waiting: BTreeSet<String>,
    /// Links taken by attempts that are running, by run id (back to `waiting` on a failure).
    #[serde(default)]
    pub in_flight: BTreeMap<String, BTreeSet<String>>,
    /// Where the `or_after` clock starts: the last success, else the first run that reached it.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_success: Option<DateTime<Utc>>,
    /// The last failure since the last success.
    #[serde(default)]
    pub last_failure: Option<DateTime<Utc>>,
}

/// Why a stage does not run now; its text is the stage's `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferral {
    /// The gate is closed: not enough links and `or_after` not passed.
    Closed {
        waiting: u64,
        min_new_links: Option<u64>,
        opens_at: Option<DateTime<Utc>>,
    },
    /// The stage failed recently and `gate_retry` has not passed.
    Failed {
        at: DateTime<Utc>,
        until: DateTime<Utc>,
        waiting: u64,
    },
    /// The chain's budget cannot pay for an attempt.
    Budget {
        cost: String,
        left: String,
        limit: String,
        per: String,
        release: Option<DateTime<Utc>>,
    },
    /// A stage this one waits for is deferred.
    Upstream { stage: String },
}

/// Dates in reasons: minutes are precise enough for gates measured in days.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

impl fmt::Display for Deferral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed {
                waiting,
                min_new_links,
                opens_at,
            } => match (min_new_links, opens_at) {
                (Some(min), Some(at)) => {
                    write!(f, "{waiting} of {min} new links; or on {}", when(*at))
                }
                (Some(min), None) => write!(f, "{waiting} of {min} new links"),
                (None, Some(at)) if *waiting == 0 => {
                    write!(f, "no new links; opens with the first after {}", when(*at))
                }
                (None, Some(at)) => write!(f, "{waiting} new links; opens on {}", when(*at)),
                (None, None) => write!(f, "{waiting} new links"),
            },
            Self::Failed { at, until, waiting } => write!(
                f,
                "failed on {}; not tried again before {} (`gate_retry`); {waiting} new links waiting",
                when(*at),
                when(*until)
            ),
            Self::Budget {
                cost,
                left,
                limit,
                per,
                release,
            } => {
                write!(
                    f,
                    "budget: an attempt costs {cost} but {left} of {limit} per {per} is left"
                )?;
                if let Some(at) = release {
                    write!(f, "; the oldest charge leaves the window on {}", when(*at))?;
                }
                Ok(())
            }
            Self::Upstream { stage } => write!(f, "waits for deferred stage `{stage}`"),
        }
    }
}

fn delta(duration: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

impl GateRecord {
    /// Counts a run's links (digests) in: the run reached the stage at `now`.
    pub fn arrive(&mut self, links: impl IntoIterator<Item = String>, now: DateTime<Utc>) {
        self.since.get_or_insert(now);
        for link in links {
            if self.waiting.len() as u64 >= MAX_MIN_NEW_LINKS {
                break;
            }
            if !self.in_flight.values().any(|taken| taken.contains(&link)) {
                self.waiting.insert(link);
            }
        }
    }

    /// When `or_after` opens the gate (with a link waiting).
    pub fn opens_at(&self, gate: &Gate) -> Option<DateTime<Utc>> {
        Some(self.since? + delta(gate.or_after?))
    }

    /// Until when the last failure keeps the stage closed.
    pub fn retry_after(&self, gate: &Gate) -> Option<DateTime<Utc>> {
        Some(self.last_failure? + delta(gate.retry))
    }

    /// Whether a run may pass at `now`, or why not.
    pub fn decide(&self, gate: &Gate, now: DateTime<Utc>) -> Result<(), Deferral> {
        let waiting = self.waiting.len() as u64;
        if let (Some(at), Some(until)) = (self.last_failure, self.retry_after(gate))
            && now < until
        {
            return Err(Deferral::Failed { at, until, waiting });
        }
        let by_count = gate.min_new_links.is_some_and(|min| waiting >= min);
        let opens_at = self.opens_at(gate);
        let by_time = waiting >= 1 && opens_at.is_some_and(|at| now >= at);
        if by_count || by_time {
            Ok(())
        } else {
            Err(Deferral::Closed {
                waiting,
                min_new_links: gate.min_new_links,
                opens_at,
            })
        }
    }

    /// When the runner should start a catch-up run by itself: `or_after` passed (and any
    /// failure's `gate_retry` too) with links waiting and no attempt running. `None` otherwise.
    pub fn due(&self, gate: &Gate) -> Option<DateTime<Utc>> {
        if self.waiting.is_empty() || !self.in_flight.is_empty() {
            return None;
        }
        let opens = self.opens_at(gate)?;
        Some(match self.retry_after(gate) {
            Some(retry) => opens.max(retry),
            None => opens,
        })
    }

    /// An attempt of `run_id` starts: the waiting links are its now.
    pub fn take(&mut self, run_id: &str) {
        let taken = std::mem::take(&mut self.waiting);
        self.in_flight
            .entry(run_id.to_owned())
            .or_default()
            .extend(taken);
    }

    /// The stage succeeded in `run_id`: its links are used up and the clock restarts.
    pub fn succeeded(&mut self, run_id: &str, now: DateTime<Utc>) {
        self.in_flight.remove(run_id);
        self.last_success = Some(now);
        self.since = Some(now);
        self.last_failure = None;
    }

    /// The stage failed (or was stopped) in `run_id`: its links wait again.
    pub fn failed(&mut self, run_id: &str, now: DateTime<Utc>) {
        if let Some(taken) = self.in_flight.remove(run_id) {
            self.waiting.extend(taken);
        }
        self.last_failure = Some(now);
    }

    /// The words for the gate as it stands (for `pipelines gates`).
    pub fn summary(&self, gate: &Gate, now: DateTime<Utc>) -> String {
        if !self.in_flight.is_empty() {
            return format!(
                "running ({} links taken); {} new links waiting",
                self.in_flight.values().map(BTreeSet::len).sum::<usize>(),
                self.waiting.len()
            );
        }
        if self.since.is_none() {
            return "no run has reached it yet".to_owned();
        }
        match self.decide(gate, now) {
            Ok(()) => format!("open: {} new links waiting", self.waiting.len()),
            Err(deferral) => deferral.to_string(),
        }
    }
}

/// Digests of the distinct links a run's config carries: `parameters.links`, or every
/// `parameters.author_links[].links`. Digests keep records small whatever a link's length.
pub fn links_of(config: &Value) -> BTreeSet<String> {
    let parameters = &config["parameters"];
    let mut links: Vec<&Value> = Vec::new();
    if let Some(list) = parameters["links"].as_array() {
        links.extend(list);
    }
    if let Some(authors) = parameters["author_links"].as_array() {
        for author in authors {
            if let Some(list) = author["links"].as_array() {
                links.extend(list);
            }
        }
    }
    links
        .into_iter()
        .filter_map(Value::as_str)
        .filter(|link| !link.trim().is_empty())
        .map(|link| hex::encode(&Sha256::digest(link.trim().as_bytes())[..16]))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn gate(min: Option<u64>, or_after_days: Option<u64>) -> Gate {
        Gate {
            min_new_links: min,
            or_after: or_after_days.map(|d| Duration::from_secs(d * 86400)),
            retry: Duration::from_secs(86400),
        }
    }

    fn at(day: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + TimeDelta::days(day)
    }

    fn links(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn counts_distinct_links_and_opens_by_count_or_by_time() {
        let gate = gate(Some(3), Some(30));
        let mut record = GateRecord::default();
        record.arrive(links(&["a", "b"]), at(0));
        record.arrive(links(&["b"]), at(1));
        let closed = record.decide(&gate, at(1)).unwrap_err();
        assert_eq!(
            closed.to_string(),
            "2 of 3 new links; or on 2026-12-31 00:00 UTC"
        );
        assert_eq!(record.decide(&gate, at(30)), Ok(()), "or_after passed");
        record.arrive(links(&["c"]), at(2));
        assert_eq!(record.decide(&gate, at(2)), Ok(()), "3 distinct links");
        assert_eq!(record.due(&gate), Some(at(30)));

        record.take("r1");
        assert!(record.waiting.is_empty());
        record.arrive(links(&["c", "d"]), at(3));
        assert_eq!(record.waiting.len(), 1, "a taken link is not counted twice");
        record.succeeded("r1", at(4));
        assert_eq!(record.since, Some(at(4)));
        assert_eq!(record.opens_at(&gate), Some(at(34)));
        assert_eq!(record.waiting.len(), 1);
    }

    #[test]
    fn a_failure_keeps_the_links_and_closes_the_stage_for_gate_retry() {
        let gate = gate(Some(1), Some(10));
        let mut record = GateRecord::default();
        record.arrive(links(&["a"]), at(0));
        record.take("r1");
        record.failed("r1", at(1));
        assert_eq!(record.waiting.len(), 1);
        let deferral = record
            .decide(&gate, at(1) + TimeDelta::hours(23))
            .unwrap_err();
        assert!(
            deferral.to_string().starts_with(
                "failed on 2026-12-02 00:00 UTC; not tried again before 2026-12-03 00:00 UTC"
            ),
            "{deferral}"
        );
        assert_eq!(record.decide(&gate, at(2)), Ok(()));
        assert_eq!(record.due(&gate), Some(at(10)));
        let mut late = record.clone();
        late.last_failure = Some(at(10));
        assert_eq!(
            late.due(&gate),
            Some(at(11)),
            "a failure delays the catch-up"
        );
    }

    #[test]
    fn reasons_read_well() {
        let only_time = Deferral::Closed {
            waiting: 0,
            min_new_links: None,
            opens_at: Some(at(3)),
        };
        assert_eq!(
            only_time.to_string(),
            "no new links; opens with the first after 2026-12-04 00:00 UTC"
        );
        let waiting = Deferral::Closed {
            waiting: 2,
            min_new_links: None,
            opens_at: Some(at(3)),
        };
        assert_eq!(
            waiting.to_string(),
            "2 new links; opens on 2026-12-04 00:00 UTC"
        );
        let budget = Deferral::Budget {
            cost: "12.5".into(),
            left: "3".into(),
            limit: "100".into(),
            per: "30days".into(),
            release: Some(at(5)),
        };
        assert_eq!(
            budget.to_string(),
            "budget: an attempt costs 12.5 but 3 of 100 per 30days is left; the oldest charge leaves the window on 2026-12-06 00:00 UTC"
        );
    }

    #[test]
    fn links_come_from_links_or_author_links() {
        let plain = serde_json::json!({"parameters": {"links": ["https://a/1", "https://a/1", " https://a/2 "]}});
        assert_eq!(links_of(&plain).len(), 2);
        let authors = serde_json::json!({"parameters": {"author_links": [
            {"user_full_name": "A", "links": ["https://a/1"]},
            {"user_full_name": "B", "links": ["https://b/1", 7]}
        ]}});
        let found = links_of(&authors);
        assert_eq!(found.len(), 2);
        assert!(found.is_subset(&links_of(
            &serde_json::json!({"parameters": {"links": ["https://a/1", "https://b/1"]}})
        )));
        assert!(links_of(&serde_json::json!({})).is_empty());
    }
}
