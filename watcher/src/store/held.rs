//! store/held.rs: the `held` tree: items a poll recorded as known but held as a flood, keyed by
//! source key, a 0 byte and a sequence number (so one source's items are one ordered prefix), each
//! a [`StagedItem`]. Counting them, listing them, and moving them out: released into `staged`
//! (each item removed from the hold in the same transaction that stages it) or discarded.

use std::collections::BTreeMap;

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{StagedItem, Store, StoreError, from_json, tx_err};

/// Items moved per transaction by release and discard: each move is atomic, and no transaction
/// grows with the size of a flood.
const CHUNK: usize = 1000;

/// The key of a held item.
pub(super) fn key(source_key: &str, seq: u64) -> Vec<u8> {
    [source_key.as_bytes(), &[0], &seq.to_be_bytes()].concat()
}

fn prefix(source_key: &str) -> Vec<u8> {
    [source_key.as_bytes(), &[0]].concat()
}

/// The source key of a held item's key.
fn source_of(key: &[u8]) -> String {
    let cut = key.len().saturating_sub(9);
    String::from_utf8_lossy(&key[..cut]).into_owned()
}

impl Store {
    /// How many items the source holds, counting no further than `cap`.
    pub fn held_count(&self, source_key: &str, cap: usize) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self.held.scan_prefix(prefix(source_key)).keys().take(cap) {
            k?;
            n += 1;
        }
        Ok(n)
    }

    /// How many items each source holds, by source key (sources holding none are left out).
    pub fn held_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut out = BTreeMap::new();
        for k in self.held.iter().keys() {
            *out.entry(source_of(&k?)).or_insert(0) += 1;
        }
        Ok(out)
    }

    /// Every held item, per source and oldest first. A record that cannot be read is skipped
    /// (and logged): it cannot be released either.
    pub fn held(&self) -> Result<Vec<StagedItem>, StoreError> {
        let mut out = Vec::new();
        for kv in self.held.iter() {
            let (k, v) = kv?;
            match from_json(&k, &v) {
                Ok(item) => out.push(item),
                Err(e) => {
                    tracing::error!(error = %crate::causes::one_line(&e), "held record skipped: it cannot be read");
                }
            }
        }
        Ok(out)
    }

    /// The keys of the held items `select` picks, with their records.
    fn held_picked(
        &self,
        select: &(dyn Fn(&StagedItem) -> bool + Send + Sync),
    ) -> Result<Vec<(sled::IVec, sled::IVec)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.held.iter() {
            let (k, v) = kv?;
            if from_json::<StagedItem>(&k, &v).is_ok_and(|item| select(&item)) {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// Stages the held items `select` picks for delivery, each removed from the hold in the
    /// transaction that stages it, then flushes. Returns how many were released.
    pub async fn release_held(
        &self,
        select: impl Fn(&StagedItem) -> bool + Send + Sync + 'static,
    ) -> Result<usize, StoreError> {
        self.take_held(select, |this, chunk| {
            // Keys taken before the transaction (see the module header of `store`).
            let seqs = sled_gate::shared(|| {
                (0..chunk.len())
                    .map(|_| this.db.generate_id())
                    .collect::<Result<Vec<u64>, _>>()
            })?;
            sled_gate::exclusive(|| {
                (&this.held, &this.staged).transaction(|(held, staged)| {
                    let mut moved = 0;
                    for ((k, v), seq) in chunk.iter().zip(&seqs) {
                        // Gone meanwhile: discarded (or released) by another command.
                        if held.remove(k)?.is_some() {
                            staged.insert(&seq.to_be_bytes(), v.clone())?;
                            moved += 1;
                        }
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(moved)
                })
            })
            .map_err(tx_err)
        })
        .await
    }

    /// Drops the held items `select` picks (they stay known, so they are never delivered), then
    /// flushes. Returns how many were dropped.
    pub async fn discard_held(
        &self,
        select: impl Fn(&StagedItem) -> bool + Send + Sync + 'static,
    ) -> Result<usize, StoreError> {
        self.take_held(select, |this, chunk| {
            sled_gate::exclusive(|| {
                this.held.transaction(|held| {
                    let mut dropped = 0;
                    for (k, _) in chunk {
                        if held.remove(k)?.is_some() {
                            dropped += 1;
                        }
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(dropped)
                })
            })
            .map_err(tx_err)
        })
        .await
    }

    /// Takes the held items `select` picks out of the hold, [`CHUNK`] at a time through `each`
    /// (one transaction per chunk, on the blocking pool), then flushes. Returns how many `each`
    /// took.
    async fn take_held(
        &self,
        select: impl Fn(&StagedItem) -> bool + Send + Sync + 'static,
        each: impl Fn(&Store, &[(sled::IVec, sled::IVec)]) -> Result<usize, StoreError> + Send + 'static,
    ) -> Result<usize, StoreError> {
        let this = self.clone();
        let n = sled_gate::blocking(move || {
            let mut n = 0;
            for chunk in this.held_picked(&select)?.chunks(CHUNK) {
                n += each(&this, chunk)?;
            }
            Ok::<_, StoreError>(n)
        })
        .await?;
        self.flush().await?;
        Ok(n)
    }
}
