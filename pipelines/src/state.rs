//! The durable state: the only file that touches sled.
//!
//! Trees: `runs` (run id → [`Run`] as JSON; ids are UUIDv7, so key order is creation order),
//! `idempotency` (idempotency key → run id + request fingerprint) and `groups` (process group id
//! → the stage process that leads it, recorded at spawn and removed once the group is gone, so a
//! restarted runner can kill what a crashed one left behind), and for gates and budgets (in
//! `gates`): `gates` (`chain/stage` → [`GateRecord`](crate::gate::GateRecord)) and `spend`
//! (chain → its [`Ledger`](crate::budget::Ledger) of charges). Trees only ever added, so the
//! state of an older runner opens as it was.
//!
//! sled discipline (shared with the watcher's store, see `sled_gate`): transactions run under
//! `sled_gate::exclusive`, single-key writes and flushes under `sled_gate::shared`, so a
//! transaction never overlaps a flush (sled 0.34 deadlocks when one does); durability is a group
//! commit. Everything that can wait for the disk or for the gate (transactions, flushes, scans,
//! read-modify-writes) runs on tokio's blocking pool through the async methods, so the REST API
//! and `/healthz` keep answering while the store is busy; the `_blocking` variants are for code
//! that already runs there (startup recovery, retention, drop guards).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{TransactionError, abort};

mod gates;

pub use self::gates::{Admission, Admit};
use crate::process::GroupRecord;
use runner_api::{Run, RunPage, RunStatus};

/// Errors of the durable state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state directory `{path}` is in use by another process; stop the other `pipelines serve` (or the watcher that embeds it), or pass `--url` to talk to it"
    )]
    Locked { path: PathBuf },
    #[error("cannot open the run database in `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("run database read or write failed")]
    Sled(#[from] sled::Error),
    #[error("run database entry `{key}` is not valid; it was written by an incompatible version")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("run `{id}` not found")]
    RunNotFound { id: String },
}

/// What [`State::insert_run`] found.
#[derive(Debug)]
pub enum Inserted {
    /// The run was stored.
    New,
    /// The idempotency key was already used; `same_request` says whether the fingerprints match.
    Existing { run: Box<Run>, same_request: bool },
}

#[derive(Debug, Serialize, Deserialize)]
struct IdempotencyEntry {
    run_id: String,
    fingerprint: String,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub chain: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: usize,
    /// Only runs older than this run id (the `next` of the previous page).
    pub cursor: Option<String>,
}

/// The sled database of a runner. Cheap to clone: every clone is the same database.
#[derive(Debug, Clone)]
pub struct State {
    runs: sled::Tree,
    idempotency: sled::Tree,
    groups: sled::Tree,
    gates: sled::Tree,
    spend: sled::Tree,
    /// Serialises read-modify-write of run records (sled itself is only per-key atomic).
    write: Arc<Mutex<()>>,
    commit: sled_gate::GroupCommit,
}

impl State {
    /// Opens (or creates) the database in `dir`; fails with [`StateError::Locked`] if another
    /// process has it open.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        // A store this process just closed keeps sled's lock until its background flusher
        // stops, within moments; a lock still taken after a short wait is another process's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut opened = sled::Config::new().path(dir).open();
        while let Err(e) = &opened
            && e.to_string().contains("could not acquire lock")
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
            opened = sled::Config::new().path(dir).open();
        }
        let db = opened.map_err(|source| {
            if source.to_string().contains("could not acquire lock") {
                StateError::Locked {
                    path: dir.to_owned(),
                }
            } else {
                StateError::Open {
                    path: dir.to_owned(),
                    source,
                }
            }
        })?;
        Ok(Self {
            runs: db.open_tree("runs")?,
            idempotency: db.open_tree("idempotency")?,
            groups: db.open_tree("groups")?,
            gates: db.open_tree("gates")?,
            spend: db.open_tree("spend")?,
            commit: sled_gate::GroupCommit::new(db),
            write: Arc::new(Mutex::new(())),
        })
    }

    /// Stores a new run; with an idempotency key (and the request's fingerprint), returns the run
    /// that key already names instead. Not yet durable: [`flush`](Self::flush) before relying on it.
    pub async fn insert_run(
        &self,
        run: Run,
        idempotency: Option<(String, String)>,
    ) -> Result<Inserted, StateError> {
        let this = self.clone();
        sled_gate::blocking(move || {
            let idempotency = idempotency.as_ref().map(|(k, f)| (k.as_str(), f.as_str()));
            this.insert_run_blocking(&run, idempotency)
        })
        .await
    }

    /// [`insert_run`](Self::insert_run), on the calling thread.
    pub fn insert_run_blocking(
        &self,
        run: &Run,
        idempotency: Option<(&str, &str)>,
    ) -> Result<Inserted, StateError> {
        // A new run's record is not touched by read-modify-writes until it exists, and the
        // transaction settles races on the key, so `write` is not needed here.
        let Some((key, fingerprint)) = idempotency else {
            sled_gate::shared(|| self.runs.insert(run.id.as_bytes(), encode(run)))?;
            return Ok(Inserted::New);
        };
        let record = encode(run);
        let entry = encode(&IdempotencyEntry {
            run_id: run.id.clone(),
            fingerprint: fingerprint.to_owned(),
        });
        // One transaction over both trees: a crash never leaves a run without its key (which
        // would let a retry with the same key start a second run) or a key without its run.
        sled_gate::exclusive(|| {
            (&self.runs, &self.idempotency).transaction(|(runs, keys)| {
                if let Some(bytes) = keys.get(key)? {
                    let found: IdempotencyEntry = decode(key, &bytes).or_else(abort)?;
                    let Some(existing) = runs.get(found.run_id.as_bytes())? else {
                        return abort(StateError::RunNotFound { id: found.run_id });
                    };
                    let existing: Run = decode(&found.run_id, &existing).or_else(abort)?;
                    return Ok(Inserted::Existing {
                        run: Box::new(existing),
                        same_request: found.fingerprint == fingerprint,
                    });
                }
                runs.insert(run.id.as_bytes(), record.as_slice())?;
                keys.insert(key, entry.as_slice())?;
                Ok(Inserted::New)
            })
        })
        .map_err(|err| match err {
            TransactionError::Abort(err) => err,
            TransactionError::Storage(err) => StateError::Sled(err),
        })
    }

    /// The run an idempotency key names, with the fingerprint of the request that created it.
    pub fn idempotent_run(&self, key: &str) -> Result<Option<(Run, String)>, StateError> {
        let Some(bytes) = self.idempotency.get(key)? else {
            return Ok(None);
        };
        let entry: IdempotencyEntry = decode(key, &bytes)?;
        let run = self
            .get_run(&entry.run_id)?
            .ok_or(StateError::RunNotFound { id: entry.run_id })?;
        Ok(Some((run, entry.fingerprint)))
    }

    pub fn get_run(&self, id: &str) -> Result<Option<Run>, StateError> {
        self.runs
            .get(id.as_bytes())?
            .map(|bytes| decode(id, &bytes))
            .transpose()
    }

    /// Reads, changes and writes back one run record (on the blocking pool).
    pub async fn update_run(
        &self,
        id: &str,
        change: impl FnOnce(&mut Run) + Send + 'static,
    ) -> Result<Run, StateError> {
        let (this, id) = (self.clone(), id.to_owned());
        sled_gate::blocking(move || this.update_run_blocking(&id, change)).await
    }

    /// [`update_run`](Self::update_run), on the calling thread.
    pub fn update_run_blocking(
        &self,
        id: &str,
        change: impl FnOnce(&mut Run),
    ) -> Result<Run, StateError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut run = self
            .get_run(id)?
            .ok_or_else(|| StateError::RunNotFound { id: id.to_owned() })?;
        change(&mut run);
        sled_gate::shared(|| self.runs.insert(id.as_bytes(), encode(&run)))?;
        Ok(run)
    }

    /// Runs matching `filter`, newest first (a scan, on the blocking pool).
    pub async fn list_runs(&self, filter: RunFilter) -> Result<RunPage, StateError> {
        let this = self.clone();
        sled_gate::blocking(move || this.list_runs_blocking(&filter)).await
    }

    /// [`list_runs`](Self::list_runs), on the calling thread.
    pub fn list_runs_blocking(&self, filter: &RunFilter) -> Result<RunPage, StateError> {
        let limit = filter.limit.max(1);
        let iter = match &filter.cursor {
            Some(cursor) => self.runs.range(..cursor.as_bytes().to_vec()),
            None => self.runs.iter(),
        };
        let mut runs = Vec::new();
        let mut next = None;
        for item in iter.rev() {
            let (key, bytes) = item?;
            let run: Run = decode(&String::from_utf8_lossy(&key), &bytes)?;
            if filter
                .chain
                .as_ref()
                .is_some_and(|chain| *chain != run.chain)
                || filter.status.is_some_and(|status| status != run.status)
            {
                continue;
            }
            if runs.len() == limit {
                next = runs.last().map(|last: &Run| last.id.clone());
                break;
            }
            runs.push(run);
        }
        Ok(RunPage { runs, next })
    }

    /// Every run with one of `statuses`, oldest first.
    pub fn runs_with_status(&self, statuses: &[RunStatus]) -> Result<Vec<Run>, StateError> {
        let mut found = Vec::new();
        for item in self.runs.iter() {
            let (key, bytes) = item?;
            let run: Run = decode(&String::from_utf8_lossy(&key), &bytes)?;
            if statuses.contains(&run.status) {
                found.push(run);
            }
        }
        Ok(found)
    }

    /// Deletes every finished run (succeeded, failed, cancelled) that ended before `cutoff`
    /// (runs without an end time count from their creation), with its idempotency key, in one
    /// transaction per run; queued and running runs are never touched. Returns the deleted runs.
    pub fn prune_runs(&self, cutoff: DateTime<Utc>) -> Result<Vec<Run>, StateError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut pruned = Vec::new();
        for item in self.runs.iter() {
            let (key, bytes) = item?;
            let Ok(run) = serde_json::from_slice::<Run>(&bytes) else {
                // Unreadable records are reported where they are read, never deleted blindly.
                continue;
            };
            if !run.status.is_finished() || run.finished_at.unwrap_or(run.created_at) >= cutoff {
                continue;
            }
            sled_gate::exclusive(|| {
                (&self.runs, &self.idempotency).transaction(|(runs, keys)| {
                    runs.remove(&key)?;
                    if let Some(idempotency_key) = &run.idempotency_key
                        && let Some(entry) = keys.get(idempotency_key.as_bytes())?
                        && serde_json::from_slice::<IdempotencyEntry>(&entry)
                            .is_ok_and(|entry| entry.run_id == run.id)
                    {
                        keys.remove(idempotency_key.as_bytes())?;
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<StateError>>(())
                })
            })
            .map_err(|err| match err {
                TransactionError::Abort(err) => err,
                TransactionError::Storage(err) => StateError::Sled(err),
            })?;
            pruned.push(run);
        }
        Ok(pruned)
    }

    /// Records a stage's process group durably (call right after spawn).
    pub async fn record_group(&self, group: &GroupRecord) -> Result<(), StateError> {
        let (this, pgid, record) = (self.clone(), group.pgid, encode(group));
        sled_gate::blocking(move || {
            sled_gate::shared(|| this.groups.insert(pgid.to_be_bytes(), record))?;
            this.commit.sync()
        })
        .await?;
        Ok(())
    }

    /// Forgets a process group once nothing of it is left.
    pub async fn forget_group(&self, pgid: i32) -> Result<(), StateError> {
        let this = self.clone();
        sled_gate::blocking(move || this.forget_group_blocking(pgid)).await
    }

    /// [`forget_group`](Self::forget_group), on the calling thread.
    pub fn forget_group_blocking(&self, pgid: i32) -> Result<(), StateError> {
        sled_gate::shared(|| self.groups.remove(pgid.to_be_bytes()))?;
        Ok(())
    }

    /// Every recorded process group (after a crash: the ones left behind).
    pub fn groups(&self) -> Result<Vec<GroupRecord>, StateError> {
        self.groups
            .iter()
            .map(|item| {
                let (key, bytes) = item?;
                decode(&format!("groups/{key:?}"), &bytes)
            })
            .collect()
    }

    /// Makes every write so far durable (a group commit, on the blocking pool).
    pub async fn flush(&self) -> Result<(), StateError> {
        self.commit.sync_async().await?;
        Ok(())
    }

    /// [`flush`](Self::flush), on the calling thread.
    pub fn flush_blocking(&self) -> Result<(), StateError> {
        self.commit.sync()?;
        Ok(())
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state records serialise to JSON")
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|source| StateError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use runner_api::Trigger;

    fn run(id: &str, chain: &str, status: RunStatus) -> Run {
        Run {
            id: id.into(),
            chain: chain.into(),
            status,
            trigger: Trigger::Api,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            cancel_requested_at: None,
            stages: vec![],
            error: None,
            idempotency_key: None,
            params: Default::default(),
            run_dir: "/tmp/x".into(),
            force: false,
        }
    }

    #[test]
    fn a_run_and_its_idempotency_key_are_stored_together() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state = State::open(dir.path()).unwrap();
            let first = run("01", "a", RunStatus::Queued);
            state
                .insert_run_blocking(&first, Some(("k", "f1")))
                .unwrap();
            state.flush_blocking().unwrap();
        }
        let state = State::open(dir.path()).unwrap();
        let (found, fingerprint) = state.idempotent_run("k").unwrap().unwrap();
        assert_eq!((found.id.as_str(), fingerprint.as_str()), ("01", "f1"));
        // An entry whose run is missing is reported, and nothing is inserted in its place.
        state.runs.remove("01").unwrap();
        assert!(matches!(
            state
                .insert_run_blocking(&run("02", "a", RunStatus::Queued), Some(("k", "f1")))
                .unwrap_err(),
            StateError::RunNotFound { .. }
        ));
        assert!(state.get_run("02").unwrap().is_none());
    }

    #[test]
    fn pruning_deletes_old_finished_runs_with_their_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let now = Utc::now();
        let days = |n| now - chrono::TimeDelta::days(n);
        let at = |id: &str, status, created: DateTime<Utc>, finished: Option<DateTime<Utc>>| {
            let mut run = run(id, "a", status);
            run.created_at = created;
            run.finished_at = finished;
            run.idempotency_key = Some(format!("key-{id}"));
            run
        };
        let runs = [
            at("01", RunStatus::Succeeded, days(40), Some(days(40))),
            at("02", RunStatus::Failed, days(40), Some(days(31))),
            at("03", RunStatus::Cancelled, days(40), None),
            at("04", RunStatus::Succeeded, days(40), Some(days(29))),
            at("05", RunStatus::Queued, days(40), None),
            at("06", RunStatus::Running, days(40), None),
        ];
        for run in &runs {
            let key = run.idempotency_key.clone().unwrap();
            state.insert_run_blocking(run, Some((&key, "f"))).unwrap();
        }
        // A key that a newer run took over after its first run is not the old run's to delete.
        state
            .idempotency
            .insert(
                "key-01",
                encode(&IdempotencyEntry {
                    run_id: "04".into(),
                    fingerprint: "f".into(),
                }),
            )
            .unwrap();

        let pruned = state.prune_runs(days(30)).unwrap();
        let ids: Vec<_> = pruned.iter().map(|run| run.id.as_str()).collect();
        assert_eq!(ids, ["01", "02", "03"]);
        for id in ["01", "02", "03"] {
            assert!(state.get_run(id).unwrap().is_none(), "{id}");
        }
        for id in ["04", "05", "06"] {
            assert!(state.get_run(id).unwrap().is_some(), "{id}");
            assert!(
                state
                    .idempotent_run(&format!("key-{id}"))
                    .unwrap()
                    .is_some()
            );
        }
        assert_eq!(state.idempotent_run("key-01").unwrap().unwrap().0.id, "04");
        assert!(state.idempotent_run("key-02").unwrap().is_none());
        // A pruned run's key can start a new run.
        let again = run("07", "a", RunStatus::Queued);
        assert!(matches!(
            state
                .insert_run_blocking(&again, Some(("key-02", "g")))
                .unwrap(),
            Inserted::New
        ));
        assert!(state.prune_runs(days(30)).unwrap().is_empty());
    }

    #[test]
    fn idempotency_lists_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        assert!(matches!(
            State::open(dir.path()).unwrap_err(),
            StateError::Locked { .. }
        ));

        let first = run("01", "a", RunStatus::Queued);
        assert!(matches!(
            state
                .insert_run_blocking(&first, Some(("k", "f1")))
                .unwrap(),
            Inserted::New
        ));
        match state
            .insert_run_blocking(&run("02", "a", RunStatus::Queued), Some(("k", "f1")))
            .unwrap()
        {
            Inserted::Existing { run, same_request } => {
                assert_eq!(run.id, "01");
                assert!(same_request);
            }
            Inserted::New => panic!("key reused"),
        }
        match state
            .insert_run_blocking(&run("02", "a", RunStatus::Queued), Some(("k", "f2")))
            .unwrap()
        {
            Inserted::Existing { same_request, .. } => assert!(!same_request),
            Inserted::New => panic!("key reused"),
        }
        for (id, chain, status) in [
            ("02", "b", RunStatus::Failed),
            ("03", "a", RunStatus::Succeeded),
            ("04", "a", RunStatus::Queued),
        ] {
            state
                .insert_run_blocking(&run(id, chain, status), None)
                .unwrap();
        }

        let page = state
            .list_runs_blocking(&RunFilter {
                chain: Some("a".into()),
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        let ids: Vec<_> = page.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["04", "03"]);
        assert_eq!(page.next.as_deref(), Some("03"));
        let page = state
            .list_runs_blocking(&RunFilter {
                chain: Some("a".into()),
                limit: 2,
                cursor: page.next,
                ..Default::default()
            })
            .unwrap();
        let ids: Vec<_> = page.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["01"]);
        assert_eq!(page.next, None);

        let queued = state.runs_with_status(&[RunStatus::Queued]).unwrap();
        let ids: Vec<_> = queued.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["01", "04"]);

        let updated = state
            .update_run_blocking("04", |run| run.status = RunStatus::Running)
            .unwrap();
        assert_eq!(updated.status, RunStatus::Running);
        assert_eq!(
            state.get_run("04").unwrap().unwrap().status,
            RunStatus::Running
        );
        assert!(matches!(
            state.update_run_blocking("nope", |_| {}).unwrap_err(),
            StateError::RunNotFound { .. }
        ));
    }
}
