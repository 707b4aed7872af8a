//! store/layout.rs: the compact encoding of schema 2's per-item trees, pure (no sled here).
//!
//! - `known` (one record per item ever seen): key = the source's id (u32, big-endian, allocated
//!   in `source_ids`) ‖ the first 16 bytes of sha256(item id), so one source's items are one
//!   prefix and a cold round appends; value = [`ItemRecord`] in 29 bytes (first seen in ms, a
//!   16-byte content fingerprint, revision, flags). No id, URL or title: nothing reads them back
//!   (holds keep their own full records; the URL rule goes through the indexes below).
//! - `author_urls`: key = the first 16 bytes of sha256(author ‖ 0 ‖ canonical URL); value = the
//!   `known` key of the item that recorded it after its source's baseline.
//! - `source_urls`: key = source id ‖ the first 16 bytes of sha256(canonical URL); no value: the
//!   URLs a source's own baseline recorded (see `store/urls.rs` for the rule).
//!
//! 16 bytes of sha256 (128 bits) make a collision between two of a store's ids or URLs as likely
//! as guessing a random UUID.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A source's id: small, allocated in order, the prefix of its items' keys.
pub type SourceId = u32;

/// The key of an item in `known`.
pub type ItemKey = [u8; 20];

/// The first 16 bytes of sha256 over `parts`, each followed by a 0 byte.
fn hash16(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
        h.update([0]);
    }
    let full = h.finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// The `known` key of the item `id` of source `source`.
pub fn item_key(source: SourceId, id: &str) -> ItemKey {
    let mut key = [0; 20];
    key[..4].copy_from_slice(&source.to_be_bytes());
    key[4..].copy_from_slice(&hash16(&[id.as_bytes()]));
    key
}

/// The `author_urls` key of `url` for `author`.
pub fn author_url_key(author: &str, url: &str) -> [u8; 16] {
    hash16(&[author.as_bytes(), url.as_bytes()])
}

/// The `source_urls` key of `url` recorded by the baseline of `source`.
pub fn source_url_key(source: SourceId, url: &str) -> [u8; 20] {
    let mut key = [0; 20];
    key[..4].copy_from_slice(&source.to_be_bytes());
    key[4..].copy_from_slice(&hash16(&[url.as_bytes()]));
    key
}

/// A 16-byte fingerprint of a content hash: the first 16 bytes of a sha256 hex digest (what
/// `identity::content_hash` makes), else of sha256 over the string.
pub fn fingerprint(content_hash: &str) -> [u8; 16] {
    let hex = content_hash.as_bytes();
    let mut out = [0; 16];
    if hex.len() == 64
        && hex::decode_to_slice(&hex[..32], &mut out).is_ok()
        && hex
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return out;
    }
    hash16(&[hex])
}

/// What is stored of one known item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRecord {
    pub first_seen: DateTime<Utc>,
    /// The [`fingerprint`] of its content hash.
    pub content: [u8; 16],
    /// How often its content changed (see `identity::Item::revision`).
    pub revision: u32,
    pub flags: u8,
}

/// [`ItemRecord::flags`]: first recorded by its source's baseline.
pub const FLAG_BASELINE: u8 = 1;

/// The size of an encoded [`ItemRecord`].
const RECORD_LEN: usize = 29;

impl ItemRecord {
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0; RECORD_LEN];
        out[..8].copy_from_slice(&self.first_seen.timestamp_millis().to_be_bytes());
        out[8..24].copy_from_slice(&self.content);
        out[24..28].copy_from_slice(&self.revision.to_be_bytes());
        out[28] = self.flags;
        out
    }

    /// `None` when `bytes` is not a record of this layout.
    pub fn decode(bytes: &[u8]) -> Option<ItemRecord> {
        let bytes: &[u8; RECORD_LEN] = bytes.try_into().ok()?;
        let ms = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        Some(ItemRecord {
            first_seen: DateTime::from_timestamp_millis(ms)?,
            content: bytes[8..24].try_into().ok()?,
            revision: u32::from_be_bytes(bytes[24..28].try_into().ok()?),
            flags: bytes[28],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_in_29_bytes() {
        let rec = ItemRecord {
            first_seen: DateTime::from_timestamp_millis(1_764_000_000_123).unwrap(),
            content: fingerprint(&crate::identity::content_hash(Some("t"), Some("c"))),
            revision: 7,
            flags: FLAG_BASELINE,
        };
        let bytes = rec.encode();
        assert_eq!(bytes.len(), 29);
        assert_eq!(ItemRecord::decode(&bytes), Some(rec));
        assert_eq!(ItemRecord::decode(&bytes[1..]), None);
    }

    #[test]
    fn keys_cluster_by_source_and_separate_ids_and_authors() {
        let (a, b) = (item_key(1, "g:1"), item_key(1, "g:2"));
        assert_eq!(a[..4], b[..4]);
        assert_ne!(a, b);
        assert!(
            item_key(1, "zzz") < item_key(2, "aaa"),
            "one source, one prefix"
        );
        assert_ne!(
            author_url_key("Ada", "https://x/1"),
            author_url_key("Bob", "https://x/1")
        );
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(author_url_key("ab", "c"), author_url_key("a", "bc"));
        assert_eq!(source_url_key(3, "https://x/1")[..4], 3u32.to_be_bytes());
    }

    #[test]
    fn a_fingerprint_tells_contents_apart() {
        let h1 = crate::identity::content_hash(Some("t"), Some("one"));
        let h2 = crate::identity::content_hash(Some("t"), Some("two"));
        assert_eq!(fingerprint(&h1), fingerprint(&h1.clone()));
        assert_ne!(fingerprint(&h1), fingerprint(&h2));
        assert_eq!(fingerprint(&h1)[..], hex::decode(&h1[..32]).unwrap()[..]);
        assert_ne!(fingerprint("h1"), fingerprint("h2"));
    }
}
