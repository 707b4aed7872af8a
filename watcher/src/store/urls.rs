//! store/urls.rs: which canonical URLs an author already has, for the alias rule of `diff`.
//!
//! Two trees. `urls` (author, URL) → the item key that recorded it, written by every poll that is
//! not a baseline: an article one source recorded is never delivered again through another, and a
//! source that rewrites its GUIDs triggers nothing. `baseline_urls` (author, URL, source key) →
//! nothing, written by a source's baseline instead: that source's own rewritten GUIDs still trigger
//! nothing, but its baseline never hides an article that another source finds new (a source added
//! to an author must not swallow the article its older sources are about to report). Stores
//! written before `baseline_urls` existed have baseline URLs in `urls`, which keeps their old,
//! stricter behaviour for those URLs.

use sled::Tree;
use sled::transaction::{TransactionalTree, UnabortableTransactionError};

fn url_key(author: &str, url: &str) -> Vec<u8> {
    [author.as_bytes(), &[0], url.as_bytes()].concat()
}

fn baseline_key(author: &str, url: &str, source_key: &str) -> Vec<u8> {
    [
        author.as_bytes(),
        &[0],
        url.as_bytes(),
        &[0],
        source_key.as_bytes(),
    ]
    .concat()
}

/// Whether `url` counts as known for a poll of `source_key`: recorded by any source of the
/// author after its baseline, or by this source's own baseline.
pub(super) fn known(
    urls: &Tree,
    baselines: &Tree,
    author: &str,
    source_key: &str,
    url: &str,
) -> sled::Result<bool> {
    Ok(urls.contains_key(url_key(author, url))?
        || baselines.contains_key(baseline_key(author, url, source_key))?)
}

/// Whether another item than `mine` recorded `url` after its baseline (inside the transaction
/// that would stage `mine`: two sources of one blog polled at once stage an article once).
pub(super) fn recorded_elsewhere(
    urls: &TransactionalTree,
    author: &str,
    url: &str,
    mine: &[u8],
) -> Result<bool, UnabortableTransactionError> {
    Ok(urls
        .get(url_key(author, url))?
        .is_some_and(|owner| owner.as_ref() != mine))
}

/// Records that the item at `item_key` of `source_key` has `url`: in `urls`, or for a baseline in
/// `baseline_urls` only.
pub(super) fn record(
    urls: &TransactionalTree,
    baselines: &TransactionalTree,
    author: &str,
    url: &str,
    source_key: &str,
    item_key: &[u8],
    baseline: bool,
) -> Result<(), UnabortableTransactionError> {
    if baseline {
        baselines.insert(baseline_key(author, url, source_key), &[])?;
    } else {
        urls.insert(url_key(author, url), item_key)?;
    }
    Ok(())
}
