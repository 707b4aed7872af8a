//! websub/track.rs: what push learns from the daemon's polls, kept in memory. A good delivery's
//! receipt time waits for the source's next poll to start, which takes it: that poll is the
//! push's. So (1) a poll that finds new items with no push taken or arriving meanwhile is one no
//! push announced (the caller decides whether that makes a live subscription `missed`), and (2)
//! what a push's poll staged is timed until the trigger is sent: the watcher's own share of push
//! latency, for the histogram metric. Bounded: one entry per source, at most [`MAX_WAITING`]
//! staged pushes waiting for the trigger (older ones are dropped unmeasured).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Pushed polls whose items wait for the trigger, at most.
pub const MAX_WAITING: usize = 1024;

#[derive(Debug, Default)]
pub struct Tracker {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per source key: when the first delivery no poll has taken yet was received.
    received: HashMap<String, Instant>,
    /// Per source key: when its last poll in this process started.
    polled: HashMap<String, DateTime<Utc>>,
    /// Pushed polls that staged items: (delivery received, items staged).
    staged: VecDeque<(Instant, Instant)>,
}

/// What a poll's start took: the push it answers, and when the source was last polled.
#[derive(Debug, Clone, Copy)]
pub struct PollMark {
    received: Option<Instant>,
    previous: Option<DateTime<Utc>>,
}

/// A poll that found new items no push announced, after an earlier poll in this process (the
/// first poll after a start finds what was pushed while the daemon was down: not a miss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unannounced {
    /// When the source's previous poll started: a subscription verified before it should have
    /// announced the items.
    pub previous: DateTime<Utc>,
}

impl Tracker {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A good delivery for `key` was received at `at`.
    pub fn received(&self, key: &str, at: Instant) {
        let mut inner = self.inner();
        if !inner.received.contains_key(key) {
            inner.received.insert(key.to_owned(), at);
        }
    }

    /// A poll of `key` starts: it takes the push waiting, if any.
    pub fn poll_started(&self, key: &str) -> PollMark {
        let mut inner = self.inner();
        PollMark {
            received: inner.received.remove(key),
            previous: inner.polled.insert(key.to_owned(), Utc::now()),
        }
    }

    /// The poll of `key` marked `mark` ended having found `found` new items (staged or held).
    pub fn poll_ended(&self, key: &str, mark: PollMark, found: usize) -> Option<Unannounced> {
        if found == 0 {
            return None;
        }
        let mut inner = self.inner();
        if let Some(received) = mark.received {
            if inner.staged.len() == MAX_WAITING {
                inner.staged.pop_front();
            }
            inner.staged.push_back((received, Instant::now()));
            return None;
        }
        // A push that came in during the poll announced what it found.
        if inner.received.contains_key(key) {
            return None;
        }
        mark.previous.map(|previous| Unannounced { previous })
    }

    /// A delivery pass that started at `pass_started` sent a trigger: the pushed items staged
    /// `window` (the batch window) or more before it went with it. Returns each one's time from
    /// the delivery's receipt to now.
    pub fn triggered(&self, pass_started: Instant, window: Duration) -> Vec<Duration> {
        let now = Instant::now();
        let mut inner = self.inner();
        let mut shares = Vec::new();
        inner.staged.retain(|&(received, staged)| {
            if staged + window <= pass_started {
                shares.push(now.saturating_duration_since(received));
                false
            } else {
                true
            }
        });
        shares
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_takes_the_push_and_times_what_it_staged() {
        let t = Tracker::default();
        let first = t.poll_started("a");
        assert_eq!(
            t.poll_ended("a", first, 3),
            None,
            "the first poll: no judgement"
        );
        let at = Instant::now();
        t.received("a", at);
        t.received("a", at + Duration::from_secs(9));
        let pushed = t.poll_started("a");
        assert_eq!(t.poll_ended("a", pushed, 1), None, "announced");
        let pass = Instant::now() + Duration::from_millis(1);
        assert_eq!(
            t.triggered(pass, Duration::from_secs(60)),
            [],
            "held by the window"
        );
        let shares = t.triggered(pass, Duration::ZERO);
        assert_eq!(shares.len(), 1, "{shares:?}");
        assert!(
            t.triggered(pass, Duration::ZERO).is_empty(),
            "measured once"
        );
        // The next poll has no push: what it finds nobody announced.
        let safety = t.poll_started("a");
        assert_eq!(t.poll_ended("a", safety, 0), None, "nothing found");
        let safety = t.poll_started("a");
        assert!(t.poll_ended("a", safety, 2).is_some());
        // A push arriving during the poll announced it.
        let during = t.poll_started("a");
        t.received("a", Instant::now());
        assert_eq!(t.poll_ended("a", during, 2), None);
        // Another source is apart.
        let b = t.poll_started("b");
        assert_eq!(t.poll_ended("b", b, 1), None);
    }
}
