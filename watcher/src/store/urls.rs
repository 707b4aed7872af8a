//! store/urls.rs: which canonical URLs an author already has, for the alias rule of `diff`.
//!
//! Two trees, keyed by hashes (see `store/layout.rs`). `author_urls` (author, URL) → the `known`
//! key of the item that recorded it, written by every poll that is not a baseline: an article one
//! source recorded is never delivered again through another, and a source that rewrites its GUIDs
//! triggers nothing. `source_urls` (source, URL) → nothing, written by a source's baseline
//! instead: that source's own rewritten GUIDs still trigger nothing, but its baseline never hides
//! an article that another source finds new (a source added to an author must not swallow the
//! article its older sources are about to report). Stores of schema 1 written before
//! `baseline_urls` existed have baseline URLs in `urls`, which the migration keeps in
//! `author_urls`: their old, stricter behaviour for those URLs.

use sled::Tree;
use sled::transaction::{TransactionalTree, UnabortableTransactionError};

use super::layout::{ItemKey, SourceId, author_url_key, source_url_key};

/// Whether `url` counts as known for a poll of `source` (`None`: a source never committed):
/// recorded by any source of the author after its baseline, or by this source's own baseline.
pub(super) fn known(
    author_urls: &Tree,
    source_urls: &Tree,
    author: &str,
    source: Option<SourceId>,
    url: &str,
) -> sled::Result<bool> {
    Ok(author_urls.contains_key(author_url_key(author, url))?
        || match source {
            Some(id) => source_urls.contains_key(source_url_key(id, url))?,
            None => false,
        })
}

/// Whether another item than `mine` recorded `url` after its baseline (inside the transaction
/// that would stage `mine`: two sources of one blog polled at once stage an article once).
pub(super) fn recorded_elsewhere(
    author_urls: &TransactionalTree,
    author: &str,
    url: &str,
    mine: &ItemKey,
) -> Result<bool, UnabortableTransactionError> {
    Ok(author_urls
        .get(author_url_key(author, url))?
        .is_some_and(|owner| owner.as_ref() != mine))
}

/// Records that the item at `item_key` of `source` has `url`: in `author_urls`, or for a
/// baseline in `source_urls` only.
pub(super) fn record(
    author_urls: &TransactionalTree,
    source_urls: &TransactionalTree,
    author: &str,
    url: &str,
    source: SourceId,
    item_key: &ItemKey,
    baseline: bool,
) -> Result<(), UnabortableTransactionError> {
    if baseline {
        source_urls.insert(&source_url_key(source, url), &[])?;
    } else {
        author_urls.insert(&author_url_key(author, url), item_key)?;
    }
    Ok(())
}
