//! sled-gate: the one discipline every sled store of this process follows (the watcher's store
//! and the pipelines runner's state, which share a process when the runner is embedded).
//!
//! **Why.** sled 0.34 has one process-wide concurrency control: a writer-preferring RwLock.
//! Transactions take it for writing; flushes take it for reading and hold it while they wait
//! for the log to become stable; the log flusher thread needs it for reading to make the log
//! stable. A transaction that queues behind an in-flight flush blocks every new reader, the log
//! flusher included, so the flush never finishes and the transaction never starts: the whole
//! process hangs (seen as a runner that stopped answering under concurrent run requests).
//!
//! **The rule.** Every sled transaction runs under [`exclusive`]; every flush and every write
//! outside a transaction runs under [`shared`]. So a transaction never overlaps a flush (or
//! anything else that may wait for the log), and sled's own lock is never contended by a
//! transaction. The gate is a plain `std` lock taken inside blocking code: never hold it across
//! an `.await` (run store work with [`blocking`]), never take it twice on one thread, and never
//! call `generate_id` inside a transaction (it may wait for the log while holding sled's lock).
//!
//! **Group commit.** [`GroupCommit::sync`] makes every write done before the call durable; one
//! caller flushes at a time and its flush covers everyone who asked before it started, so a
//! hundred concurrent stagings pay for a few fsyncs, not a hundred.
//!
//! **Writer.** [`Writer`] (writer.rs) is the cheaper road for a store's hot writes: one thread
//! per database runs them in order, under the same gate, with one flush for all that queued
//! together, and no trip to the blocking pool per write.

mod writer;

pub use writer::{Durability, Writer};

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};

/// The process-wide gate (see the module header).
static GATE: RwLock<()> = RwLock::new(());

/// Runs `f`, a sled transaction (or anything that takes sled's lock for writing), alone: no
/// flush and no other write of any store in this process runs meanwhile. Blocking: call it from
/// a blocking thread ([`blocking`]), never while holding the gate already.
pub fn exclusive<T>(f: impl FnOnce() -> T) -> T {
    let _gate = GATE.write().unwrap_or_else(PoisonError::into_inner);
    f()
}

/// Runs `f`, a flush or a write outside a transaction: these may run together, but never
/// beside a transaction. Blocking, like [`exclusive`].
pub fn shared<T>(f: impl FnOnce() -> T) -> T {
    let _gate = GATE.read().unwrap_or_else(PoisonError::into_inner);
    f()
}

/// Runs blocking store work on tokio's blocking pool, so the async workers (REST API, health,
/// polling, shutdown) keep running while sled reads, writes or waits for the disk. A panic in
/// `f` is resumed in the caller.
pub async fn blocking<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => panic!("store work was cancelled: the runtime is shutting down ({err})"),
    }
}

/// How far the flushes of one database got.
#[derive(Debug, Default)]
struct Progress {
    /// Tickets handed out: one per [`GroupCommit::sync`] call.
    requested: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    /// A flush is in flight.
    flushing: bool,
    /// Flushes done (for tests and metrics).
    flushes: u64,
}

/// Group commit for one sled database (see the module header). Cheap to clone.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    db: sled::Db,
    shared: Arc<(Mutex<Progress>, Condvar)>,
}

impl GroupCommit {
    pub fn new(db: sled::Db) -> Self {
        Self {
            db,
            shared: Arc::new((Mutex::new(Progress::default()), Condvar::new())),
        }
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.shared.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until every write this thread did before the call is on disk: either a flush that
    /// started after the call covers it, or this thread runs one (under [`shared`]). A failed
    /// flush is returned to the caller that ran it; the others try again.
    pub fn sync(&self) -> sled::Result<()> {
        let mut progress = self.progress();
        progress.requested += 1;
        let ticket = progress.requested;
        loop {
            if progress.durable >= ticket {
                return Ok(());
            }
            if progress.flushing {
                progress = self
                    .shared
                    .1
                    .wait(progress)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Every ticket handed out so far belongs to a write done before this flush starts.
            progress.flushing = true;
            let target = progress.requested;
            drop(progress);
            let result = shared(|| self.db.flush());
            progress = self.progress();
            progress.flushing = false;
            progress.flushes += 1;
            if result.is_ok() {
                progress.durable = progress.durable.max(target);
            }
            self.shared.1.notify_all();
            result?;
        }
    }

    /// [`sync`](Self::sync) on the blocking pool.
    pub async fn sync_async(&self) -> sled::Result<()> {
        let this = self.clone();
        blocking(move || this.sync()).await
    }

    /// How many flushes ran so far.
    pub fn flushes(&self) -> u64 {
        self.progress().flushes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sled::Transactional;

    #[test]
    fn concurrent_syncs_share_flushes_and_every_write_is_covered() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let commit = GroupCommit::new(db.clone());
        let threads: Vec<_> = (0..64u32)
            .map(|i| {
                let (db, commit) = (db.clone(), commit.clone());
                std::thread::spawn(move || {
                    for j in 0..20u32 {
                        shared(|| db.insert(format!("{i}/{j}"), &j.to_be_bytes()[..])).unwrap();
                        commit.sync().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let flushes = commit.flushes();
        assert!((1..64 * 20).contains(&flushes), "{flushes} flushes");
        assert_eq!(db.len(), 64 * 20);
    }

    /// The shape of the runner's hang: many threads each running a two-tree transaction and
    /// then a flush. Under the gate this always finishes. (Without it, this small test rarely
    /// hangs: the timing is what the load tests in `scripts/load.sh` exercise.)
    #[test]
    fn transactions_beside_flushes_never_hang() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
        let commit = GroupCommit::new(db.clone());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for i in 0..16u32 {
            let (a, b, commit, done_tx) = (a.clone(), b.clone(), commit.clone(), done_tx.clone());
            std::thread::spawn(move || {
                for j in 0..50u32 {
                    let key = format!("{i}/{j}");
                    exclusive(|| {
                        (&a, &b).transaction(|(a, b)| {
                            a.insert(key.as_bytes(), &b"run"[..])?;
                            b.insert(key.as_bytes(), &b"key"[..])?;
                            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                        })
                    })
                    .unwrap();
                    commit.sync().unwrap();
                }
                done_tx.send(()).unwrap();
            });
        }
        drop(done_tx);
        for _ in 0..16 {
            done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("a writer hung");
        }
        assert_eq!(a.len(), 16 * 50);
        assert_eq!(b.len(), 16 * 50);
    }
}
