//! Retries: the policy (capped exponential backoff with jitter, `Retry-After` honoured) and the
//! one loop that applies it. Whether an error is worth retrying is `Error::is_transient`, a pure
//! classification; this module only decides *when* to try again and logs every decision.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

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

    /// The exponential backoff before retry number `retry` (1-based), capped by `max_delay`,
    /// without jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The delay before retry number `retry`: the server's `Retry-After` if it sent one, else
    /// the backoff with "equal jitter" (half fixed, half random); capped by `max_delay` either way.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.max_delay);
        }
        let backoff = self.backoff(retry);
        let half = backoff / 2;
        let jitter_nanos =
            rand::rng().random_range(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        half + Duration::from_nanos(jitter_nanos)
    }
}

/// Pure: would retrying after this error help? See [`Error::is_transient`].
pub fn is_transient(err: &Error) -> bool {
    err.is_transient()
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (relative to `now`).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let then = SystemTime::from(date);
    Some(then.duration_since(now).unwrap_or(Duration::ZERO))
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
        if attempt >= policy.max_attempts {
            tracing::info!(kind, attempt, what, reason = %err, "giving up");
            return Err(Error::Exhausted {
                kind,
                attempts: attempt,
                elapsed: started.elapsed(),
                last: Box::new(err),
            });
        }
        let delay = policy.delay(attempt, err.retry_after());
        tracing::warn!(
            kind,
            attempt,
            what,
            status = err.status(),
            reason = %err,
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
    fn retry_after_parses_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_767); // Sun, 06 Nov 1994 08:49:27 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
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
