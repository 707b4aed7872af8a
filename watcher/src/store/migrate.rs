//! store/migrate.rs: the one store migration, schema 1 (JSON item records keyed by source key and
//! item id, URL indexes keyed by whole URLs) → schema 2 (the compact layout of `store/layout.rs`).
//!
//! Under the state dir's lock, on open: (1) the state dir is copied beside itself as
//! `<state dir>.schema1` (through a `.partial` name, renamed when whole; kept for the user;
//! without the embedded runner's `pipelines/`, which is not migrated);
//! (2) a fresh sled db `db.migrating` is built from `db`: sources, staged items, outbox, batches,
//! holds and meta copied as they are, items and URL indexes converted, sled's id counter carried
//! over; flushed, then `schema_version` written last and flushed; (3) `db` is removed and
//! `db.migrating` renamed to `db`. A process killed anywhere loses nothing: `db` goes only once
//! `db.migrating` is complete, and the next open finishes a complete `db.migrating` (or throws an
//! incomplete one away and starts again). A fresh db also lets sled settings that are fixed per
//! db (segment size) differ from schema 1's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::layout::{self, ItemRecord, SourceId};
use super::open::{Tuning, open_sled};
use super::{NEXT_SOURCE_ID, SCHEMA_KEY, SCHEMA_VERSION, StoreError, schema_of};

/// The db being built by a migration, inside the state dir.
const MIGRATING: &str = "db.migrating";

/// The trees of schema 1 that are converted, not copied (sled's default tree holds nothing).
const CONVERTED: [&str; 5] = [
    "sources",
    "items",
    "urls",
    "baseline_urls",
    "__sled__default",
];

/// Records written per batch.
const CHUNK: usize = 10_000;

/// An item record of schema 1 (what is read of it).
#[derive(serde::Deserialize)]
struct OldItem {
    first_seen: DateTime<Utc>,
    content_hash: String,
    #[serde(default)]
    revision: u32,
}

/// Where the copy of a schema-1 state dir is kept: beside it, named after it.
pub(super) fn backup_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}.schema1"))
}

/// Completes a migration a killed process left: a complete `db.migrating` replaces `db`, an
/// incomplete one is removed (`db` is still whole then).
pub(super) fn finish_interrupted(dir: &Path, tuning: &Tuning) -> Result<(), StoreError> {
    let migrating = dir.join(MIGRATING);
    if !migrating.exists() {
        return Ok(());
    }
    let complete = {
        let db = open_sled(&migrating, tuning)?;
        schema_of(&db.open_tree("meta")?)? == Some(SCHEMA_VERSION)
    };
    let failed = |source| StoreError::Migrate {
        dir: dir.to_path_buf(),
        backup: backup_path(dir),
        source,
    };
    if complete {
        tracing::info!(dir = %dir.display(), "completing the store migration a stopped watcher left");
        swap(dir).map_err(failed)
    } else {
        std::fs::remove_dir_all(&migrating).map_err(failed)
    }
}

/// Migrates the schema-1 store of `dir` (whose lock the caller holds, its `db` closed).
pub(super) fn run(dir: &Path, tuning: &Tuning) -> Result<(), StoreError> {
    let failed = |source| StoreError::Migrate {
        dir: dir.to_path_buf(),
        backup: backup_path(dir),
        source,
    };
    // Absolute, so the copy lands beside the state dir also when it is `.`.
    let backup = backup_path(&dir.canonicalize().map_err(failed)?);
    if !backup.exists() {
        let partial = backup.with_extension("schema1.partial");
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(failed)?;
        }
        copy_dir(dir, &partial).map_err(failed)?;
        std::fs::rename(&partial, &backup).map_err(failed)?;
    }
    tracing::info!(dir = %dir.display(), backup = %backup.display(), "migrating the store to schema {SCHEMA_VERSION}; the old state dir is kept as the backup");
    let migrating = dir.join(MIGRATING);
    if migrating.exists() {
        std::fs::remove_dir_all(&migrating).map_err(failed)?;
    }
    {
        let old = open_sled(&dir.join("db"), tuning)?;
        let new = open_sled(&migrating, tuning)?;
        let counts = convert(&old, &new)?;
        sled_gate::shared(|| new.flush())?;
        crate::crash::point("migrate-midway");
        let meta = new.open_tree("meta")?;
        sled_gate::shared(|| meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()))?;
        sled_gate::shared(|| new.flush())?;
        tracing::info!(
            sources = counts.sources,
            items = counts.items,
            unreadable = counts.unreadable,
            "store migrated"
        );
    }
    swap(dir).map_err(failed)
}

/// Replaces `db` with the complete `db.migrating`.
fn swap(dir: &Path) -> std::io::Result<()> {
    let db = dir.join("db");
    if db.exists() {
        std::fs::remove_dir_all(&db)?;
    }
    crate::crash::point("migrate-swap");
    std::fs::rename(dir.join(MIGRATING), &db)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Copies the state dir `from` to `to`, synced: all but its lock file, a migration's db and the
/// embedded runner's store (`pipelines/`, live and not migrated).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "lock" || name == MIGRATING || name == "pipelines" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    std::fs::File::open(to)?.sync_all()
}

/// What a migration converted.
#[derive(Default)]
struct Counts {
    sources: usize,
    items: usize,
    /// Item records of schema 1 that could not be read: kept as known (never delivered again)
    /// with an empty content fingerprint.
    unreadable: usize,
}

/// Source keys → ids, handed out in order.
#[derive(Default)]
struct Ids {
    ids: HashMap<Vec<u8>, SourceId>,
}

impl Ids {
    fn of(&mut self, source_key: &[u8]) -> SourceId {
        let next = self.ids.len() as SourceId + 1;
        *self.ids.entry(source_key.to_vec()).or_insert(next)
    }
}

/// Writes `batch` into `tree` (a batch takes sled's write lock, like a transaction).
fn apply(tree: &sled::Tree, batch: sled::Batch) -> Result<(), StoreError> {
    sled_gate::exclusive(|| tree.apply_batch(batch))?;
    Ok(())
}

/// Copies (`f` returning the new key and value) every record of `from` into `to`, in batches;
/// `f` returning `None` skips one.
fn each(
    from: &sled::Tree,
    to: &sled::Tree,
    mut f: impl FnMut(&[u8], &[u8]) -> Option<(Vec<u8>, Vec<u8>)>,
) -> Result<usize, StoreError> {
    let (mut batch, mut in_batch, mut n) = (sled::Batch::default(), 0, 0);
    for kv in from.iter() {
        let (k, v) = kv?;
        let Some((k, v)) = f(&k, &v) else { continue };
        batch.insert(k, v);
        (in_batch, n) = (in_batch + 1, n + 1);
        if in_batch == CHUNK {
            apply(to, std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    apply(to, batch)?;
    Ok(n)
}

/// Splits at the first 0 byte.
fn split0(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|b| *b == 0)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// The schema-2 key of an item key of schema 1 (source key ‖ 0 ‖ item id).
fn item_key(ids: &mut Ids, old: &[u8]) -> Option<layout::ItemKey> {
    let (source_key, id) = split0(old)?;
    Some(layout::item_key(
        ids.of(source_key),
        &String::from_utf8_lossy(id),
    ))
}

/// Builds `new` from `old` (see the module header).
fn convert(old: &sled::Db, new: &sled::Db) -> Result<Counts, StoreError> {
    let mut counts = Counts::default();
    let mut ids = Ids::default();
    let tree = |db: &sled::Db, name: &str| db.open_tree(name);
    // Sources first: their ids follow their order.
    counts.sources = each(&tree(old, "sources")?, &tree(new, "sources")?, |k, v| {
        ids.of(k);
        Some((k.to_vec(), v.to_vec()))
    })?;
    let now = Utc::now();
    let mut unreadable = 0;
    counts.items = each(&tree(old, "items")?, &tree(new, "known")?, |k, v| {
        let key = item_key(&mut ids, k)?;
        let rec = match serde_json::from_slice::<OldItem>(v) {
            Ok(old) => ItemRecord {
                first_seen: old.first_seen,
                content: layout::fingerprint(&old.content_hash),
                revision: old.revision,
                flags: 0,
            },
            Err(_) => {
                unreadable += 1;
                ItemRecord {
                    first_seen: now,
                    content: [0; 16],
                    revision: 0,
                    flags: 0,
                }
            }
        };
        Some((key.to_vec(), rec.encode().to_vec()))
    })?;
    counts.unreadable = unreadable;
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "item records that could not be read stay known, their content unknown: a change of one is reported as an update once"
        );
    }
    // (author ‖ 0 ‖ URL) → the old item key.
    each(&tree(old, "urls")?, &tree(new, "author_urls")?, |k, v| {
        let (author, url) = split0(k)?;
        let key = layout::author_url_key(
            &String::from_utf8_lossy(author),
            &String::from_utf8_lossy(url),
        );
        Some((key.to_vec(), item_key(&mut ids, v)?.to_vec()))
    })?;
    // (author ‖ 0 ‖ URL ‖ 0 ‖ source key) → nothing.
    each(
        &tree(old, "baseline_urls")?,
        &tree(new, "source_urls")?,
        |k, _| {
            let (_author, rest) = split0(k)?;
            let (url, source_key) = split0(rest)?;
            let key = layout::source_url_key(ids.of(source_key), &String::from_utf8_lossy(url));
            Some((key.to_vec(), Vec::new()))
        },
    )?;
    // Every other tree as it is (staged, outbox, batches, held, and any a later schema-1 build
    // added); `meta` but its schema version, which is written last.
    for name in old.tree_names() {
        let name = String::from_utf8_lossy(&name).into_owned();
        if CONVERTED.contains(&name.as_str()) {
            continue;
        }
        each(&tree(old, &name)?, &tree(new, &name)?, |k, v| {
            (name != "meta" || k != SCHEMA_KEY.as_bytes()).then(|| (k.to_vec(), v.to_vec()))
        })?;
    }
    let mut pairs: Vec<(&Vec<u8>, &SourceId)> = ids.ids.iter().collect();
    pairs.sort_by_key(|(_, id)| **id);
    let source_ids = tree(new, "source_ids")?;
    for chunk in pairs.chunks(CHUNK) {
        let mut batch = sled::Batch::default();
        for (k, id) in chunk {
            batch.insert(k.as_slice(), &id.to_be_bytes());
        }
        apply(&source_ids, batch)?;
    }
    let next = pairs.len() as SourceId + 1;
    let meta = tree(new, "meta")?;
    sled_gate::shared(|| meta.insert(NEXT_SOURCE_ID, &next.to_be_bytes()))?;
    // Staged, outbox and held keys are sled ids: the new db hands out none that are taken.
    let taken = sled_gate::shared(|| old.generate_id())?;
    sled_gate::shared(|| {
        while new.generate_id()? < taken {}
        Ok::<_, sled::Error>(())
    })?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backup_sits_beside_the_state_dir() {
        assert_eq!(
            backup_path(Path::new("/var/lib/watcher/state")),
            Path::new("/var/lib/watcher/state.schema1")
        );
    }

    #[test]
    fn old_keys_split_at_the_first_zero() {
        let mut ids = Ids::default();
        let key = item_key(&mut ids, b"Ada\x1fhttps://x/feed\0g:1").unwrap();
        assert_eq!(key, layout::item_key(1, "g:1"));
        assert_eq!(ids.of(b"Ada\x1fhttps://x/feed"), 1);
        assert_eq!(ids.of(b"Bob\x1fhttps://y/feed"), 2);
        assert!(item_key(&mut ids, b"no separator").is_none());
    }
}
