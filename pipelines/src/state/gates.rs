//! The store side of gates and budgets: the `gates` and `spend` trees. Admitting a stage (count
//! the run's links in, decide, check and charge the budget, take the links) is one transaction
//! over both trees, so two concurrent runs can never both pass a check; a gated stage's success
//! and its gate's reset are one transaction over `runs` and `gates`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use runner_api::Run;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, abort};

use super::{State, StateError, decode, encode};
use crate::budget::{Charge, Ledger};
use crate::chain::{Amount, Budget, Gate};
use crate::gate::{Deferral, GateRecord};

/// What [`State::admit`] decided for one attempt of one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The attempt may start (its cost, if any, is charged; the gate's links are its own).
    Open,
    /// The stage does not run now.
    Deferred(Deferral),
}

/// One stage's attempt asking to start.
#[derive(Debug, Clone)]
pub struct Admit {
    pub chain: String,
    pub stage: String,
    pub run_id: String,
    pub attempt: u32,
    /// The stage's gate, checked on the first attempt only.
    pub gate: Option<Gate>,
    /// Digests of the links the run brings to the gate (none for catch-up runs).
    pub links: BTreeSet<String>,
    /// The chain's budget and the stage's cost.
    pub cost: Option<(Budget, Amount)>,
    /// A forced run passes every gate and budget (its cost is still charged).
    pub force: bool,
    pub now: DateTime<Utc>,
}

fn gate_key(chain: &str, stage: &str) -> String {
    format!("{chain}/{stage}")
}

fn settle<T>(result: Result<T, TransactionError<StateError>>) -> Result<T, StateError> {
    result.map_err(|err| match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => StateError::Sled(err),
    })
}

impl State {
    /// Decides and records one attempt's admission, durably (on the blocking pool).
    pub async fn admit(&self, request: Admit) -> Result<Admission, StateError> {
        let this = self.clone();
        sled_gate::blocking(move || {
            let admission = this.admit_blocking(&request)?;
            this.commit.sync()?;
            Ok(admission)
        })
        .await
    }

    /// [`admit`](Self::admit) on the calling thread, without the flush.
    pub fn admit_blocking(&self, request: &Admit) -> Result<Admission, StateError> {
        let key = gate_key(&request.chain, &request.stage);
        sled_gate::exclusive(|| {
            settle((&self.gates, &self.spend).transaction(|(gates, spend)| {
                let mut record: Option<GateRecord> = match request.gate {
                    None => None,
                    Some(_) => Some(match gates.get(key.as_bytes())? {
                        Some(bytes) => decode(&key, &bytes).or_else(abort)?,
                        None => GateRecord::default(),
                    }),
                };
                let mut decision = Ok(());
                if let (Some(record), Some(gate)) = (record.as_mut(), &request.gate) {
                    record.arrive(request.links.iter().cloned(), request.now);
                    if !request.force {
                        decision = record.decide(gate, request.now);
                    }
                }
                let mut ledger = None;
                if decision.is_ok()
                    && let Some((budget, cost)) = &request.cost
                {
                    let mut found: Ledger = match spend.get(request.chain.as_bytes())? {
                        Some(bytes) => decode(&request.chain, &bytes).or_else(abort)?,
                        None => Ledger::default(),
                    };
                    let charge = Charge {
                        at: request.now,
                        milli: cost.milli(),
                        run_id: request.run_id.clone(),
                        stage: request.stage.clone(),
                        attempt: request.attempt,
                    };
                    decision = found.try_charge(budget, charge, request.force);
                    ledger = Some(found);
                }
                if let Some(record) = record.as_mut() {
                    if decision.is_ok() {
                        record.take(&request.run_id);
                    }
                    gates.insert(key.as_bytes(), encode(record))?;
                }
                if decision.is_ok()
                    && let Some(ledger) = &ledger
                {
                    spend.insert(request.chain.as_bytes(), encode(ledger))?;
                }
                Ok(match decision {
                    Ok(()) => Admission::Open,
                    Err(deferral) => Admission::Deferred(deferral),
                })
            }))
        })
    }

    /// Changes run `id` (a gated stage's success) and resets the stage's gate in one
    /// transaction, durably (on the blocking pool).
    pub async fn gate_succeeded(
        &self,
        id: &str,
        change: impl FnOnce(&mut Run) + Send + 'static,
        chain: &str,
        stage: &str,
        now: DateTime<Utc>,
    ) -> Result<Run, StateError> {
        let this = self.clone();
        let (id, key) = (id.to_owned(), gate_key(chain, stage));
        sled_gate::blocking(move || {
            let _guard = this
                .write
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let mut run = this
                .get_run(&id)?
                .ok_or_else(|| StateError::RunNotFound { id: id.clone() })?;
            change(&mut run);
            let bytes = encode(&run);
            sled_gate::exclusive(|| {
                settle((&this.runs, &this.gates).transaction(|(runs, gates)| {
                    let mut record: GateRecord = match gates.get(key.as_bytes())? {
                        Some(found) => decode(&key, &found).or_else(abort)?,
                        None => GateRecord::default(),
                    };
                    record.succeeded(&id, now);
                    runs.insert(id.as_bytes(), bytes.as_slice())?;
                    gates.insert(key.as_bytes(), encode(&record))?;
                    Ok(())
                }))
            })?;
            this.commit.sync()?;
            Ok(run)
        })
        .await
    }

    /// A gated stage of `run_id` failed or was stopped: its links wait again and `gate_retry`
    /// starts.
    pub fn gate_failed_blocking(
        &self,
        chain: &str,
        stage: &str,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let key = gate_key(chain, stage);
        self.change_gate(&key, |record| record.failed(run_id, now))
    }

    /// At startup: every attempt that held links is over (it was interrupted), so their links
    /// wait again and count as a failure.
    pub fn release_in_flight_blocking(&self, now: DateTime<Utc>) -> Result<(), StateError> {
        let keys: Vec<String> = self
            .gates
            .iter()
            .keys()
            .map(|key| key.map(|key| String::from_utf8_lossy(&key).into_owned()))
            .collect::<Result<_, _>>()?;
        for key in keys {
            self.change_gate(&key, |record| {
                let runs: Vec<String> = record.in_flight.keys().cloned().collect();
                for run_id in runs {
                    record.failed(&run_id, now);
                }
            })?;
        }
        Ok(())
    }

    fn change_gate(&self, key: &str, change: impl Fn(&mut GateRecord)) -> Result<(), StateError> {
        sled_gate::exclusive(|| {
            settle(self.gates.transaction(|gates| {
                let Some(bytes) = gates.get(key.as_bytes())? else {
                    return Ok(());
                };
                let mut record: GateRecord = decode(key, &bytes).or_else(abort)?;
                let before = record.clone();
                change(&mut record);
                if record != before {
                    gates.insert(key.as_bytes(), encode(&record))?;
                }
                Ok::<_, ConflictableTransactionError<StateError>>(())
            }))
        })
    }

    /// The counters of one gated stage (default before any run reached it).
    pub fn gate_record(&self, chain: &str, stage: &str) -> Result<GateRecord, StateError> {
        let key = gate_key(chain, stage);
        match self.gates.get(key.as_bytes())? {
            Some(bytes) => decode(&key, &bytes),
            None => Ok(GateRecord::default()),
        }
    }

    /// The spend records of one chain.
    pub fn ledger(&self, chain: &str) -> Result<Ledger, StateError> {
        match self.spend.get(chain.as_bytes())? {
            Some(bytes) => decode(chain, &bytes),
            None => Ok(Ledger::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn admit(run_id: &str, gate: Option<Gate>, links: &[&str], budget: &Budget) -> Admit {
        Admit {
            chain: "c".into(),
            stage: "paid".into(),
            run_id: run_id.into(),
            attempt: 1,
            gate,
            links: links.iter().map(|l| l.to_string()).collect(),
            cost: Some((budget.clone(), Amount(6_000))),
            force: false,
            now: Utc::now(),
        }
    }

    #[test]
    fn concurrent_attempts_never_both_pass_the_budget_or_take_the_same_links() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let budget = Budget {
            limit: Amount(10_000),
            per: Duration::from_secs(86400),
        };
        let gate = Gate {
            min_new_links: Some(1),
            or_after: None,
            retry: Duration::from_secs(86400),
        };
        let opened: Vec<Admission> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (state, budget, gate) = (&state, &budget, gate.clone());
                    scope.spawn(move || {
                        state
                            .admit_blocking(&admit(
                                &format!("r{i}"),
                                Some(gate),
                                &[&format!("l{i}")],
                                budget,
                            ))
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let open = opened.iter().filter(|a| **a == Admission::Open).count();
        assert_eq!(open, 1, "{opened:?}");
        assert!(
            opened.iter().all(|a| *a == Admission::Open
                || matches!(a, Admission::Deferred(Deferral::Budget { .. }))),
            "the gate was open for all, the budget for one: {opened:?}"
        );
        let ledger = state.ledger("c").unwrap();
        assert_eq!(ledger.charges.len(), 1);
        let record = state.gate_record("c", "paid").unwrap();
        assert_eq!(record.in_flight.len(), 1, "one attempt holds links");
        let taken = record.in_flight.values().next().unwrap().len();
        assert_eq!(taken + record.waiting.len(), 8, "{record:?}");

        // A restart finds the attempt interrupted: its link waits again, as after a failure.
        state.release_in_flight_blocking(Utc::now()).unwrap();
        let record = state.gate_record("c", "paid").unwrap();
        assert!(record.in_flight.is_empty(), "{record:?}");
        assert_eq!(record.waiting.len(), 8);
        assert!(record.last_failure.is_some());
    }
}
