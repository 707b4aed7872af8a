//! vitals.rs: what says the daemon is alive and doing its work, beyond the store's health
//! ([`crate::health`]): when a poll last succeeded, whether the daemon finished starting (and has
//! not begun stopping: `/readyz`), whether the scheduler makes progress (the systemd watchdog
//! is pinged only then: [`crate::sdnotify`]), and the age checks of `/healthz`
//! (`[watcher] health_poll_age`, `health_delivery_age`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The daemon's vitals; shared between the run loop, its polls and the endpoint.
#[derive(Debug)]
pub struct Vitals {
    /// When this process started watching (the reference of the other instants).
    started: Instant,
    started_wall: DateTime<Utc>,
    ready: AtomicBool,
    stopping: AtomicBool,
    /// The last successful poll's end (wall clock: the store keeps it across restarts).
    last_success: Mutex<Option<DateTime<Utc>>>,
    /// Milliseconds since `started` of the run loop's last turn.
    turned_ms: AtomicU64,
    /// Polls the loop started that have not ended.
    in_flight: AtomicUsize,
    /// Milliseconds since `started` of the last poll that ended, or of the start of the first
    /// poll after none was in flight.
    progressed_ms: AtomicU64,
}

impl Default for Vitals {
    fn default() -> Self {
        Vitals {
            started: Instant::now(),
            started_wall: Utc::now(),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_success: Mutex::new(None),
            turned_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            progressed_ms: AtomicU64::new(0),
        }
    }
}

/// Why `/healthz` fails the age checks (`None`: fine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeLimits {
    pub poll: Duration,
    pub delivery: Duration,
}

impl Vitals {
    fn ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The daemon is scheduling: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// The daemon is shutting down: `/readyz` answers 503 from now on.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Why the daemon is not ready, if it is not.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.stopping.load(Ordering::SeqCst) {
            Some("stopping")
        } else if !self.ready.load(Ordering::SeqCst) {
            Some("starting")
        } else {
            None
        }
    }

    /// The newest successful poll the store remembers (at startup).
    pub fn remember_success(&self, at: Option<DateTime<Utc>>) {
        let mut last = self.last_success.lock().unwrap_or_else(|p| p.into_inner());
        *last = (*last).max(at);
    }

    /// A poll succeeded (fetched, or not modified).
    pub fn poll_succeeded(&self) {
        self.remember_success(Some(Utc::now()));
    }

    /// How long ago a poll last succeeded; since the daemon started when none has.
    pub fn last_success_age(&self, now: DateTime<Utc>) -> Duration {
        let last = *self.last_success.lock().unwrap_or_else(|p| p.into_inner());
        (now - last.unwrap_or(self.started_wall))
            .to_std()
            .unwrap_or_default()
    }

    /// The run loop turned.
    pub fn turned(&self) {
        self.turned_ms.store(self.ms(), Ordering::Relaxed);
    }

    /// The loop started a poll.
    pub fn poll_started(&self) {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            self.progressed_ms.store(self.ms(), Ordering::Relaxed);
        }
    }

    /// A poll the loop started ended (whatever its result).
    pub fn poll_ended(&self) {
        self.progressed_ms.store(self.ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether the scheduler made progress within `window`: its loop turned, and when polls are
    /// in flight one of them ended (or the first started) within it. A wedged runtime stops the
    /// loop; a wedged store or network stops the polls from ending (each has a deadline, so
    /// `window` must be longer than `[fetch] poll_deadline`).
    pub fn progressing(&self, window: Duration) -> bool {
        let now = self.ms();
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let recent = |at: &AtomicU64| now.saturating_sub(at.load(Ordering::Relaxed)) <= window;
        recent(&self.turned_ms)
            && (self.in_flight.load(Ordering::Relaxed) == 0 || recent(&self.progressed_ms))
    }
}

/// What `/healthz` says about the ages: the reason for a 503, or `None`.
pub fn age_problem(
    limits: AgeLimits,
    last_success_age: Option<Duration>,
    oldest_pending_age: Option<Duration>,
) -> Option<String> {
    let show = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
    if let Some(age) = last_success_age.filter(|age| *age > limits.poll) {
        return Some(format!(
            "no poll succeeded for {} (health_poll_age {})",
            show(age),
            show(limits.poll)
        ));
    }
    if let Some(age) = oldest_pending_age.filter(|age| *age > limits.delivery) {
        return Some(format!(
            "the oldest pending delivery is {} old (health_delivery_age {})",
            show(age),
            show(limits.delivery)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: AgeLimits = AgeLimits {
        poll: Duration::from_secs(3600),
        delivery: Duration::from_secs(600),
    };

    #[test]
    fn ages_within_the_limits_are_healthy_and_past_them_say_which() {
        assert_eq!(age_problem(LIMITS, None, None), None);
        assert_eq!(
            age_problem(
                LIMITS,
                Some(Duration::from_secs(3600)),
                Some(Duration::from_secs(600))
            ),
            None
        );
        assert_eq!(
            age_problem(LIMITS, Some(Duration::from_secs(7300)), None).unwrap(),
            "no poll succeeded for 2h 1m 40s (health_poll_age 1h)"
        );
        assert_eq!(
            age_problem(LIMITS, Some(Duration::ZERO), Some(Duration::from_secs(601))).unwrap(),
            "the oldest pending delivery is 10m 1s old (health_delivery_age 10m)"
        );
    }

    #[test]
    fn readiness_follows_start_and_stop() {
        let v = Vitals::default();
        assert_eq!(v.not_ready(), Some("starting"));
        v.set_ready();
        assert_eq!(v.not_ready(), None);
        v.set_stopping();
        assert_eq!(v.not_ready(), Some("stopping"));
    }

    #[test]
    fn progress_needs_the_loop_and_the_polls_in_flight_to_move() {
        let v = Vitals::default();
        v.turned();
        assert!(v.progressing(Duration::from_secs(60)));
        v.poll_started();
        assert!(v.progressing(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(30));
        v.turned();
        // A poll in flight and none ended within the window: stalled, though the loop turns.
        assert!(!v.progressing(Duration::from_millis(10)));
        v.poll_ended();
        assert!(v.progressing(Duration::from_millis(10)));
    }

    #[test]
    fn the_newest_success_is_kept() {
        let v = Vitals::default();
        let old = Utc::now() - chrono::Duration::hours(3);
        v.remember_success(Some(old));
        v.remember_success(None);
        let age = v.last_success_age(Utc::now());
        assert!(age >= Duration::from_secs(3 * 3600 - 5), "{age:?}");
        v.poll_succeeded();
        v.remember_success(Some(old));
        assert!(v.last_success_age(Utc::now()) < Duration::from_secs(60));
    }
}
