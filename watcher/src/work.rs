//! work.rs: the CPU budget of one poll's parsing, and running that parsing on the blocking pool.
//!
//! Parsing a response is CPU work that no request timeout covers, and a hostile body (deep
//! nesting, huge attributes, millions of tags) can make it long. So every parser the watcher runs
//! on a response charges a [`WorkBudget`] as it goes, in *work units*: about one per byte a pass
//! reads and one per element or tree node it visits (the feed repairs' tag scanner and attribute
//! reader, feed-rs's input, the HTML tree builder and the link search). The parsers themselves
//! check it: once the budget is spent, or the poll is cancelled (its deadline passed, the watcher
//! is shutting down), each one stops at its next check and the poll fails with one line naming
//! the budget. A timeout around a thread that keeps burning CPU would not stop it; this does.
//!
//! [`offload`] runs a parse on tokio's blocking pool, so async workers keep serving fetches and
//! the status endpoint while a large body is parsed.
//!
//! The counter is also how the tests prove the parsers linear: the units spent on an input twice
//! as large are about twice as many ([`WorkBudget::used`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

/// The default work budget of one poll. Real feeds and pages spend 2 to 6 units per byte (the
/// test corpus: 2.5 on average, 5.8 at most), so a poll's largest honest reads (a 10 MiB feed,
/// a discovery page and its 3 candidates, a 64 MiB sitemap index with its children: 250M units
/// at worst) fit twice, while a pathological body (a page nested millions of levels deep) is
/// stopped after seconds of CPU.
pub const DEFAULT_PARSE_BUDGET: u64 = 500_000_000;

/// Why parsing stopped before it finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    #[error(
        "parsing stopped after {limit} work units (the per-poll `parse_budget`): the response is \
         pathological (deeply nested, huge attributes or millions of elements); raise \
         `[fetch] parse_budget` only if the source is genuine"
    )]
    Exceeded { limit: u64 },
    #[error("parsing cancelled: the poll ran past its deadline or the watcher is shutting down")]
    Cancelled,
}

/// A work budget shared by every parse of one poll. Cheap to clone; clones share the counter.
#[derive(Debug, Clone)]
pub struct WorkBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: u64,
    used: AtomicU64,
    stop: CancellationToken,
}

impl WorkBudget {
    /// `limit` work units, stopping early when `stop` is cancelled.
    pub fn new(limit: u64, stop: CancellationToken) -> WorkBudget {
        WorkBudget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicU64::new(0),
                stop,
            }),
        }
    }

    /// No limit and never cancelled (tools and tests); it still counts.
    pub fn unlimited() -> WorkBudget {
        WorkBudget::new(u64::MAX, CancellationToken::new())
    }

    /// Spends `units`. `false` when the budget is spent or the work was cancelled: the parser
    /// stops at once, and its caller reports [`WorkBudget::check`]'s error.
    pub fn charge(&self, units: u64) -> bool {
        let used = self.inner.used.fetch_add(units, Ordering::Relaxed);
        used.saturating_add(units) <= self.inner.limit && !self.inner.stop.is_cancelled()
    }

    /// Spends `units`, failing once the budget is spent or the work cancelled: for a parser
    /// that can stop right where it is.
    pub fn spend(&self, units: u64) -> Result<(), WorkError> {
        if self.charge(units) {
            Ok(())
        } else {
            self.check()
        }
    }

    /// The units spent so far.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// `Err` once the budget is spent or the work was cancelled.
    pub fn check(&self) -> Result<(), WorkError> {
        if self.inner.stop.is_cancelled() {
            Err(WorkError::Cancelled)
        } else if self.used() > self.inner.limit {
            Err(WorkError::Exceeded {
                limit: self.inner.limit,
            })
        } else {
            Ok(())
        }
    }
}

/// Runs `parse` on the blocking pool. A panic in it is resumed here; a runtime shutting down
/// reads as cancelled.
pub async fn offload<T, F>(parse: F) -> Result<T, WorkError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(parse).await {
        Ok(value) => Ok(value),
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => Err(WorkError::Cancelled),
    }
}

/// Test support: asserts that doubling an input about doubled the work spent on it (a quadratic
/// pass would quadruple it). `small` and `large` are (bytes, units).
#[cfg(test)]
pub(crate) fn assert_linear(what: &str, small: (usize, u64), large: (usize, u64)) {
    let ((small_bytes, a), (large_bytes, b)) = (small, large);
    let ratio = b as f64 / a as f64;
    eprintln!(
        "{what}: {small_bytes} bytes -> {a} units, {large_bytes} bytes -> {b} units (x{ratio:.2})"
    );
    assert!(
        ratio < 2.5,
        "{what}: doubling the input multiplied the work by {ratio:.2} ({a} -> {b} units)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_until_the_limit_then_reports_it() {
        let budget = WorkBudget::new(10, CancellationToken::new());
        assert!(budget.charge(4));
        assert!(budget.charge(6));
        assert_eq!(budget.check(), Ok(()));
        assert!(!budget.charge(1));
        assert_eq!(budget.check(), Err(WorkError::Exceeded { limit: 10 }));
        assert_eq!(budget.used(), 11);
    }

    #[test]
    fn a_cancelled_budget_stops_the_next_charge() {
        let stop = CancellationToken::new();
        let budget = WorkBudget::new(u64::MAX, stop.clone());
        assert!(budget.charge(1));
        stop.cancel();
        assert!(!budget.charge(1));
        assert_eq!(budget.check(), Err(WorkError::Cancelled));
    }

    #[tokio::test]
    async fn offload_runs_on_the_blocking_pool() {
        let name = offload(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_ne!(name.as_deref(), Some("main"));
    }
}
