//! websub/coalesce.rs: pushes for one source folded leading-edge: the first one polls at once,
//! later ones fold into the poll already scheduled, or, while a poll is in flight, into one more
//! poll after it, never sooner than the window after the last push-triggered poll. So a hostile
//! hub pushing without pause costs at most one fetch per window. Pure; the daemon owns the queue.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

/// Push bookkeeping per source (by its index in the daemon's sources).
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    /// When the last push-triggered poll of each source was scheduled for.
    scheduled: HashMap<usize, Instant>,
    /// Sources pushed while their poll was in flight: polled once more when it ends.
    again: HashSet<usize>,
    /// Sources whose next poll a push scheduled.
    by_push: HashSet<usize>,
}

impl Coalescer {
    pub fn new(window: Duration) -> Coalescer {
        Coalescer {
            window,
            scheduled: HashMap::new(),
            again: HashSet::new(),
            by_push: HashSet::new(),
        }
    }

    /// A push for `index` at `now`: when to poll it, or `None` when a push-triggered poll is
    /// already scheduled (the push folds into it).
    pub fn pushed(&mut self, index: usize, now: Instant) -> Option<Instant> {
        match self.scheduled.get(&index) {
            Some(&at) if at >= now => None,
            last => {
                let at = last.map_or(now, |&l| (l + self.window).max(now));
                self.scheduled.insert(index, at);
                self.by_push.insert(index);
                Some(at)
            }
        }
    }

    /// The source was being polled when pushed: one more poll after this one.
    pub fn in_flight(&mut self, index: usize) {
        self.again.insert(index);
    }

    /// `index`'s poll ended at `now`: whether a push had asked for it, and when to poll it
    /// again for pushes that came meanwhile.
    pub fn finished(&mut self, index: usize, now: Instant) -> (bool, Option<Instant>) {
        let pushed = self.by_push.remove(&index);
        if !self.again.remove(&index) {
            return (pushed, None);
        }
        let at = (self.scheduled.get(&index)).map_or(now, |&l| (l + self.window).max(now));
        self.scheduled.insert(index, at);
        self.by_push.insert(index);
        (pushed, Some(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_push_polls_at_once_and_a_burst_folds() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(W);
        assert_eq!(c.pushed(3, t0), Some(t0));
        // The poll is due now (still queued): another push at the same instant folds.
        assert_eq!(c.pushed(3, t0), None);
        // After it started, a push within the window waits for the window's end.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(c.pushed(3, t1), Some(t0 + W));
        assert_eq!(c.pushed(3, t1 + Duration::from_millis(100)), None);
        // Another source is independent; a quiet source polls at once again.
        assert_eq!(c.pushed(4, t1), Some(t1));
        let t2 = t0 + Duration::from_secs(5);
        assert_eq!(c.pushed(3, t2), Some(t2));
    }

    #[test]
    fn pushes_during_a_poll_make_one_more() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(W);
        assert_eq!(c.finished(1, t0), (false, None));
        assert_eq!(c.pushed(1, t0), Some(t0));
        assert_eq!(c.finished(1, t0), (true, None), "the pushed poll");
        c.in_flight(1);
        c.in_flight(1);
        let end = t0 + Duration::from_millis(300);
        assert_eq!(c.finished(1, end), (false, Some(t0 + W)));
        assert_eq!(
            c.finished(1, end),
            (true, None),
            "once, asked by the pushes"
        );
    }
}
