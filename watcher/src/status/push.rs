//! status/push.rs: a source's WebSub push in the status report: its state (none / pending / live
//! until … / denied / missed / failed), hub, last push and bad deliveries, and the next poll
//! as the daemon schedules it while push is live (stretched to the safety interval, and why).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{StatusReport, shown};
use crate::store::{PushState, Store, StoreError};

/// A source's WebSub subscription (the one that counts when a renewal overlaps).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PushStatus {
    #[serde(flatten)]
    pub state: PushState,
    pub hub: String,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_push: Option<DateTime<Utc>>,
    pub pushes: u64,
    /// Deliveries dropped: unsigned or badly signed.
    pub bad_deliveries: u64,
}

impl PushStatus {
    /// Per source key, its subscription that says most (see `Store::push_by_source`).
    pub(super) fn by_source(store: &Store) -> Result<HashMap<String, PushStatus>, StoreError> {
        let mut out = HashMap::new();
        for (key, sub) in store.push_by_source()? {
            let state = match sub.state {
                PushState::Denied { reason } => PushState::Denied {
                    reason: reason.as_deref().map(shown),
                },
                PushState::Failed { error } => PushState::Failed {
                    error: shown(&error),
                },
                other => other,
            };
            let status = PushStatus {
                state,
                hub: shown(&sub.hub),
                lease_until: sub.lease_until,
                last_push: sub.last_push,
                pushes: sub.pushes,
                bad_deliveries: sub.bad_deliveries,
            };
            out.insert(key, status);
        }
        Ok(out)
    }

    /// The short state the dashboard shows: `live`, `pending`, `MISSED`, ...
    pub fn badge(&self) -> (&'static str, &'static str) {
        match &self.state {
            PushState::Live => ("ok", "push live"),
            PushState::Subscribing => ("off", "push pending"),
            PushState::Unsubscribing => ("off", "push ending"),
            PushState::Denied { .. } => ("warn", "push DENIED"),
            PushState::Failed { .. } => ("warn", "push FAILED"),
            PushState::Missed { .. } => ("warn", "push MISSED"),
        }
    }

    /// The push line of a source in the table: `push` is its subscription; `on` says whether
    /// `[websub]` is on (else a source without one gets no line).
    pub(super) fn line(
        push: Option<&PushStatus>,
        on: bool,
        ago: impl Fn(Option<DateTime<Utc>>) -> String,
    ) -> Option<String> {
        let Some(push) = push else {
            return on.then(|| {
                "push none (the feed names no hub, or `push = false`): polled".to_string()
            });
        };
        let state = match &push.state {
            PushState::Live => format!("live until {}", ago(push.lease_until)),
            PushState::Subscribing => "pending (waiting for the hub to verify)".into(),
            PushState::Unsubscribing => "ending".into(),
            PushState::Denied { reason } => format!(
                "DENIED by the hub{}: polled instead",
                reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            PushState::Failed { error } => format!("FAILED ({error}): polled instead"),
            PushState::Missed { at, items } => format!(
                "MISSED: a safety poll {} found {items} item(s) no push announced: polled at its interval again (pushes still poll it at once), live until {}",
                ago(Some(*at)),
                ago(push.lease_until)
            ),
        };
        let mut line = format!(
            "push {state}, hub {}, last push {}",
            push.hub,
            ago(push.last_push)
        );
        if push.bad_deliveries > 0 {
            line += &format!(", {} bad delivery(ies) dropped", push.bad_deliveries);
        }
        Some(line)
    }
}

impl StatusReport {
    /// `[websub]` is on, with `safety` as its safety interval: a source whose push is live is
    /// next polled at its last poll plus `max(its wait, safety)`, as the daemon schedules it.
    pub fn with_push(mut self, safety: Duration) -> StatusReport {
        self.push_on = true;
        let safety = chrono::Duration::from_std(safety).unwrap_or(chrono::Duration::MAX);
        for s in &mut self.sources {
            let live = s.push.as_ref().is_some_and(|p| p.state == PushState::Live);
            let (true, Some(last)) = (live, s.last_poll) else {
                continue;
            };
            let Some(stretched) = last.checked_add_signed(safety) else {
                continue;
            };
            if s.next_due.is_none_or(|due| due < stretched) {
                s.next_due = Some(stretched);
                s.next_due_reason = Some(format!(
                    "push live: safety poll {} after the last ([websub] safety_interval)",
                    humantime::format_duration(safety.to_std().unwrap_or_default())
                ));
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: Option<PushState>, last: DateTime<Utc>) -> StatusReport {
        let source = super::super::SourceStatus {
            author: "A".into(),
            url: "https://b/feed".into(),
            last_poll: Some(last),
            last_result: None,
            items_known: 0,
            consecutive_failures: 0,
            failing: false,
            next_due: Some(last + chrono::Duration::minutes(30)),
            next_due_reason: Some("interval".into()),
            current_url: None,
            discovered_feed: None,
            held: 0,
            push: state.map(|state| PushStatus {
                state,
                hub: "https://hub/".into(),
                lease_until: Some(last + chrono::Duration::days(10)),
                last_push: None,
                pushes: 0,
                bad_deliveries: 0,
            }),
            links_refused: 0,
            gone: false,
        };
        StatusReport {
            sources: vec![source],
            staged: 0,
            pending: 0,
            failed: 0,
            done: 0,
            deliveries: vec![],
            unreadable: vec![],
            push_on: false,
        }
    }

    #[test]
    fn a_live_source_shows_the_stretched_safety_poll_and_why() {
        let last = Utc::now();
        let six = Duration::from_secs(6 * 3600);
        let r = report(Some(PushState::Live), last).with_push(six);
        let s = &r.sources[0];
        assert_eq!(s.next_due, Some(last + chrono::Duration::hours(6)));
        let why = s.next_due_reason.as_deref().unwrap();
        assert!(why.contains("push live: safety poll 6h"), "{why}");
        // Missed or failed: the poll's own schedule stands.
        let missed = PushState::Missed { at: last, items: 2 };
        let r = report(Some(missed), last).with_push(six);
        assert_eq!(r.sources[0].next_due_reason.as_deref(), Some("interval"));
        let text = r.render(last);
        assert!(
            text.contains("push MISSED: a safety poll now found 2 item(s)"),
            "{text}"
        );
        // No subscription: "none" once push is on, nothing when it is off.
        let none = report(None, last);
        assert!(!none.render(last).contains("push none"));
        let text = none.with_push(six).render(last);
        assert!(text.contains("push none (the feed names no hub"), "{text}");
    }
}
