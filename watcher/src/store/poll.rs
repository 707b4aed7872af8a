//! store/poll.rs: what one poll reads and writes: what is known about a fetch's items (point
//! reads: the cost grows with the fetch, never with the store), and the poll's commit: items
//! recorded in the compact layout (`store/layout.rs`), URL indexes, staged and held items and the
//! source's state (both its records, see `store/polled.rs`) in one transaction, flushed before
//! anything is sent.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sled::Transactional;
use sled_gate::Durability;

use super::layout::{self, FLAG_BASELINE, ItemRecord, fingerprint};
use super::{
    NEXT_SOURCE_ID, PollCommit, SourceState, Store, StoreError, abort, decode_id, decode_item,
    held, polled, to_json, tx_err, urls,
};
use crate::diff::Known;
use crate::identity::Item;

impl Store {
    /// What is known about `items` for this source (by id) and, for the items whose id is not
    /// known, this author (by identity key, see `store/urls.rs`): all that `diff` reads. Point
    /// reads only: the cost grows with the fetch's unknown items, not the store. A key not found
    /// is looked up again as the URL versions before the platform rules indexed the item under:
    /// an upgrade re-delivers nothing, and the alias records the new key.
    pub fn known_for(
        &self,
        source_key: &str,
        author: &str,
        items: &[Item],
    ) -> Result<(HashMap<String, Known>, HashSet<String>), StoreError> {
        let source = self.source_id(source_key)?;
        let mut ids = HashMap::new();
        let mut urls = HashSet::new();
        for item in items {
            if let Some(id) = source {
                let key = layout::item_key(id, &item.id);
                if let Some(v) = self.known.get(key)? {
                    let rec = decode_item(&key, &v)?;
                    // `diff` compares hashes as strings: the item's own when the fingerprints
                    // match, else one that never equals it.
                    let content_hash = if rec.content == fingerprint(&item.content_hash) {
                        item.content_hash.clone()
                    } else {
                        format!("fingerprint:{}", hex::encode(rec.content))
                    };
                    ids.insert(
                        item.id.clone(),
                        Known {
                            content_hash,
                            revision: rec.revision,
                        },
                    );
                }
            }
            // `diff` asks about the URL of an item whose id is unknown only: a known one costs
            // one lookup, so a poll of a feed with one new item costs two, not forty.
            if ids.contains_key(&item.id) {
                continue;
            }
            let Some(key) = item.identity_key() else {
                continue;
            };
            let known =
                |key| urls::known(&self.author_urls, &self.source_urls, author, source, key);
            let before = item.key_before();
            if known(key)? || before.map(known).transpose()?.unwrap_or(false) {
                urls.insert(key.to_owned());
            }
        }
        Ok((ids, urls))
    }

    /// Records a poll's items, stages those that owe a delivery and stores the source's new
    /// state (validators included) in one transaction, then flushes.
    pub async fn commit_poll(&self, commit: PollCommit) -> Result<(), StoreError> {
        let this = self.clone();
        // Staged items owe a delivery: durable before anything is sent. Recorded items and
        // validators alone may wait for sled's background flush (a crash then means one
        // refetch, never a lost article), which spares an fsync per poll.
        let durability = if commit.stage.is_empty() && commit.hold.is_empty() {
            Durability::Lazy
        } else {
            Durability::Durable
        };
        (self.writer)
            .write(durability, move || this.commit_poll_blocking(&commit))
            .await
    }

    fn commit_poll_blocking(&self, commit: &PollCommit) -> Result<(), StoreError> {
        let author = commit.state.author.as_str();
        let now = Utc::now();
        // Keys for staged items, taken before the transaction (see the module header); a key
        // left unused is a harmless gap.
        let seqs = sled_gate::shared(|| {
            (0..commit.stage.len() + commit.hold.len())
                .map(|_| self.db.generate_id())
                .collect::<Result<Vec<u64>, _>>()
        })?;
        // Encoded once, outside the transaction's closure (which may run again on a conflict).
        let staged_values: Vec<Vec<u8>> = commit.stage.iter().map(to_json).collect();
        let held_values: Vec<Vec<u8>> = commit.hold.iter().map(to_json).collect();
        let fingerprints: Vec<[u8; 16]> = (commit.record.iter())
            .map(|item| fingerprint(&item.content_hash))
            .collect();
        let flags = if commit.baseline { FLAG_BASELINE } else { 0 };
        sled_gate::exclusive(|| {
            (
                &self.sources,
                &self.known,
                &self.author_urls,
                &self.source_urls,
                &self.staged,
                &self.held,
                &self.source_ids,
                &self.meta,
                &self.polled,
            )
                .transaction(
                    |(
                        sources,
                        known,
                        author_urls,
                        source_urls,
                        staged,
                        held,
                        ids,
                        meta,
                        polled,
                    )| {
                        // A source's first commit allocates its id: nothing is known under it
                        // yet, so its items need no lookup (a cold round's baselines).
                        let (source, fresh) = match ids.get(commit.source_key.as_bytes())? {
                            Some(v) => (decode_id(&v), false),
                            None => {
                                let next = meta.get(NEXT_SOURCE_ID)?.map_or(1, |v| decode_id(&v));
                                meta.insert(NEXT_SOURCE_ID, &(next + 1).to_be_bytes())?;
                                ids.insert(commit.source_key.as_bytes(), &next.to_be_bytes())?;
                                (next, true)
                            }
                        };
                        let mut items_known = commit.state.items_known;
                        // An article another source of this author recorded since our diff (two
                        // sources for one blog, polled at once) is not staged twice.
                        let mut seqs = seqs.iter();
                        let waiting = (commit.stage.iter().zip(&staged_values))
                            .map(|st| (st, false))
                            .chain(commit.hold.iter().zip(&held_values).map(|st| (st, true)));
                        for ((st, value), hold) in waiting {
                            let Some(seq) = seqs.next() else { break };
                            let mine = layout::item_key(source, &st.item.id);
                            let elsewhere = match st.item.identity_key() {
                                Some(key) if !st.item.link_shared => {
                                    urls::recorded_elsewhere(author_urls, author, key, &mine)?
                                }
                                _ => false,
                            };
                            match (elsewhere, hold) {
                                (true, _) => {}
                                (false, false) => {
                                    staged.insert(&seq.to_be_bytes(), value.as_slice())?;
                                }
                                (false, true) => {
                                    held.insert(
                                        held::key(&commit.source_key, *seq),
                                        value.as_slice(),
                                    )?;
                                }
                            }
                        }
                        let mut written = HashSet::new();
                        for (item, content) in commit.record.iter().zip(&fingerprints) {
                            let key = layout::item_key(source, &item.id);
                            // (An id repeated within the fetch reads its first record.)
                            let old = if fresh && written.insert(key) {
                                None
                            } else {
                                known.get(key)?
                            };
                            let rec = match old {
                                Some(old) => ItemRecord {
                                    content: *content,
                                    revision: item.revision,
                                    ..decode_item(&key, &old).map_err(abort)?
                                },
                                None => {
                                    items_known += 1;
                                    ItemRecord {
                                        first_seen: now,
                                        content: *content,
                                        revision: item.revision,
                                        flags,
                                    }
                                }
                            };
                            known.insert(&key, &rec.encode())?;
                            if let Some(ident) = item.identity_key() {
                                urls::record(
                                    author_urls,
                                    source_urls,
                                    author,
                                    ident,
                                    source,
                                    &key,
                                    commit.baseline,
                                )?;
                            }
                        }
                        let (cold, hot) = polled::split(&SourceState {
                            items_known,
                            ..commit.state.clone()
                        });
                        let key = commit.source_key.as_bytes();
                        if sources.get(key)?.as_deref() != Some(cold.as_slice()) {
                            sources.insert(key, cold)?;
                        }
                        polled.insert(key, hot)?;
                        Ok(())
                    },
                )
        })
        .map_err(tx_err)
    }
}
