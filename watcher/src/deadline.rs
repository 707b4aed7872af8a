//! deadline.rs: what bounds one poll's fetching and reading: an overall deadline, a work budget for
//! its parsing (see `work`), and the daemon's cancellation at shutdown.
//!
//! [`within`] runs the fetch-and-read part of a poll under all three. Past the deadline the poll
//! fails (it counts as a failure, with backoff); cancelled, it stops and records nothing. Either
//! way the budget's token is cancelled on the way out, so a parse still running on the blocking
//! pool stops at its next check instead of burning a core for nothing. Storing the result is not
//! bounded here: it is short, and cutting it off would leave the store to guess.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::FetchSettings;
use crate::work::WorkBudget;

/// The bounds of each poll.
#[derive(Debug, Clone)]
pub struct PollBounds {
    /// How long fetching and reading one source may take in all (`[fetch] poll_deadline`).
    pub deadline: Duration,
    /// The work units its parsing may spend (`[fetch] parse_budget`).
    pub parse_budget: u64,
    /// Fires at shutdown.
    pub cancel: CancellationToken,
}

impl PollBounds {
    pub fn new(fetch: &FetchSettings, cancel: CancellationToken) -> PollBounds {
        PollBounds {
            deadline: fetch.poll_deadline,
            parse_budget: fetch.parse_budget,
            cancel,
        }
    }
}

/// Why a poll's work did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The deadline passed: a failure of the source.
    Deadline(Duration),
    /// The daemon is shutting down: nothing to record.
    Cancelled,
}

/// Runs `work`, handed the poll's budget, within `bounds` (see the module header).
pub async fn within<T, F>(
    bounds: &PollBounds,
    work: impl FnOnce(WorkBudget) -> F,
) -> Result<T, Stopped>
where
    F: Future<Output = T>,
{
    let stop = bounds.cancel.child_token();
    let _stop_parsing = stop.clone().drop_guard();
    let work = work(WorkBudget::new(bounds.parse_budget, stop));
    tokio::select! {
        biased;
        _ = bounds.cancel.cancelled() => Err(Stopped::Cancelled),
        done = tokio::time::timeout(bounds.deadline, work) => {
            done.map_err(|_| Stopped::Deadline(bounds.deadline))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(deadline: Duration) -> PollBounds {
        PollBounds {
            deadline,
            parse_budget: 100,
            cancel: CancellationToken::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_deadline_the_work_stops_and_its_budget_is_cancelled() {
        let b = bounds(Duration::from_secs(5));
        let mut seen = None;
        let stopped = within(&b, |budget| {
            seen = Some(budget.clone());
            std::future::pending::<()>()
        })
        .await;
        assert_eq!(stopped, Err(Stopped::Deadline(Duration::from_secs(5))));
        let budget = seen.unwrap();
        assert!(
            !budget.charge(1),
            "a parse still running stops at its next check"
        );
        assert_eq!(budget.check(), Err(crate::work::WorkError::Cancelled));
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_stops_the_work_before_the_deadline() {
        let b = bounds(Duration::from_secs(3600));
        let cancel = b.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        });
        let started = tokio::time::Instant::now();
        let stopped = within(&b, |_| std::future::pending::<()>()).await;
        assert_eq!(stopped, Err(Stopped::Cancelled));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn work_that_finishes_in_time_returns_its_result() {
        let b = bounds(Duration::from_secs(5));
        assert_eq!(
            within(&b, |budget| async move { budget.charge(1) }).await,
            Ok(true)
        );
    }
}
