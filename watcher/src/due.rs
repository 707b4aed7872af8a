//! due.rs: the daemon's due-time queue: when each source (by its index in the daemon's source
//! list) is next due, earliest first. Taking the due ones and finding the next wake-up cost
//! O(log n) per source polled, never a walk over every source. Polls start on a [`Grid`]: sources
//! due close together start together, so their store writes share flushes.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

/// The longest a due source waits for its grid point.
pub const GATHER_MAX: Duration = Duration::from_secs(5);

/// The points in time the daemon starts polls at: every `step` from `start`. A source due between
/// two points starts at the later one, with every other source due by then: their attempts
/// (written and flushed before each request) share one group commit, and their results one
/// background flush of sled's, instead of a flush each. A poll starts at most `step` late, never
/// early (a Retry-After is never cut short).
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    start: Instant,
    step: Duration,
}

impl Grid {
    /// The grid for sources whose shortest interval is `shortest`: a step of 1/60 of it, at most
    /// [`GATHER_MAX`] (a 5-minute interval starts polls at most 5 s late; a 1-minute one 1 s).
    pub fn for_interval(start: Instant, shortest: Duration) -> Grid {
        Grid {
            start,
            step: (shortest / 60).min(GATHER_MAX),
        }
    }

    /// The latest grid point at or before `now`: sources due by then may start.
    pub fn last(&self, now: Instant) -> Instant {
        let Some(step) = self.step_nanos() else {
            return now;
        };
        let since = now.saturating_duration_since(self.start).as_nanos();
        self.start + nanos(since - since % step)
    }

    /// The first grid point at or after `at`: when a source due at `at` starts.
    pub fn next(&self, at: Instant) -> Instant {
        let Some(step) = self.step_nanos() else {
            return at;
        };
        let since = at.saturating_duration_since(self.start).as_nanos();
        self.start + nanos(since.div_ceil(step) * step)
    }

    fn step_nanos(&self) -> Option<u128> {
        Some(self.step.as_nanos()).filter(|&n| n > 0)
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

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

    /// Takes source `index` out of the queue (a push polls it off the grid); false when it is
    /// not waiting. A walk over the queue, like [`DueQueue::advance`].
    pub fn remove(&mut self, index: usize) -> bool {
        let Some(&entry) = self.queue.iter().find(|(_, i)| *i == index) else {
            return false;
        };
        self.queue.remove(&entry)
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

    #[test]
    fn a_grid_starts_sources_late_by_at_most_its_step_and_never_early() {
        let t0 = Instant::now();
        let grid = Grid::for_interval(t0, Duration::from_secs(300));
        let s = Duration::from_secs;
        assert_eq!(grid.next(t0 + s(1)), t0 + s(5));
        assert_eq!(grid.next(t0 + s(5)), t0 + s(5), "a point is its own next");
        assert_eq!(grid.next(t0 + Duration::from_millis(5001)), t0 + s(10));
        assert_eq!(grid.last(t0 + s(9)), t0 + s(5));
        assert_eq!(grid.last(t0 + s(10)), t0 + s(10));
        assert_eq!(grid.next(t0 - s(3)), t0, "overdue at the start: at once");
        // Short intervals get a fine grid; a day's interval is capped at GATHER_MAX.
        let fine = Grid::for_interval(t0, s(60));
        assert_eq!(fine.next(t0 + Duration::from_millis(10)), t0 + s(1));
        let capped = Grid::for_interval(t0, s(86_400));
        assert_eq!(capped.next(t0 + s(1)), t0 + GATHER_MAX);
        // Tiny intervals (tests): no grid at all.
        let none = Grid::for_interval(t0, Duration::from_nanos(30));
        let at = t0 + Duration::from_millis(7);
        assert_eq!((none.next(at), none.last(at)), (at, at));
    }

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
