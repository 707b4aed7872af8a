//! due.rs: the daemon's due-time queue: when each source (by its index in the daemon's source
//! list) is next due, earliest first. Taking the due ones and finding the next wake-up cost
//! O(log n) per source polled, never a walk over every source.

use std::collections::BTreeSet;

use tokio::time::Instant;

/// Sources waiting for their next poll. A source is in the queue at most once: it leaves when it
/// is taken to be polled, comes back when the poll says when to poll again, and never comes back
/// once it is gone (410).
#[derive(Debug, Default)]
pub struct DueQueue {
    /// (due at, source index): the index makes entries with the same due time distinct.
    queue: BTreeSet<(Instant, usize)>,
}

impl DueQueue {
    /// Schedules source `index` (not in the queue) at `at`.
    pub fn insert(&mut self, at: Instant, index: usize) {
        let added = self.queue.insert((at, index));
        debug_assert!(added, "source {index} is scheduled once");
    }

    /// Takes the earliest source due at or before `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let (at, _) = self.queue.first()?;
        if *at > now {
            return None;
        }
        self.queue.pop_first().map(|(_, index)| index)
    }

    /// Moves source `index` to `at` if it waits in the queue for later ("Poll now"); false
    /// when it is not waiting (being polled, or stopped for good). A walk over the queue: for
    /// a person's click, not for the loop.
    pub fn advance(&mut self, index: usize, at: Instant) -> bool {
        let Some(&(due, _)) = self.queue.iter().find(|(_, i)| *i == index) else {
            return false;
        };
        if due > at {
            self.queue.remove(&(due, index));
            self.queue.insert((at, index));
        }
        true
    }

    /// When the earliest source is due.
    pub fn next(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// How many sources are waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn takes_only_what_is_due_earliest_first() {
        let t0 = Instant::now();
        let mut q = DueQueue::default();
        q.insert(t0 + Duration::from_secs(5), 0);
        q.insert(t0 + Duration::from_secs(1), 1);
        q.insert(t0 + Duration::from_secs(1), 2);
        q.insert(t0 + Duration::from_secs(9), 3);
        assert_eq!(q.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(q.pop_due(t0), None, "nothing due yet");
        let now = t0 + Duration::from_secs(5);
        let mut taken = Vec::new();
        while let Some(i) = q.pop_due(now) {
            taken.push(i);
        }
        assert_eq!(taken, [1, 2, 0]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.next(), Some(t0 + Duration::from_secs(9)));
    }

    #[test]
    fn advance_moves_a_waiting_source_forward_only() {
        let t0 = Instant::now();
        let mut q = DueQueue::default();
        q.insert(t0 + Duration::from_secs(60), 1);
        q.insert(t0 + Duration::from_secs(5), 2);
        assert!(q.advance(1, t0));
        assert_eq!(q.pop_due(t0), Some(1));
        assert!(!q.advance(1, t0), "taken: being polled");
        assert!(
            q.advance(2, t0 + Duration::from_secs(30)),
            "waiting, already sooner"
        );
        assert_eq!(q.next(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_source_taken_comes_back_only_when_inserted_again() {
        let t0 = Instant::now();
        let mut q = DueQueue::default();
        q.insert(t0, 7);
        assert_eq!(q.pop_due(t0), Some(7));
        assert_eq!(q.len(), 0);
        assert_eq!(q.next(), None);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(3600)), None);
        q.insert(t0 + Duration::from_secs(60), 7);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(60)), Some(7));
    }
}
