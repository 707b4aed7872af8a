//! store/deliveries.rs: which deliveries of the outbox still need the daemon (pending, failed, or
//! done with a run it follows), kept in memory beside the outbox, with the newest delivery time.
//! The daemon's delivery pass (every second) reads those few, not every settled delivery the
//! outbox keeps for `keep_deliveries` (90 days by default), so its cost does not grow with the
//! history. Built by one scan of the outbox on first use, then kept by every write to it: only
//! this process writes the store (it holds the lock).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::{Store, StoreError, from_json};
use crate::delivery::{Delivery, Phase};

/// The index (`None` until first used).
#[derive(Debug, Default)]
pub(super) struct OpenDeliveries(Mutex<Option<Index>>);

#[derive(Debug, Default)]
pub(super) struct Index {
    open: BTreeSet<u64>,
    last_delivered: Option<DateTime<Utc>>,
}

impl Index {
    /// Notes the outbox's record `seq` as it is now (`None`: removed).
    pub(super) fn note(&mut self, seq: u64, delivery: Option<&Delivery>) {
        match delivery {
            Some(d) if d.phase() != Phase::Done || d.run_open() => {
                self.open.insert(seq);
            }
            _ => {
                self.open.remove(&seq);
            }
        }
        if let Some(at) = delivery.and_then(|d| d.delivered_at) {
            self.last_delivered = self.last_delivered.max(Some(at));
        }
    }
}

impl OpenDeliveries {
    fn lock(&self) -> MutexGuard<'_, Option<Index>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    /// The index, built if it is not yet. Writers of the outbox hold it while they write, so
    /// it never misses a change.
    pub(super) fn open_index(&self) -> Result<MutexGuard<'_, Option<Index>>, StoreError> {
        let mut guard = self.open_deliveries.lock();
        if guard.is_none() {
            let mut index = Index::default();
            for (seq, d) in self.deliveries()? {
                index.note(seq, Some(&d));
            }
            *guard = Some(index);
        }
        Ok(guard)
    }

    /// The deliveries that still need the daemon (pending, failed, or done with a run that is
    /// followed), oldest first. Reads those alone: the cost does not grow with the settled
    /// deliveries kept. A record that cannot be read is skipped (and reported once).
    pub fn unsettled_deliveries(&self) -> Result<Vec<(u64, Delivery)>, StoreError> {
        let seqs: Vec<u64> = (self.open_index()?.iter())
            .flat_map(|index| index.open.iter().copied())
            .collect();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let key = seq.to_be_bytes();
            let Some(v) = self.outbox.get(key)? else {
                continue;
            };
            match from_json(&key, &v) {
                Ok(d) => out.push((seq, d)),
                Err(e) => self.skip_unreadable("outbox", seq, &e),
            }
        }
        Ok(out)
    }

    /// When the newest delivery was sent (`None`: none kept).
    pub fn last_delivered_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.open_index()?.as_ref().and_then(|i| i.last_delivered))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::delivery::{DeliveryState, FollowedRun, RunFollow};

    fn delivery(id: &str) -> Delivery {
        Delivery {
            batch_id: format!("b{id}"),
            created_at: Utc::now(),
            format: crate::config::OutputFormat::DigitalDataEtl,
            authors: vec!["A".into()],
            items: vec![],
            config_path: PathBuf::from(format!("/o/b{id}.json")),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: Utc::now(),
            last_error: None,
            delivered_at: None,
            redeliveries: 0,
        }
    }

    fn done(mut d: Delivery, follow: RunFollow, at: DateTime<Utc>) -> Delivery {
        d.state = DeliveryState::Done(FollowedRun {
            handle: "webhook:r1".parse().unwrap(),
            follow,
            message: None,
            checked_at: None,
            errors: 0,
            unreachable_since: None,
        });
        d.delivered_at = Some(at);
        d
    }

    fn unsettled(store: &Store) -> Vec<String> {
        (store.unsettled_deliveries().unwrap().into_iter())
            .map(|(_, d)| d.batch_id)
            .collect()
    }

    #[tokio::test]
    async fn the_delivery_pass_reads_only_what_is_not_settled_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (delivery("1"), delivery("2"), delivery("3"));
        let early = Utc::now() - chrono::Duration::hours(3);
        let late = Utc::now() - chrono::Duration::hours(1);
        {
            let store = Store::open(dir.path()).unwrap();
            for d in [&a, &b, &c] {
                assert!(store.form_batch(&[], d).await.unwrap());
            }
            assert_eq!(
                unsettled(&store),
                [a.batch_id.clone(), b.batch_id.clone(), c.batch_id.clone()]
            );
            let seqs: Vec<u64> = (store.deliveries().unwrap().iter())
                .map(|(s, _)| *s)
                .collect();
            // Settled: its run ended. Still followed: its run is open.
            let ended = RunFollow::Reported(trigger_client::RunState::Succeeded);
            (store.put_delivery(seqs[0], &done(a.clone(), ended, late)))
                .await
                .unwrap();
            (store.put_delivery(seqs[1], &done(b.clone(), RunFollow::Started, early)))
                .await
                .unwrap();
            assert_eq!(unsettled(&store), [b.batch_id.clone(), c.batch_id.clone()]);
            assert_eq!(store.last_delivered_at().unwrap(), Some(late));
            assert_eq!(store.deliveries().unwrap().len(), 3, "the outbox keeps it");
        }
        // Rebuilt from the outbox by the next process.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(unsettled(&store), [b.batch_id.clone(), c.batch_id.clone()]);
        assert_eq!(store.last_delivered_at().unwrap(), Some(late));
        let cutoff = Utc::now();
        assert_eq!(store.prune_deliveries(cutoff).await.unwrap(), 1);
        assert_eq!(unsettled(&store), [b.batch_id.clone(), c.batch_id.clone()]);
    }
}
