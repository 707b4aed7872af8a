//! identity.rs: the versioned rule that gives every fetched item a stable id, the generic URL
//! canonicalization, and each item's link read with the platform rules (`platform`: the link a
//! config lists and the identity key the alias rule compares). Pure functions, no I/O.
//!
//! Rule v1 (`IDENTITY_VERSION`), per fetch:
//! 1. GUID mode (the default): the GUID / Atom id when present and unique within the fetch;
//! 2. else the canonical URL; when several distinct items share one canonical URL, the URL plus a
//!    content hash, so they stay distinct;
//! 3. else sha256 of title + content.
//!
//! The URL of rules 2 is the generic canonical URL (the platform rules change no id). If more
//! than 5% of a fetch's GUIDs are empty or duplicated, the source switches to URL mode
//! (rule 2 first) and stays switched: the caller stores the mode.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::canonical::Canonicalizer;
use crate::parse::RawItem;
use crate::platform::{self, Context, Link};

/// Bumped whenever the rule below changes the ids it produces.
pub const IDENTITY_VERSION: u32 = 1;

/// Which field identifies a source's items. Sticky: once a source switches to `Url`, it stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    #[default]
    Guid,
    Url,
}

/// What an item's link is compared by, when that is not its canonical URL (see `platform`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkKeys {
    /// The identity key, when the platform rules derived one other than the canonical URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The canonical URL under the generic rule alone (what versions before the platform rules
    /// indexed), when it differs from the identity key: looked up when the key is not found, so
    /// an upgrade re-delivers nothing. Only a poll needs it: never stored.
    #[serde(skip)]
    pub before: Option<String>,
}

impl LinkKeys {
    fn is_plain(&self) -> bool {
        self.identity.is_none()
    }
}

/// An item with its identity assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub canonical_url: Option<String>,
    /// True when other items of the same fetch share this item's URL or identity key: then it
    /// is never taken for an alias (see `diff`).
    pub link_shared: bool,
    pub title: Option<String>,
    pub content_hash: String,
    pub published: Option<chrono::DateTime<chrono::Utc>>,
    /// How often the content changed since the item was first recorded (0 for a new item;
    /// counted by `diff`). Part of the batch id, so content that returns to an earlier state is
    /// still delivered (`trigger_on_update`).
    #[serde(default)]
    pub revision: u32,
    /// The identity key when it is not the canonical URL (see [`Item::identity_key`]).
    #[serde(default, skip_serializing_if = "LinkKeys::is_plain")]
    pub keys: LinkKeys,
}

impl Item {
    /// What the alias rule compares within one author (see `platform`): the platform's key,
    /// else the canonical URL. `None`: the item has no link.
    pub fn identity_key(&self) -> Option<&str> {
        (self.keys.identity.as_deref()).or(self.canonical_url.as_deref())
    }

    /// The key versions before the platform rules indexed this item under, when it differs.
    pub fn key_before(&self) -> Option<&str> {
        self.keys.before.as_deref()
    }
}

/// The result of identifying one fetch.
#[derive(Debug, Clone)]
pub struct Identified {
    pub items: Vec<Item>,
    /// The mode to store for the source (may have switched from `Guid` to `Url`).
    pub mode: IdentityMode,
    /// True when this fetch switched the mode.
    pub switched: bool,
}

/// sha256 over title and content, hex.
pub fn content_hash(title: Option<&str>, content: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(title.unwrap_or("").trim().as_bytes());
    h.update([0]);
    h.update(content.unwrap_or("").trim().as_bytes());
    hex::encode(h.finalize())
}

/// Assigns ids to one fetch's items under `mode` (rule v1 above) and reads their links with the
/// platform rules (`platform`; `generator` is the feed's `<generator>`, its marker). Items that
/// end up with the same id (exact duplicates in the feed) are kept once, first wins.
pub fn identify(
    raw: &[RawItem],
    mode: IdentityMode,
    canon: &Canonicalizer,
    generator: Option<&str>,
) -> Identified {
    let mut guid_counts: HashMap<&str, usize> = HashMap::new();
    for item in raw {
        if let Some(g) = item.guid.as_deref().filter(|g| !g.is_empty()) {
            *guid_counts.entry(g).or_default() += 1;
        }
    }
    let bad_guids = raw
        .iter()
        .filter(|i| match i.guid.as_deref() {
            None | Some("") => true,
            Some(g) => guid_counts[g] > 1,
        })
        .count();
    let mut mode_now = mode;
    let mut switched = false;
    // "more than 5%": bad / total > 0.05, in integers.
    if mode == IdentityMode::Guid && !raw.is_empty() && bad_guids * 100 > raw.len() * 5 {
        mode_now = IdentityMode::Url;
        switched = true;
    }

    let links: Vec<Option<Link>> = raw
        .iter()
        .map(|i| {
            let cx = Context {
                generator,
                title: i.title.as_deref(),
                guid: i.guid.as_deref(),
            };
            i.link.as_ref().map(|u| platform::link(canon, u, cx))
        })
        .collect();
    // Ids come from the generic canonical URL, as before the platform rules: they never change.
    let generic: Vec<Option<String>> = (links.iter())
        .map(|l| l.as_ref().map(|l| l.generic.to_string()))
        .collect();
    let mut url_counts: HashMap<&str, usize> = HashMap::new();
    let mut key_counts: HashMap<&str, usize> = HashMap::new();
    for (url, link) in generic.iter().zip(&links) {
        if let (Some(url), Some(link)) = (url, link) {
            *url_counts.entry(url).or_default() += 1;
            *key_counts.entry(&link.key).or_default() += 1;
        }
    }

    let mut seen = std::collections::HashSet::new();
    let mut items = Vec::with_capacity(raw.len());
    for ((item, url), link) in raw.iter().zip(&generic).zip(&links) {
        let hash = content_hash(item.title.as_deref(), item.content.as_deref());
        let url_shared = url.as_deref().is_some_and(|u| url_counts[u] > 1);
        let unique_guid = item
            .guid
            .as_deref()
            .filter(|g| !g.is_empty() && guid_counts[g] == 1);
        let by_url = url.as_deref().map(|u| {
            if url_shared {
                format!("u:{u}#{}", &hash[..16])
            } else {
                format!("u:{u}")
            }
        });
        let id = match (mode_now, unique_guid, by_url) {
            (IdentityMode::Guid, Some(g), _) => format!("g:{g}"),
            (_, _, Some(u)) => u,
            (IdentityMode::Url, Some(g), None) => format!("g:{g}"),
            (_, None, None) => format!("h:{hash}"),
        };
        if seen.insert(id.clone()) {
            let canonical = link.as_ref().map(|l| l.canonical.to_string());
            let keys = match link {
                Some(l) => LinkKeys {
                    identity: (Some(&l.key) != canonical.as_ref()).then(|| l.key.clone()),
                    before: url.clone().filter(|u| *u != l.key),
                },
                None => LinkKeys::default(),
            };
            items.push(Item {
                id,
                link_shared: url_shared
                    || link
                        .as_ref()
                        .is_some_and(|l| key_counts[l.key.as_str()] > 1),
                canonical_url: canonical,
                title: item.title.clone(),
                content_hash: hash,
                published: item.published,
                revision: 0,
                keys,
            });
        }
    }
    Identified {
        items,
        mode: mode_now,
        switched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn canon() -> Canonicalizer {
        Canonicalizer::default()
    }

    fn item(guid: Option<&str>, link: Option<&str>, title: &str) -> RawItem {
        RawItem {
            guid: guid.map(String::from),
            link: link.map(|l| Url::parse(l).unwrap()),
            title: Some(title.into()),
            content: Some(format!("body of {title}")),
            ..RawItem::default()
        }
    }

    #[test]
    fn guid_wins_when_present_and_unique() {
        let raw = [
            item(Some("a"), Some("https://x.com/1"), "one"),
            item(Some("b"), None, "two"),
        ];
        let got = identify(&raw, IdentityMode::Guid, &canon(), None);
        assert_eq!(got.items[0].id, "g:a");
        assert_eq!(got.items[1].id, "g:b");
        assert!(!got.switched);
    }

    #[test]
    fn duplicate_guids_switch_to_url_mode_and_stay_distinct() {
        let raw: Vec<_> = (0..10)
            .map(|i| {
                item(
                    Some("same"),
                    Some(&format!("https://x.com/{i}")),
                    &format!("t{i}"),
                )
            })
            .collect();
        let got = identify(&raw, IdentityMode::Guid, &canon(), None);
        assert!(got.switched);
        assert_eq!(got.mode, IdentityMode::Url);
        assert_eq!(got.items.len(), 10);
        assert_eq!(got.items[3].id, "u:https://x.com/3");
        // Sticky: a later clean fetch under Url mode keeps URL identity.
        let clean = [item(Some("g1"), Some("https://x.com/1"), "t")];
        let later = identify(&clean, got.mode, &canon(), None);
        assert_eq!(later.items[0].id, "u:https://x.com/1");
        assert!(!later.switched);
    }

    #[test]
    fn five_percent_is_the_threshold() {
        // 1 missing GUID in 20 items = 5%: not more than 5%, stays GUID.
        let mut raw: Vec<_> = (0..19)
            .map(|i| {
                item(
                    Some(&format!("g{i}")),
                    Some(&format!("https://x.com/{i}")),
                    "t",
                )
            })
            .collect();
        raw.push(item(None, Some("https://x.com/19"), "t"));
        let got = identify(&raw, IdentityMode::Guid, &canon(), None);
        assert_eq!(got.mode, IdentityMode::Guid);
        assert_eq!(got.items[19].id, "u:https://x.com/19");
        raw.push(item(None, Some("https://x.com/20"), "t"));
        assert_eq!(
            identify(&raw, IdentityMode::Guid, &canon(), None).mode,
            IdentityMode::Url
        );
    }

    #[test]
    fn items_sharing_one_link_stay_distinct() {
        let raw = [
            item(None, Some("https://x.com/news?utm_source=a"), "first"),
            item(None, Some("https://x.com/news"), "second"),
        ];
        let got = identify(&raw, IdentityMode::Url, &canon(), None);
        assert_eq!(got.items.len(), 2);
        assert_ne!(got.items[0].id, got.items[1].id);
        assert!(got.items.iter().all(|i| i.link_shared));
        assert!(got.items[0].id.starts_with("u:https://x.com/news#"));
    }

    #[test]
    fn no_guid_no_link_falls_back_to_content_hash() {
        let raw = [item(None, None, "lonely")];
        let got = identify(&raw, IdentityMode::Guid, &canon(), None);
        assert_eq!(got.items[0].id, format!("h:{}", got.items[0].content_hash));
        // Same content parsed again gives the same id.
        assert_eq!(
            identify(&raw, IdentityMode::Guid, &canon(), None).items[0].id,
            got.items[0].id
        );
    }

    #[test]
    fn raw_xhtml_notes_sharing_one_link_stay_distinct() {
        let body = include_bytes!("../testdata/feeds/raw-xhtml-descriptions.rss.xml");
        let base = Url::parse("https://jamie-okafor.example.net/now/feed.xml").unwrap();
        let feed = crate::parse::parse_feed(body, None, &base).unwrap();
        let got = identify(&feed.items, IdentityMode::Guid, &canon(), None);
        assert_eq!(got.mode, IdentityMode::Url, "no GUIDs at all");
        assert_eq!(got.items.len(), 6, "no two notes collapse into one");
        assert!(got.items.iter().all(|i| i.link_shared));
    }
}
