//! The wall clock gates and budgets read: the system clock in production, a manual clock that
//! tests set and advance (a paused clock), and a sleep that follows either.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

/// The longest single sleep on the system clock: the time is re-read at least this often, so a
/// suspend or a clock change delays a gate's catch-up by at most this.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A wall clock; cheap to clone (every clone is the same clock).
#[derive(Clone)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

struct Manual {
    now: Mutex<DateTime<Utc>>,
    moved: Notify,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::System"),
            Some(_) => write!(f, "Clock::Manual({})", self.now()),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock standing at `start` until [`advance`](Self::advance)d (for tests).
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self {
            manual: Some(Arc::new(Manual {
                now: Mutex::new(start),
                moved: Notify::new(),
            })),
        }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(manual) => *manual.now.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock forward and wakes its sleepers; the system clock ignores it.
    pub fn advance(&self, by: TimeDelta) {
        if let Some(manual) = &self.manual {
            *manual.now.lock().unwrap_or_else(|p| p.into_inner()) += by;
            manual.moved.notify_waiters();
        }
    }

    /// Sleeps until `at` on this clock, or for at most a minute on the system clock (callers
    /// loop and re-check); `None` sleeps until a manual clock moves, or a minute.
    pub async fn sleep_until(&self, at: Option<DateTime<Utc>>) {
        match &self.manual {
            None => {
                let wait = at
                    .map(|at| (at - Utc::now()).to_std().unwrap_or_default())
                    .unwrap_or(MAX_SLEEP)
                    .min(MAX_SLEEP);
                tokio::time::sleep(wait).await;
            }
            Some(manual) => loop {
                let moved = manual.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if at.is_some_and(|at| self.now() >= at) {
                    return;
                }
                moved.await;
                if at.is_none() {
                    return;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_when_it_reaches_their_time() {
        let start = Utc::now();
        let clock = Clock::manual(start);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(Some(start + TimeDelta::days(2))).await }
        });
        tokio::task::yield_now().await;
        clock.advance(TimeDelta::days(1));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke a day early");
        clock.advance(TimeDelta::days(1));
        tokio::time::timeout(Duration::from_secs(10), sleeper)
            .await
            .expect("wakes once its time came")
            .unwrap();
        assert_eq!(clock.now(), start + TimeDelta::days(2));
    }
}
