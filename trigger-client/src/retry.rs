//! Retries: the policy (capped exponential backoff with jitter, `Retry-After` honoured) and the
//! one loop that applies it. The policy's arithmetic is pure and public, so the watcher's outbox
//! schedules its redeliveries with the same rules. Whether an error is worth retrying is `Error::is_transient`, a pure
//! classification; this module only decides *when* to try again and logs every decision.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::Error;

/// How often and how patiently to retry a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// The delay before the first retry; doubles with each retry.
    pub base_delay: Duration,
    /// No delay exceeds this, not even one asked for by `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 500ms base, 30s cap.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// `attempts` tries with no delay at all (for tests).
    pub fn immediate(attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: attempts.max(1),
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// Pure: may another try follow once `attempts` tries (the first one included) have failed?
    pub fn allows_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }

    /// Pure: the exponential backoff before retry number `retry` (1-based; 0 counts as 1),
    /// `base_delay × 2^(retry-1)` capped by `max_delay`, without jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Pure: the delay before retry number `retry` (1-based), given a jitter sample.
    ///
    /// Jitter rules:
    /// - a server's `retry_after` wins, is taken as-is (no jitter) and is capped by `max_delay`;
    /// - otherwise "equal jitter": half of [`backoff`](Self::backoff) is fixed and the other half
    ///   is scaled by `jitter`, so the delay lies in `[backoff/2, backoff]` and never exceeds
    ///   `max_delay`. `jitter` is a sample in `0.0..=1.0` (clamped; NaN counts as 0.0): `0.0`
    ///   gives the shortest delay, `1.0` the full backoff.
    pub fn delay_at(&self, retry: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.max_delay);
        }
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let backoff = self.backoff(retry);
        let half = backoff / 2;
        (half + (backoff - half).mul_f64(jitter)).min(self.max_delay)
    }

    /// [`delay_at`](Self::delay_at) with a fresh uniform jitter sample from the thread's RNG.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_at(retry, retry_after, rand::rng().random_range(0.0..=1.0))
    }
}

/// Pure: would retrying after this error help? See [`Error::is_transient`].
pub fn is_transient(err: &Error) -> bool {
    err.is_transient()
}

/// Runs `op` until it succeeds, fails permanently, or the policy gives up. `op` receives the
/// attempt number (1-based). Each retry is logged; the final transient error is wrapped in
/// [`Error::Exhausted`] naming the attempts and the time spent.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    kind: &'static str,
    what: &str,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        let err = match op(attempt).await {
            Ok(value) => return Ok(value),
            Err(err) if !is_transient(&err) => return Err(err),
            Err(err) => err,
        };
        if !policy.allows_retry(attempt) {
            tracing::info!(attempt, request = what, error = %err, "giving up");
            return Err(Error::Exhausted {
                kind,
                attempts: attempt,
                elapsed: started.elapsed(),
                last: Box::new(err),
            });
        }
        let delay = policy.delay(attempt, err.retry_after());
        tracing::warn!(
            attempt,
            request = what,
            status = err.status(),
            error = %err,
            delay_ms = delay.as_millis() as u64,
            "transient failure, retrying"
        );
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(3),
        };
        assert_eq!(policy.backoff(1), Duration::from_millis(500));
        assert_eq!(policy.backoff(2), Duration::from_secs(1));
        assert_eq!(policy.backoff(3), Duration::from_secs(2));
        assert_eq!(policy.backoff(4), Duration::from_secs(3));
        assert_eq!(policy.backoff(40), Duration::from_secs(3));
    }

    #[test]
    fn jitter_stays_within_half_and_full_backoff() {
        let policy = RetryPolicy::default();
        for retry in 1..6 {
            let full = policy.backoff(retry);
            let delay = policy.delay(retry, None);
            assert!(delay >= full / 2 && delay <= full, "{delay:?} vs {full:?}");
        }
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(700))),
            Duration::from_secs(30)
        );
        assert_eq!(
            RetryPolicy::immediate(3).delay(1, Some(Duration::from_secs(7))),
            Duration::ZERO
        );
    }

    #[test]
    fn delay_at_spans_half_to_full_backoff() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(100),
        };
        assert_eq!(policy.delay_at(1, None, 0.0), Duration::from_secs(5));
        assert_eq!(policy.delay_at(1, None, 1.0), Duration::from_secs(10));
        assert_eq!(policy.delay_at(3, None, 0.5), Duration::from_secs(30));
        assert_eq!(policy.delay_at(9, None, 1.0), Duration::from_secs(100));
        assert_eq!(policy.delay_at(1, None, 7.0), Duration::from_secs(10));
        assert_eq!(policy.delay_at(1, None, f64::NAN), Duration::from_secs(5));
        assert_eq!(
            policy.delay_at(1, Some(Duration::from_secs(3)), 1.0),
            Duration::from_secs(3)
        );
        assert_eq!(policy.delay_at(0, None, 1.0), policy.delay_at(1, None, 1.0));
    }

    #[test]
    fn allows_retry_until_max_attempts() {
        let policy = RetryPolicy::immediate(3);
        assert!(policy.allows_retry(1));
        assert!(policy.allows_retry(2));
        assert!(!policy.allows_retry(3));
        assert!(!RetryPolicy::immediate(0).allows_retry(1));
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_naming_them() {
        let mut calls = 0;
        let result: Result<(), Error> =
            with_retries(&RetryPolicy::immediate(3), "webhook", "test", |_| {
                calls += 1;
                async {
                    Err(Error::Status {
                        kind: "webhook",
                        method: "POST".into(),
                        url: "http://x/".into(),
                        status: 503,
                        message: "busy".into(),
                        retry_after: None,
                    })
                }
            })
            .await;
        assert_eq!(calls, 3);
        let err = result.unwrap_err();
        assert!(err.to_string().contains("after 3 attempts in"), "{err}");
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let mut calls = 0;
        let result: Result<(), Error> =
            with_retries(&RetryPolicy::immediate(3), "webhook", "test", |_| {
                calls += 1;
                async {
                    Err(Error::Request {
                        problem: "bad".into(),
                    })
                }
            })
            .await;
        assert_eq!(calls, 1);
        assert!(matches!(result, Err(Error::Request { .. })));
    }
}
