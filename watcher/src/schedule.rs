//! schedule.rs: when a source is due again, and why. The one place that owns "next poll".

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::poll::PollOutcome;
use crate::store::SourceState;

/// The next poll time for a source that was just polled at `now`, with the reason shown in
/// `status`. Successes wait `interval`; failures back off exponentially (`interval/4 × 2^(n-1)`,
/// at least 1 minute, capped at `interval × 8`) so a broken source is never dropped, only
/// polled less often. Both get ±10% jitter so sources do not poll in waves.
pub fn next_due(
    now: DateTime<Utc>,
    interval: Duration,
    outcome: &PollOutcome,
    consecutive_failures: u32,
) -> (DateTime<Utc>, String) {
    let (wait, reason) = match outcome {
        PollOutcome::Failed { .. } => {
            let base = (interval / 4).max(Duration::from_secs(60)).min(interval);
            let factor = 1u32
                .checked_shl(consecutive_failures.saturating_sub(1))
                .unwrap_or(u32::MAX);
            let wait = base.saturating_mul(factor).min(interval.saturating_mul(8));
            (
                wait,
                format!("backoff after {consecutive_failures} failure(s)"),
            )
        }
        _ => (interval, "interval".to_string()),
    };
    let jittered = wait.mul_f64(rand::rng().random_range(0.9..=1.1));
    (
        now + chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::MAX),
        reason,
    )
}

/// Whether a source is due at `now`. A source never polled is due. A lowered `interval` takes
/// effect at once for sources waiting on their interval (not for backoff).
pub fn is_due(state: Option<&SourceState>, interval: Duration, now: DateTime<Utc>) -> bool {
    let Some(state) = state else { return true };
    let Some(due) = state.next_due else {
        return true;
    };
    if due <= now {
        return true;
    }
    state.next_due_reason.as_deref() == Some("interval")
        && state.last_poll.is_some_and(|last| {
            last + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX) <= now
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_waits_the_interval_with_jitter() {
        let now = Utc::now();
        let (due, reason) = next_due(now, Duration::from_secs(1000), &PollOutcome::NotModified, 0);
        let secs = (due - now).num_seconds();
        assert!((900..=1100).contains(&secs), "{secs}");
        assert_eq!(reason, "interval");
    }

    #[test]
    fn failures_back_off_and_cap() {
        let now = Utc::now();
        let failed = PollOutcome::Failed {
            error: "HTTP 500".into(),
        };
        let interval = Duration::from_secs(1800);
        let mut last = 0;
        for n in 1..=3 {
            let (due, reason) = next_due(now, interval, &failed, n);
            let secs = (due - now).num_seconds();
            let nominal = 450 * (1 << (n - 1));
            assert!(
                secs as f64 >= nominal as f64 * 0.9 - 1.0
                    && secs as f64 <= nominal as f64 * 1.1 + 1.0,
                "{n}: {secs}"
            );
            assert!(secs > last);
            last = secs;
            assert!(reason.contains("backoff"));
        }
        let (due, _) = next_due(now, interval, &failed, 40);
        assert!((due - now).num_seconds() <= 1800 * 8 * 11 / 10);
    }
}
