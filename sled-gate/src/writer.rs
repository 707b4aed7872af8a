//! writer.rs: one thread per database that runs its hot writes in order and makes those that
//! ask for it durable with one flush for all of them.
//!
//! **Why.** A write through [`crate::blocking`] costs a trip to tokio's blocking pool (a thread
//! woken, the runtime woken back), and a durable one then parks that thread in
//! [`crate::GroupCommit::sync`] until a flush covers it, every parked thread woken by each flush.
//! At thousands of small writes a second (a `once --all` round: two per poll) the wake-ups, not
//! sled, were most of the round's CPU. Here a write is a message to one thread that is already
//! awake while work is queued: it runs every queued write (each under the gate, as the caller
//! wrote it), flushes once (under [`crate::shared`]) if any of them asked to be durable, then
//! answers them all. The answer of a durable write is sent only after the flush covering it.
//! Before such a flush the thread gives writes on their way a moment to join it (each may come
//! within [`GAP`] of the last, for [`GATHER`] at most): at a round's pace that is several polls'
//! attempts per fsync more, for a fraction of a millisecond of a poll's time.
//!
//! Writes through here and through [`crate::blocking`] may be mixed: both follow the gate, and
//! any flush covers every write done before it. The thread holds a handle of the database; when
//! the last [`Writer`] clone is dropped the thread ends and the drop waits for it, so the
//! database is closed (and flushed by sled) exactly as if the thread had never existed.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Writes run in one go before the next flush (a bound, so a flood of lazy writes cannot delay a
/// durable one for long).
const MAX_BATCH: usize = 256;

/// How long a durable write's flush waits for the next write to join it...
const GAP: Duration = Duration::from_micros(200);
/// ... and at most in all: a lone durable write is answered this much later, at worst.
const GATHER: Duration = Duration::from_millis(2);

/// What a write is answered with once the flush covering it is done.
type Done = Box<dyn FnOnce(&sled::Result<()>) + Send>;
/// A queued write: runs it and, when it asked to be durable, returns what answers it later.
type Job = Box<dyn FnOnce() -> Option<Done> + Send>;

/// Whether a write's answer waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Answered when written: sled's background flush makes it durable soon.
    Lazy,
    /// Answered when a flush that started after the write finished.
    Durable,
}

/// The writer thread of one database (see the module header). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    // Declared first: dropped before `thread`, so the last clone closes the queue, then joins.
    jobs: mpsc::Sender<Job>,
    flushes: Arc<AtomicU64>,
    _thread: Arc<Joined>,
}

/// Joins the writer thread when the last [`Writer`] is dropped (unless that happens on the
/// thread itself: a write that held the last one; the thread then ends by itself).
#[derive(Debug)]
struct Joined(Option<JoinHandle<()>>);

impl Drop for Joined {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

impl Writer {
    /// Starts the writer thread of `db`.
    pub fn new(db: sled::Db) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let flushes = Arc::new(AtomicU64::new(0));
        let counted = flushes.clone();
        let handle = std::thread::Builder::new()
            .name("sled-writer".into())
            .spawn(move || run(&db, &queue, &counted))?;
        Ok(Writer {
            jobs,
            flushes,
            _thread: Arc::new(Joined(Some(handle))),
        })
    }

    /// Runs `f` (store writes, each under the gate as usual) on the writer thread, after every
    /// write queued before it; with [`Durability::Durable`], returns once a flush covering it
    /// finished (a failed flush is returned as the error). A panic in `f` is resumed here.
    pub async fn write<T, E, F>(&self, durability: Durability, f: F) -> Result<T, E>
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<sled::Error> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(f));
            match result {
                Ok(Ok(value)) if durability == Durability::Durable => {
                    Some(Box::new(move |flushed: &sled::Result<()>| {
                        let result = match flushed {
                            Ok(()) => Ok(Ok(value)),
                            Err(e) => Ok(Err(E::from(e.clone()))),
                        };
                        let _ = answer.send(result);
                    }) as Done)
                }
                other => {
                    // Nothing to wait for: a lazy write, a failed one, or a panic to resume.
                    let _ = answer.send(other);
                    None
                }
            }
        });
        self.jobs
            .send(job)
            .expect("the store's writer thread ended while the store is open");
        // On a current-thread runtime the wait itself goes to the blocking pool: that runtime
        // (tests with a paused clock) would otherwise see itself idle while the thread writes
        // and jump its clock ahead. The write path is the same either way.
        let current_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        let answered = if current_thread {
            crate::blocking(move || answered.blocking_recv()).await
        } else {
            answered.await
        };
        match answered {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => panic!("the store's writer thread dropped a write without answering"),
        }
    }

    /// How many flushes the thread ran so far (for tests and measurements).
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

/// The thread: waits for a write, runs it and whatever queued behind it (up to [`MAX_BATCH`]),
/// flushes once if any of them asked to be durable, answers those, repeats. Ends when every
/// [`Writer`] is gone.
fn run(db: &sled::Db, queue: &mpsc::Receiver<Job>, flushes: &AtomicU64) {
    let mut waiting: Vec<Done> = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut next = Some(first);
        let mut ran = 0;
        let mut gather_until = None;
        loop {
            while let Some(job) = next.take() {
                waiting.extend(job());
                ran += 1;
                if ran < MAX_BATCH {
                    next = queue.try_recv().ok();
                }
            }
            if waiting.is_empty() || ran >= MAX_BATCH {
                break;
            }
            // A write waits for the disk: writes on their way (the next polls' attempts) may
            // join its flush if they come within GAP, for at most GATHER in all.
            let until = *gather_until.get_or_insert_with(|| Instant::now() + GATHER);
            let wait = until.saturating_duration_since(Instant::now()).min(GAP);
            match queue.recv_timeout(wait) {
                Ok(job) => next = Some(job),
                Err(_) => break,
            }
        }
        if !waiting.is_empty() {
            let flushed = crate::shared(|| db.flush()).map(drop);
            flushes.fetch_add(1, Ordering::Relaxed);
            for done in waiting.drain(..) {
                done(&flushed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn concurrent_durable_writes_share_flushes_and_are_on_disk_when_answered() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path())
            .flush_every_ms(None)
            .open()
            .unwrap();
        let writer = Writer::new(db.clone()).unwrap();
        runtime().block_on(async {
            let tasks: Vec<_> = (0..200u32)
                .map(|i| {
                    let (db, writer) = (db.clone(), writer.clone());
                    tokio::spawn(async move {
                        writer
                            .write(Durability::Durable, move || {
                                crate::shared(|| db.insert(i.to_be_bytes(), &b"v"[..])).map(drop)
                            })
                            .await
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
        let flushes = writer.flushes();
        assert!(
            (1..200).contains(&flushes),
            "{flushes} flushes for 200 writes"
        );
        // Every answered write was flushed: sled has nothing left to write.
        assert_eq!(db.flush().unwrap(), 0, "bytes left unflushed");
        assert_eq!(db.len(), 200);
    }

    #[test]
    fn writes_run_in_order_lazy_ones_need_no_flush_and_errors_and_panics_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let writer = Writer::new(db.clone()).unwrap();
        runtime().block_on(async {
            for i in 0..50u8 {
                let db = db.clone();
                writer
                    .write(Durability::Lazy, move || {
                        crate::shared(|| db.insert("k", &[i][..])).map(drop)
                    })
                    .await
                    .unwrap();
            }
            assert_eq!(writer.flushes(), 0);
            assert_eq!(db.get("k").unwrap().unwrap().as_ref(), &[49]);
            let failed: Result<(), sled::Error> = writer
                .write(Durability::Durable, || {
                    Err(sled::Error::Unsupported("refused".into()))
                })
                .await;
            assert!(matches!(failed, Err(sled::Error::Unsupported(_))));
            let w = writer.clone();
            let panicked = tokio::spawn(async move {
                w.write(Durability::Lazy, || -> Result<(), sled::Error> {
                    panic!("boom")
                })
                .await
            })
            .await;
            assert!(panicked.unwrap_err().is_panic());
            // The thread survived the panic.
            let db2 = db.clone();
            writer
                .write(Durability::Durable, move || {
                    crate::shared(|| db2.insert("after", &b"ok"[..])).map(drop)
                })
                .await
                .unwrap();
        });
        assert!(db.get("after").unwrap().is_some());
    }

    #[test]
    fn the_thread_ends_with_the_last_writer_and_lets_go_of_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let writer = Writer::new(db.clone()).unwrap();
        let clone = writer.clone();
        drop((db, writer));
        assert!(sled::open(dir.path()).is_err(), "a writer is still alive");
        drop(clone);
        // The drop waited for the thread: sled's file lock is free at once.
        sled::open(dir.path()).expect("the writer thread kept the database");
    }
}
