//! store.rs: the only module that touches sled. Per source: validators, last poll, failures,
//! identity mode (serde records), and a small id. Per item, in a compact binary layout (see
//! `store/layout.rs`): first seen, a content fingerprint, revision (items that drop off a feed
//! stay: a tombstone); the author's URL index (see `store/urls.rs`). The staged items and the
//! outbox of deliveries; the items held as a flood (`held`, see `store/held.rs`). A schema
//! version (a store of schema 1 is migrated on open, see `store/migrate.rs`), and an flock'd lock
//! file that records the owner's pid.
//!
//! sled discipline (shared with the embedded runner's state in this process, see `sled_gate`):
//! transactions run under `sled_gate::exclusive` and never call `generate_id`; single-key writes
//! and flushes run under `sled_gate::shared`; so a transaction never overlaps a flush, which
//! deadlocks sled 0.34. A poll's writes (attempt, result, commit) and every flush go to the
//! store's writer thread (`sled_gate::Writer`), one flush for all the writes waiting on it; the
//! other writes and transactions run on tokio's blocking pool (the async methods), so polls, the
//! status endpoint and shutdown keep going while the disk is slow; point reads (served from
//! sled's cache) and the small scans stay on the caller's thread.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::delivery::{Delivery, Phase};
use crate::identity::{IdentityMode, Item};

mod deliveries;
mod footprint;
mod held;
pub mod layout;
mod manual;
mod migrate;
mod open;
mod poll;
mod polled;
mod push;
mod urls;

pub use self::footprint::{Footprint, TreeFootprint, dir_size};
use self::layout::{ItemRecord, SourceId};
pub use self::manual::ManualRecord;
pub use self::open::Tuning;
use self::open::{acquire_lock, open_sled};
pub use self::polled::INTERRUPTED;
pub use self::push::{PushState, PushSubscription};

/// Bumped when the on-disk layout changes incompatibly (2: the compact layout of
/// `store/layout.rs`; a store of 1 is migrated on open).
pub const SCHEMA_VERSION: u32 = 2;

/// Where `meta` keeps the schema version; written last by a migration.
const SCHEMA_KEY: &str = "schema_version";

/// Where `meta` keeps the next source id to hand out.
const NEXT_SOURCE_ID: &str = "next_source_id";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "state dir `{}` is in use by pid {pid}; hint: stop that watcher, or ask it with `watcher status`",
        dir.display()
    )]
    Locked { dir: PathBuf, pid: String },
    #[error("cannot use state dir `{}`; hint: check that it exists and is writable", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "state dir `{}` was written by a newer watcher (schema {found}, this build reads up to {SCHEMA_VERSION}); hint: upgrade the watcher or point state_dir elsewhere",
        dir.display()
    )]
    NewerSchema { dir: PathBuf, found: u32 },
    #[error("sled store failed; hint: check free disk space and permissions of the state dir")]
    Sled(#[from] sled::Error),
    #[error("stored record `{key}` is corrupt")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("stored item record `{key}` is corrupt: {len} bytes")]
    CorruptItem { key: String, len: usize },
    #[error("stored poll record of source `{key}` is corrupt: {len} bytes")]
    CorruptPolled { key: String, len: usize },
    #[error(
        "cannot migrate state dir `{}` to schema {SCHEMA_VERSION}; hint: the old state dir is kept as `{}`: check free disk space, then start the watcher again",
        dir.display(), backup.display()
    )]
    Migrate {
        dir: PathBuf,
        backup: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the URL `{url}` stored for source `{source_url}` is invalid")]
    InvalidUrl {
        source_url: String,
        url: String,
        #[source]
        source: url::ParseError,
    },
}

/// What the store knows about one source. Stored as JSON without the fields that hold their
/// default (they read back as it): a source's record is rewritten by every poll.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SourceState {
    pub author: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// One line: "ok: 2 new", "not modified", "error: ...".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub items_known: u64,
    pub baseline_done: bool,
    pub identity_mode: IdentityMode,
    #[serde(skip_serializing_if = "is_zero")]
    pub identity_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due_reason: Option<String>,
    /// Where the source lives now, after a permanent redirect (301/308).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_url: Option<String>,
    /// 410 Gone: the source is asked again daily, for 30 days after `gone_since`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
    /// The first 410 of the current run of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gone_since: Option<DateTime<Utc>>,
    /// For `sites` without a selector: the feed found by autodiscovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovered_feed: Option<String>,
    /// The sitemap is an index: its children can change while it does not, so it is fetched
    /// without validators.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sitemap_index: bool,
    /// For `sites` without a selector whose feed is not found yet: the candidates autodiscovery
    /// tried in vain (at most 3), not fetched again while the page names the same ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discovery_tried: Vec<String>,
    /// The feed's own `<ttl>` (seconds), remembered for polls that get a 304.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed_ttl_secs: Option<u64>,
    /// The interval the author's publishing frequency suggests (seconds), remembered for 304s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_secs: Option<u64>,
    /// New items whose link pointed into a private network (see `ssrf`): recorded, never
    /// delivered. A running total.
    #[serde(skip_serializing_if = "is_zero")]
    pub links_refused: u64,
}

/// For `skip_serializing_if`: a zero count is left out.
fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

impl SourceState {
    /// The URL to poll: where the source moved to (301/308), else the feed autodiscovery found,
    /// else the configured one.
    pub fn poll_url(&self) -> Result<url::Url, StoreError> {
        let url = (self.current_url.as_deref())
            .or(self.discovered_feed.as_deref())
            .unwrap_or(&self.url);
        url::Url::parse(url).map_err(|source| StoreError::InvalidUrl {
            source_url: self.url.clone(),
            url: url.to_owned(),
            source,
        })
    }

    /// What scheduling needs of this state.
    pub fn due(&self) -> crate::schedule::Due {
        crate::schedule::Due {
            gone: self.gone,
            gone_since: self.gone_since,
            last_poll: self.last_poll,
            next_due: self.next_due,
            by_interval: self.next_due_reason.as_deref() == Some("interval"),
        }
    }
}

/// An item waiting to be grouped into a batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StagedItem {
    pub author: String,
    pub source: String,
    pub found_at: DateTime<Utc>,
    pub item: Item,
}

/// Everything one successful poll writes, committed in one transaction.
#[derive(Debug, Clone)]
pub struct PollCommit {
    pub source_key: String,
    pub state: SourceState,
    /// Items to record as known (new, aliases, updated: their hash is refreshed).
    pub record: Vec<Item>,
    /// Items that owe a delivery.
    pub stage: Vec<StagedItem>,
    /// New items held as a flood (recorded as known, delivered only on `watcher release`).
    pub hold: Vec<StagedItem>,
    /// The source's first poll, recorded without delivering: its URLs hide nothing another
    /// source finds new (see `store/urls.rs`).
    pub baseline: bool,
}

/// The sled store of one state dir, held exclusively by this process. Cheap to clone: every
/// clone is the same store (and holds the lock).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Runs the hot writes (a poll's attempt, result and commit) in order on one thread, one
    /// flush for all that wait for the disk (see `sled_gate::Writer`); every flush goes through
    /// it.
    writer: sled_gate::Writer,
    meta: sled::Tree,
    /// Source key → the source's state, but for what every poll changes (see `store/polled.rs`).
    sources: sled::Tree,
    /// Source key → what every poll changes (see `store/polled.rs`).
    polled: sled::Tree,
    /// Source key → [`SourceId`].
    source_ids: sled::Tree,
    /// Every item ever recorded (see `store/layout.rs`).
    known: sled::Tree,
    /// The author URL index and the baselines' (see `store/urls.rs`).
    author_urls: sled::Tree,
    source_urls: sled::Tree,
    staged: sled::Tree,
    outbox: sled::Tree,
    batches: sled::Tree,
    /// Held items, by source key and sequence (see `store/held.rs`).
    held: sled::Tree,
    /// Which deliveries still need the daemon (see `store/deliveries.rs`).
    open_deliveries: Arc<deliveries::OpenDeliveries>,
    /// Records skipped because they cannot be read (tree, sequence), reported once each.
    unreadable: Arc<std::sync::Mutex<std::collections::BTreeSet<(&'static str, u64)>>>,
    _lock: Arc<nix::fcntl::Flock<File>>,
}

/// Key of a source: author and configured URL.
pub fn source_key(author: &str, url: &str) -> String {
    format!("{author}\u{1f}{url}")
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialize")
}

fn from_json<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace(['\0', '\u{1f}'], "/"),
        source,
    })
}

/// A stored id (source id or counter); a malformed one reads as 0, never handed out.
fn decode_id(bytes: &[u8]) -> SourceId {
    bytes.try_into().map_or(0, SourceId::from_be_bytes)
}

fn decode_item(key: &[u8], bytes: &[u8]) -> Result<ItemRecord, StoreError> {
    ItemRecord::decode(bytes).ok_or_else(|| StoreError::CorruptItem {
        key: hex::encode(key),
        len: bytes.len(),
    })
}

/// The schema version `meta` records (`None`: a new store).
fn schema_of(meta: &sled::Tree) -> Result<Option<u32>, StoreError> {
    Ok(meta
        .get(SCHEMA_KEY)?
        .map(|v| u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]))))
}

fn abort<E>(e: E) -> ConflictableTransactionError<E> {
    ConflictableTransactionError::Abort(e)
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl Store {
    /// Opens (creating) the store in `dir`. Fails with the owner's pid when another process holds
    /// it, and refuses a store written by a newer schema. A store of schema 1 is migrated first
    /// (see `store/migrate.rs`); one whose migration was interrupted is completed.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_tuned(dir, &Tuning::default())
    }

    /// [`Store::open`] with sled settings other than the defaults (for measurements).
    pub fn open_tuned(dir: &Path, tuning: &Tuning) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = acquire_lock(dir)?;
        migrate::finish_interrupted(dir, tuning)?;
        let mut db = open_sled(&dir.join("db"), tuning)?;
        let mut meta = db.open_tree("meta")?;
        match schema_of(&meta)? {
            Some(found) if found > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    dir: dir.to_path_buf(),
                    found,
                });
            }
            Some(SCHEMA_VERSION) => {}
            Some(_) => {
                drop((db, meta));
                migrate::run(dir, tuning)?;
                db = open_sled(&dir.join("db"), tuning)?;
                meta = db.open_tree("meta")?;
            }
            None => {
                sled_gate::shared(|| meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()))?;
            }
        }
        Ok(Store {
            sources: db.open_tree("sources")?,
            polled: db.open_tree("polled")?,
            source_ids: db.open_tree("source_ids")?,
            known: db.open_tree("known")?,
            author_urls: db.open_tree("author_urls")?,
            source_urls: db.open_tree("source_urls")?,
            staged: db.open_tree("staged")?,
            outbox: db.open_tree("outbox")?,
            batches: db.open_tree("batches")?,
            held: db.open_tree("held")?,
            meta,
            writer: sled_gate::Writer::new(db.clone()).map_err(io)?,
            db,
            open_deliveries: Arc::default(),
            unreadable: Arc::default(),
            _lock: Arc::new(lock),
        })
    }

    /// The id of a source that committed a poll (`None`: none yet).
    fn source_id(&self, source_key: &str) -> Result<Option<SourceId>, StoreError> {
        Ok(self.source_ids.get(source_key)?.map(|v| decode_id(&v)))
    }

    /// Staged items, oldest first, with their keys. A record that cannot be read is skipped
    /// (and reported once), so one bad record does not stop every delivery; it stays in the tree
    /// for inspection.
    pub fn staged(&self) -> Result<Vec<(u64, StagedItem)>, StoreError> {
        self.readable(&self.staged, "staged")
    }

    /// Moves staged items into one delivery, atomically. A batch id already in the outbox (a batch
    /// rebuilt after a crash) is not added twice. Returns whether it was added.
    pub async fn form_batch(
        &self,
        staged_keys: &[u64],
        delivery: &Delivery,
    ) -> Result<bool, StoreError> {
        let (this, staged_keys, delivery) = (self.clone(), staged_keys.to_vec(), delivery.clone());
        let added = sled_gate::blocking(move || {
            // Taken before the transaction (see the module header).
            let seq = sled_gate::shared(|| this.db.generate_id())?;
            let added = sled_gate::exclusive(|| {
                (&this.staged, &this.outbox, &this.batches).transaction(
                    |(staged, outbox, batches)| {
                        for seq in &staged_keys {
                            staged.remove(&seq.to_be_bytes())?;
                        }
                        if batches.get(delivery.batch_id.as_bytes())?.is_some() {
                            return Ok(false);
                        }
                        outbox.insert(&seq.to_be_bytes(), to_json(&delivery))?;
                        batches.insert(delivery.batch_id.as_bytes(), &seq.to_be_bytes())?;
                        Ok(true)
                    },
                )
            })
            .map_err(tx_err)?;
            if added {
                let mut index = this.open_index()?;
                index.iter_mut().for_each(|i| i.note(seq, Some(&delivery)));
            }
            Ok::<_, StoreError>(added)
        })
        .await?;
        self.flush().await?;
        Ok(added)
    }

    /// Every delivery in the outbox, oldest first. A record that cannot be read is skipped (and
    /// reported once), so one bad record does not stop every delivery.
    pub fn deliveries(&self) -> Result<Vec<(u64, Delivery)>, StoreError> {
        self.readable(&self.outbox, "outbox")
    }

    /// Removes done deliveries whose run ended (or is not followed) before `cutoff`. Their batch
    /// ids stay known, so a batch rebuilt after a crash is still never added twice.
    pub async fn prune_deliveries(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        let this = self.clone();
        let n = sled_gate::blocking(move || {
            let mut n = 0;
            for (seq, d) in this.deliveries()? {
                if d.phase() == Phase::Done
                    && !d.run_open()
                    && d.delivered_at.is_some_and(|t| t < cutoff)
                {
                    let mut index = this.open_index()?;
                    sled_gate::shared(|| this.outbox.remove(seq.to_be_bytes()))?;
                    index.iter_mut().for_each(|i| i.note(seq, None));
                    n += 1;
                }
            }
            Ok::<_, StoreError>(n)
        })
        .await?;
        if n > 0 {
            self.flush().await?;
        }
        Ok(n)
    }

    /// Stores a delivery's new state without waiting for the disk (run-following bookkeeping).
    pub async fn put_delivery_lazy(&self, seq: u64, delivery: &Delivery) -> Result<(), StoreError> {
        let (this, delivery) = (self.clone(), delivery.clone());
        sled_gate::blocking(move || {
            let mut index = this.open_index()?;
            let value = to_json(&delivery);
            sled_gate::shared(|| this.outbox.insert(seq.to_be_bytes(), value))?;
            index.iter_mut().for_each(|i| i.note(seq, Some(&delivery)));
            Ok::<_, StoreError>(())
        })
        .await
    }

    pub fn delivery_by_batch(&self, batch_id: &str) -> Result<Option<(u64, Delivery)>, StoreError> {
        let Some(seq) = self.batches.get(batch_id.as_bytes())? else {
            return Ok(None);
        };
        let Some(v) = self.outbox.get(&seq)? else {
            return Ok(None);
        };
        let seq_n = u64::from_be_bytes(seq.as_ref().try_into().unwrap_or([0; 8]));
        Ok(Some((seq_n, from_json(&seq, &v)?)))
    }

    /// Stores a delivery's new state and flushes.
    pub async fn put_delivery(&self, seq: u64, delivery: &Delivery) -> Result<(), StoreError> {
        self.put_delivery_lazy(seq, delivery).await?;
        self.flush().await
    }

    /// Makes every write so far durable: a durable no-op on the writer thread, so it shares the
    /// flush of the writes queued with it (see `sled_gate::Writer`).
    pub async fn flush(&self) -> Result<(), StoreError> {
        (self.writer)
            .write(sled_gate::Durability::Durable, || Ok(()))
            .await
    }

    /// The records skipped so far because they cannot be read, as `tree/sequence`.
    pub fn unreadable(&self) -> Vec<String> {
        let skipped = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
        skipped
            .iter()
            .map(|(tree, seq)| format!("{tree}/{seq}"))
            .collect()
    }

    /// Every readable record of `tree` (keyed by sequence number), oldest first; one that cannot
    /// be read is skipped and reported once. Only sled failing fails the scan.
    fn readable<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        name: &'static str,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let mut out = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            let seq = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
            match from_json(&k, &v) {
                Ok(record) => out.push((seq, record)),
                Err(e) => self.skip_unreadable(name, seq, &e),
            }
        }
        Ok(out)
    }

    /// Remembers an unreadable record and logs it the first time.
    fn skip_unreadable(&self, tree: &'static str, seq: u64, e: &StoreError) {
        let mut skipped = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
        if skipped.insert((tree, seq)) {
            tracing::error!(tree, record = seq, error = %crate::causes::one_line(e), "record skipped: it cannot be read; the others are delivered (`watcher status` lists it)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, url: &str) -> Item {
        Item {
            id: id.into(),
            canonical_url: Some(url.into()),
            link_shared: false,
            title: Some("t".into()),
            content_hash: "h".into(),
            published: None,
            revision: 0,
            keys: Default::default(),
        }
    }

    #[tokio::test]
    async fn poll_commit_records_items_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = source_key("A", "https://x/feed");
        {
            let store = Store::open(dir.path()).unwrap();
            let state = SourceState {
                author: "A".into(),
                etag: Some("\"v1\"".into()),
                ..Default::default()
            };
            let it = item("g:1", "https://x/1");
            store
                .commit_poll(PollCommit {
                    source_key: key.clone(),
                    state,
                    record: vec![it.clone()],
                    stage: vec![StagedItem {
                        author: "A".into(),
                        source: "https://x/feed".into(),
                        found_at: Utc::now(),
                        item: it,
                    }],
                    hold: vec![],
                    baseline: false,
                })
                .await
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let state = store.source(&key).unwrap().unwrap();
        assert_eq!(state.etag.as_deref(), Some("\"v1\""));
        assert_eq!(state.items_known, 1);
        let (ids, urls) = store
            .known_for(
                &key,
                "A",
                &[item("g:1", "https://x/1"), item("g:2", "https://x/2")],
            )
            .unwrap();
        assert!(ids.contains_key("g:1") && !ids.contains_key("g:2"));
        assert!(
            urls.is_empty(),
            "g:1 is known by id: its URL is not asked about"
        );
        let (ids, urls) = store
            .known_for(&key, "A", &[item("g:1b", "https://x/1")])
            .unwrap();
        assert!(ids.is_empty() && urls.contains("https://x/1"));
        assert_eq!(store.staged().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_first_commit_counts_a_repeated_id_once_and_later_commits_find_its_items() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = source_key("A", "https://x/feed");
        let commit = |record: Vec<Item>, known: u64, baseline| PollCommit {
            source_key: key.clone(),
            state: SourceState {
                author: "A".into(),
                items_known: known,
                ..Default::default()
            },
            record,
            stage: vec![],
            hold: vec![],
            baseline,
        };
        // The baseline allocates the source's id and skips the lookups, but not for a repeat.
        let (one, two) = (item("g:1", "https://x/1"), item("g:2", "https://x/2"));
        let baseline = vec![one.clone(), one.clone(), two.clone()];
        store.commit_poll(commit(baseline, 0, true)).await.unwrap();
        let known = store.source(&key).unwrap().unwrap().items_known;
        assert_eq!(known, 2);
        let changed = Item {
            content_hash: "h2".into(),
            revision: 1,
            ..one.clone()
        };
        let later = vec![changed, item("g:3", "https://x/3")];
        store
            .commit_poll(commit(later, known, false))
            .await
            .unwrap();
        assert_eq!(store.source(&key).unwrap().unwrap().items_known, 3);
        let (ids, _) = store.known_for(&key, "A", &[one, two]).unwrap();
        assert_eq!(ids["g:1"].revision, 1, "the update kept its record");
        assert_eq!(ids["g:2"].revision, 0);
    }

    #[test]
    fn a_source_record_leaves_out_its_defaults_and_reads_back_the_same() {
        let state = SourceState {
            author: "A".into(),
            url: "https://x/feed".into(),
            etag: Some("\"v1\"".into()),
            items_known: 20,
            baseline_done: true,
            ..Default::default()
        };
        let json = String::from_utf8(to_json(&state)).unwrap();
        assert!(!json.contains("null") && !json.contains("gone"), "{json}");
        let back: SourceState = from_json(b"k", json.as_bytes()).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn second_open_names_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("in use by pid {}", std::process::id())),
            "{msg}"
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path().join("db")).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(dir.path()).err().unwrap();
        assert!(
            err.to_string().contains("written by a newer watcher"),
            "{err}"
        );
    }
}
