//! attempt.rs: a poll's attempt, recorded (durably) before any of its work starts: the state as
//! it will read if the poll never finishes, one more failure with its backoff. The poll's own
//! commit replaces it; a watcher that dies mid-poll (killed, out of memory) finds the source
//! backing off after a restart, instead of polling it again at once and dying again.

use chrono::{DateTime, Utc};

use crate::schedule::{self, Policy};
use crate::store::SourceState;

/// What `last_error` says of a poll that never finished (the store keeps it as a flag).
pub use crate::store::INTERRUPTED;

/// `state` as it reads if the poll started at `now` never finishes.
pub fn interrupted(state: &SourceState, policy: &Policy, now: DateTime<Utc>) -> SourceState {
    let failures = state.consecutive_failures.saturating_add(1);
    let next = schedule::next_wait(
        policy,
        &schedule::Outcome::Failed { failures },
        now,
        &mut rand::rng(),
    );
    let wait = chrono::Duration::from_std(next.wait).unwrap_or(chrono::Duration::MAX);
    SourceState {
        last_poll: Some(now),
        consecutive_failures: failures,
        last_error: Some(INTERRUPTED.into()),
        last_result: Some(format!("error: {INTERRUPTED}")),
        next_due: Some(now.checked_add_signed(wait).unwrap_or(now)),
        next_due_reason: Some(next.reason),
        ..state.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_unfinished_poll_reads_as_one_more_failure_with_its_backoff() {
        let policy = Policy {
            interval: Duration::from_secs(60),
            min_interval: Duration::ZERO,
            max_interval: Duration::from_secs(3600),
            jitter: 0.0,
            cron: None,
            adaptive: false,
        };
        let now = Utc::now();
        let before = SourceState {
            consecutive_failures: 1,
            etag: Some("\"v1\"".into()),
            ..SourceState::default()
        };
        let after = interrupted(&before, &policy, now);
        assert_eq!(after.consecutive_failures, 2);
        assert_eq!(after.next_due, Some(now + chrono::Duration::seconds(240)));
        assert_eq!(after.last_poll, Some(now));
        assert_eq!(after.etag, before.etag);
        assert!(after.last_result.unwrap().starts_with("error: interrupted"));
    }
}
