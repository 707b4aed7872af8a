//! schedule.rs: when a source is due again, and why. The one place that owns "next poll":
//! interval (configured, adaptive or cron), what the server asks for (feed `<ttl>`,
//! `Cache-Control: max-age`, `Expires`, `Retry-After`), error backoff, bounds and jitter.
//! A source that answered 410 Gone is asked again daily for 30 days (a site being rebuilt comes
//! back), then stopped for good. Pure: the caller passes the time and the random source.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pipelines::schedule::Schedule;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{SourceConfig, WatcherSettings};

/// The scheduling settings that apply to one source.
#[derive(Debug, Clone)]
pub struct Policy {
    pub interval: Duration,
    pub min_interval: Duration,
    pub max_interval: Duration,
    pub jitter: f64,
    pub cron: Option<Schedule>,
    pub adaptive: bool,
}

impl Policy {
    /// The policy of `source` under the `[watcher]` bounds.
    pub fn for_source(source: &SourceConfig, w: &WatcherSettings) -> Policy {
        Policy {
            interval: source.interval,
            min_interval: w.min_interval,
            max_interval: w.max_interval,
            jitter: w.jitter,
            cron: source.cron.clone(),
            adaptive: w.adaptive,
        }
    }
}

/// A source that answered 410 Gone is asked again this often...
pub const GONE_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// ...until this long after its first 410; then it is stopped for good.
pub const GONE_GIVE_UP: Duration = Duration::from_secs(30 * 24 * 3600);

/// What the store remembers of a source's schedule.
#[derive(Debug, Clone, Default)]
pub struct Due {
    /// Answered 410 Gone: asked again daily until [`GONE_GIVE_UP`] after `gone_since`.
    pub gone: bool,
    /// The first 410 of the current run of them (a state stored before this was kept counts
    /// from its last poll).
    pub gone_since: Option<DateTime<Utc>>,
    pub last_poll: Option<DateTime<Utc>>,
    pub next_due: Option<DateTime<Utc>>,
    /// The next poll time was set by the interval (not Retry-After, TTL or backoff).
    pub by_interval: bool,
}

/// What the last poll of a source came to, as far as scheduling cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Fetched (200 or 304). `ttl` is the largest cache lifetime the feed or the response
    /// declared; `adaptive` is the interval suggested by the author's publishing frequency.
    Ok {
        ttl: Option<(Duration, &'static str)>,
        adaptive: Option<Duration>,
    },
    /// 429 or 503 with Retry-After: throttled, not failed.
    Throttled { retry_after: Duration },
    /// Any failure; `failures` counts this one.
    Failed { failures: u32 },
    /// 410 Gone: asked again after [`GONE_RECHECK`] (the bounds do not apply).
    Gone,
}

/// Why a source waits as long as it does (shown by `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Next {
    pub wait: Duration,
    pub reason: String,
}

/// How long to wait after a poll that ended in `result` at `now`.
pub fn next_wait(
    policy: &Policy,
    result: &Outcome,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Next {
    let base = |policy: &Policy| -> (Duration, String) {
        if let Some(cron) = &policy.cron
            && let Some(next) = cron.next_after(now)
        {
            let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
            return (wait.max(policy.min_interval), "cron".into());
        }
        (policy.interval, "interval".into())
    };
    if *result == Outcome::Gone {
        return Next {
            wait: GONE_RECHECK,
            reason: "gone (410): asked again daily for 30 days".into(),
        };
    }
    // What jitter may never go below: the server's own numbers and min_interval.
    let mut floor = policy.min_interval;
    let (wait, reason, jitter) = match result {
        Outcome::Ok { ttl, adaptive } => {
            let (mut wait, mut reason) = base(policy);
            let mut jitter = policy.cron.is_none();
            if policy.adaptive
                && policy.cron.is_none()
                && let Some(a) = adaptive
            {
                wait = (*a).clamp(policy.min_interval, policy.max_interval);
                reason = "adaptive (publishing frequency)".into();
            }
            if let Some((ttl, what)) = ttl
                && *ttl > wait
            {
                wait = *ttl;
                reason = (*what).to_string();
                jitter = false;
            }
            if let Some((ttl, _)) = ttl {
                floor = floor.max(*ttl);
            }
            (wait, reason, jitter)
        }
        Outcome::Throttled { retry_after } => {
            floor = floor.max(*retry_after);
            let (wait, reason) = base(policy);
            if *retry_after > wait {
                (*retry_after, "Retry-After".to_string(), false)
            } else {
                (wait, reason, true)
            }
        }
        Outcome::Failed { failures } => {
            let factor = 1u32.checked_shl(*failures).unwrap_or(u32::MAX);
            (
                policy.interval.saturating_mul(factor),
                format!("backoff after {failures} failure(s)"),
                true,
            )
        }
        Outcome::Gone => unreachable!("answered above"),
    };
    let capped = wait > policy.max_interval;
    let mut wait = wait.min(policy.max_interval);
    if jitter && policy.jitter > 0.0 {
        let f = rng.random_range(1.0 - policy.jitter..=1.0 + policy.jitter);
        wait = wait.mul_f64(f).max(floor).min(policy.max_interval);
    }
    let capped = if capped {
        format!("{reason}, capped at max_interval")
    } else {
        reason
    };
    Next {
        wait,
        reason: capped,
    }
}

/// The interval the author's publishing frequency suggests: a quarter of the median gap between
/// the newest (up to 10) dated items. `None` with fewer than 3 dated items.
pub fn adaptive_interval(published: &[DateTime<Utc>]) -> Option<Duration> {
    let mut dates: Vec<_> = published.to_vec();
    dates.sort_unstable_by(|a, b| b.cmp(a));
    dates.truncate(10);
    if dates.len() < 3 {
        return None;
    }
    let mut gaps: Vec<Duration> = dates
        .windows(2)
        .filter_map(|w| (w[0] - w[1]).to_std().ok())
        .collect();
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    Some(median / 4)
}

/// How long until a source is due, from its stored schedule: zero for a source never polled,
/// `None` for one stopped for good (410 Gone for [`GONE_GIVE_UP`]). A lowered `interval` takes
/// effect at once for sources waiting on their interval (not for Retry-After, TTL or backoff).
pub fn wait_until_due(
    state: Option<&Due>,
    interval: Duration,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let Some(state) = state else {
        return Some(Duration::ZERO);
    };
    if state.gone && gone_for_good(state, now) {
        return None;
    }
    let Some(due) = state.next_due else {
        return Some(Duration::ZERO);
    };
    let mut wait = (due - now).to_std().unwrap_or(Duration::ZERO);
    // A due time much further out than the interval (more than jitter explains) was set by a
    // longer interval before the config changed.
    if state.by_interval
        && let Some(last) = state.last_poll
        && (due - last).to_std().unwrap_or_default() > interval.mul_f64(1.5)
        && let Some(due_by_interval) = chrono::Duration::from_std(interval)
            .ok()
            .and_then(|interval| last.checked_add_signed(interval))
    {
        let by_interval = (due_by_interval - now).to_std().unwrap_or(Duration::ZERO);
        wait = wait.min(by_interval);
    }
    Some(wait)
}

/// Whether a gone source has answered 410 for [`GONE_GIVE_UP`] (or has no date to count from).
fn gone_for_good(state: &Due, now: DateTime<Utc>) -> bool {
    let Some(since) = state.gone_since.or(state.last_poll) else {
        return true;
    };
    (now - since)
        .to_std()
        .is_ok_and(|gone| gone >= GONE_GIVE_UP)
}

/// Whether a source is due at `now` (see [`wait_until_due`]).
pub fn is_due(state: Option<&Due>, interval: Duration, now: DateTime<Utc>) -> bool {
    wait_until_due(state, interval, now) == Some(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn policy() -> Policy {
        Policy {
            interval: Duration::from_secs(60),
            min_interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(3600),
            jitter: 0.0,
            cron: None,
            adaptive: false,
        }
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn ok() -> Outcome {
        Outcome::Ok {
            ttl: None,
            adaptive: None,
        }
    }

    #[test]
    fn errors_back_off_exponentially_and_cap() {
        let p = policy();
        let waits: Vec<u64> = (1..=7)
            .map(|n| {
                next_wait(&p, &Outcome::Failed { failures: n }, Utc::now(), &mut rng())
                    .wait
                    .as_secs()
            })
            .collect();
        assert_eq!(waits, [120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn the_largest_server_hint_wins_within_the_bounds() {
        let p = policy();
        let ttl = Outcome::Ok {
            ttl: Some((Duration::from_secs(600), "feed ttl")),
            adaptive: None,
        };
        let n = next_wait(&p, &ttl, Utc::now(), &mut rng());
        assert_eq!((n.wait.as_secs(), n.reason.as_str()), (600, "feed ttl"));
        let huge = Outcome::Throttled {
            retry_after: Duration::from_secs(86_400),
        };
        let n = next_wait(&p, &huge, Utc::now(), &mut rng());
        assert_eq!(n.wait.as_secs(), 3600, "a huge Retry-After is capped");
        assert!(n.reason.contains("Retry-After"));
        let short = Outcome::Throttled {
            retry_after: Duration::from_secs(5),
        };
        assert_eq!(
            next_wait(&p, &short, Utc::now(), &mut rng()).wait.as_secs(),
            60
        );
    }

    #[test]
    fn jitter_spreads_sources() {
        let mut p = policy();
        p.interval = Duration::from_secs(1000);
        p.jitter = 0.1;
        let mut r = rng();
        let waits: Vec<u64> = (0..100)
            .map(|_| next_wait(&p, &ok(), Utc::now(), &mut r).wait.as_secs())
            .collect();
        assert!(waits.iter().all(|w| (900..=1100).contains(w)));
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 50, "{} distinct waits", distinct.len());
    }

    #[test]
    fn jitter_never_undercuts_retry_after_or_min_interval() {
        let mut p = policy();
        p.jitter = 0.5;
        let mut r = rng();
        for _ in 0..1000 {
            let ra = Outcome::Throttled {
                retry_after: Duration::from_secs(60),
            };
            assert!(next_wait(&p, &ra, Utc::now(), &mut r).wait >= Duration::from_secs(60));
            assert!(next_wait(&p, &ok(), Utc::now(), &mut r).wait >= p.min_interval);
        }
    }

    #[test]
    fn cron_sets_the_next_poll() {
        let mut p = policy();
        p.cron = Some(crate::config::parse_cron("0 3 * * *").unwrap());
        let now = DateTime::parse_from_rfc3339("2026-11-25T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let n = next_wait(&p, &ok(), now, &mut rng());
        assert_eq!((n.wait.as_secs(), n.reason.as_str()), (3600, "cron"));
    }

    #[test]
    fn a_gone_source_is_asked_again_daily_for_30_days_then_stopped() {
        let now = Utc::now();
        let n = next_wait(&policy(), &Outcome::Gone, now, &mut rng());
        assert_eq!(n.wait, GONE_RECHECK, "not capped by max_interval");
        let gone = |days: i64| Due {
            gone: true,
            gone_since: Some(now - chrono::Duration::days(days)),
            last_poll: Some(now - chrono::Duration::days(1)),
            next_due: Some(now),
            by_interval: false,
        };
        let interval = Duration::from_secs(60);
        assert!(is_due(Some(&gone(1)), interval, now));
        assert!(is_due(Some(&gone(29)), interval, now));
        assert_eq!(wait_until_due(Some(&gone(30)), interval, now), None);
        let old_record = Due {
            gone_since: None,
            last_poll: Some(now - chrono::Duration::days(31)),
            ..gone(0)
        };
        assert_eq!(wait_until_due(Some(&old_record), interval, now), None);
    }

    #[test]
    fn adaptive_interval_follows_publishing_frequency() {
        let now = Utc::now();
        let daily: Vec<_> = (0..5).map(|d| now - chrono::Duration::days(d)).collect();
        assert_eq!(
            adaptive_interval(&daily),
            Some(Duration::from_secs(6 * 3600))
        );
        assert_eq!(adaptive_interval(&daily[..2]), None);
        let mut p = policy();
        p.adaptive = true;
        p.max_interval = Duration::from_secs(4 * 3600);
        let r = Outcome::Ok {
            ttl: None,
            adaptive: adaptive_interval(&daily),
        };
        let n = next_wait(&p, &r, now, &mut rng());
        assert_eq!(n.wait.as_secs(), 4 * 3600, "bounded by max_interval");
    }
}
