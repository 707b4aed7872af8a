//! identity.rs: the versioned rule that gives every fetched item a stable id, and URL
//! canonicalization. Pure functions, no I/O.
//!
//! Rule v1 (`IDENTITY_VERSION`), per fetch:
//! 1. GUID mode (the default): the GUID / Atom id when present and unique within the fetch;
//! 2. else the canonical URL; when several distinct items share one canonical URL, the URL plus a
//!    content hash, so they stay distinct;
//! 3. else sha256 of title + content.
//!
//! If more than 5% of a fetch's GUIDs are empty or duplicated, the source switches to URL mode
//! (rule 2 first) and stays switched: the caller stores the mode.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::parse::RawItem;

/// Bumped whenever the rule below changes the ids it produces.
pub const IDENTITY_VERSION: u32 = 1;

/// Query parameters that are always tracking noise.
const TRACKING_PARAMS: &[&str] = &["fbclid", "gclid", "mc_cid", "mc_eid"];

/// Which field identifies a source's items. Sticky: once a source switches to `Url`, it stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    #[default]
    Guid,
    Url,
}

/// Which query parameters to strip from links.
#[derive(Debug, Clone, Default)]
pub struct Canonicalizer {
    extra: Vec<String>,
    by_host: Vec<(String, Vec<String>)>,
}

impl Canonicalizer {
    pub fn new(
        extra: &[String],
        by_host: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Canonicalizer {
        Canonicalizer {
            extra: extra.iter().map(|s| s.to_ascii_lowercase()).collect(),
            by_host: by_host
                .iter()
                .map(|(h, p)| {
                    (
                        h.trim_start_matches('.').to_ascii_lowercase(),
                        p.iter().map(|s| s.to_ascii_lowercase()).collect(),
                    )
                })
                .collect(),
        }
    }

    /// Lowercase scheme and host, no default port, no fragment, no tracking parameters.
    /// Idempotent: `canonical(canonical(u)) == canonical(u)`.
    pub fn canonical(&self, url: &Url) -> Url {
        // The url crate already lowercases scheme and host and drops default ports.
        let mut url = url.clone();
        url.set_fragment(None);
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        if url.query().is_some() {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| !self.is_tracking(&host, k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                url.set_query(None);
            } else {
                url.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
        url
    }

    fn is_tracking(&self, host: &str, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        key.starts_with("utm_")
            || TRACKING_PARAMS.contains(&key.as_str())
            || self.extra.contains(&key)
            || self.by_host.iter().any(|(h, params)| {
                (host == h || host.ends_with(&format!(".{h}"))) && params.contains(&key)
            })
    }
}

/// An item with its identity assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub canonical_url: Option<String>,
    /// True when other items of the same fetch share this canonical URL.
    pub link_shared: bool,
    pub title: Option<String>,
    pub content_hash: String,
    pub published: Option<chrono::DateTime<chrono::Utc>>,
    /// How often the content changed since the item was first recorded (0 for a new item;
    /// counted by `diff`). Part of the batch id, so content that returns to an earlier state is
    /// still delivered (`trigger_on_update`).
    #[serde(default)]
    pub revision: u32,
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

/// Assigns ids to one fetch's items under `mode` (rule v1 above). Items that end up with the same
/// id (exact duplicates in the feed) are kept once, first wins.
pub fn identify(raw: &[RawItem], mode: IdentityMode, canon: &Canonicalizer) -> Identified {
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

    let canonical: Vec<Option<String>> = raw
        .iter()
        .map(|i| i.link.as_ref().map(|u| canon.canonical(u).to_string()))
        .collect();
    let mut url_counts: HashMap<&str, usize> = HashMap::new();
    for url in canonical.iter().flatten() {
        *url_counts.entry(url).or_default() += 1;
    }

    let mut seen = std::collections::HashSet::new();
    let mut items = Vec::with_capacity(raw.len());
    for (item, url) in raw.iter().zip(&canonical) {
        let hash = content_hash(item.title.as_deref(), item.content.as_deref());
        let link_shared = url.as_deref().is_some_and(|u| url_counts[u] > 1);
        let unique_guid = item
            .guid
            .as_deref()
            .filter(|g| !g.is_empty() && guid_counts[g] == 1);
        let by_url = url.as_deref().map(|u| {
            if link_shared {
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
            items.push(Item {
                id,
                canonical_url: url.clone(),
                link_shared,
                title: item.title.clone(),
                content_hash: hash,
                published: item.published,
                revision: 0,
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
    fn canonicalization_strips_tracking_and_is_idempotent() {
        let c = canon();
        let cases = [
            (
                "HTTPS://Example.COM:443/p/a?utm_source=x&id=3&fbclid=1#top",
                "https://example.com/p/a?id=3",
            ),
            (
                "http://example.com:80/a?utm_medium=rss",
                "http://example.com/a",
            ),
            (
                "https://example.com/a?r=1ttoeh&ref=x",
                "https://example.com/a?r=1ttoeh&ref=x",
            ),
            (
                "https://example.com/a?gclid=1&mc_cid=2&mc_eid=3",
                "https://example.com/a",
            ),
            ("https://example.com:8443/a", "https://example.com:8443/a"),
        ];
        for (input, want) in cases {
            let once = c.canonical(&Url::parse(input).unwrap());
            assert_eq!(once.as_str(), want, "{input}");
            assert_eq!(c.canonical(&once), once, "idempotent for {input}");
        }
    }

    #[test]
    fn configured_params_apply_globally_or_per_host() {
        let mut by_host = std::collections::BTreeMap::new();
        by_host.insert("substack.com".to_string(), vec!["r".to_string()]);
        let c = Canonicalizer::new(&["source".into()], &by_host);
        let strip = |u: &str| c.canonical(&Url::parse(u).unwrap()).to_string();
        assert_eq!(
            strip("https://decodingml.substack.com/p/x?r=1ttoeh&source=rss"),
            "https://decodingml.substack.com/p/x"
        );
        assert_eq!(
            strip("https://other.com/p/x?r=1"),
            "https://other.com/p/x?r=1"
        );
    }

    #[test]
    fn guid_wins_when_present_and_unique() {
        let raw = [
            item(Some("a"), Some("https://x.com/1"), "one"),
            item(Some("b"), None, "two"),
        ];
        let got = identify(&raw, IdentityMode::Guid, &canon());
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
        let got = identify(&raw, IdentityMode::Guid, &canon());
        assert!(got.switched);
        assert_eq!(got.mode, IdentityMode::Url);
        assert_eq!(got.items.len(), 10);
        assert_eq!(got.items[3].id, "u:https://x.com/3");
        // Sticky: a later clean fetch under Url mode keeps URL identity.
        let clean = [item(Some("g1"), Some("https://x.com/1"), "t")];
        let later = identify(&clean, got.mode, &canon());
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
        let got = identify(&raw, IdentityMode::Guid, &canon());
        assert_eq!(got.mode, IdentityMode::Guid);
        assert_eq!(got.items[19].id, "u:https://x.com/19");
        raw.push(item(None, Some("https://x.com/20"), "t"));
        assert_eq!(
            identify(&raw, IdentityMode::Guid, &canon()).mode,
            IdentityMode::Url
        );
    }

    #[test]
    fn items_sharing_one_link_stay_distinct() {
        let raw = [
            item(None, Some("https://x.com/news?utm_source=a"), "first"),
            item(None, Some("https://x.com/news"), "second"),
        ];
        let got = identify(&raw, IdentityMode::Url, &canon());
        assert_eq!(got.items.len(), 2);
        assert_ne!(got.items[0].id, got.items[1].id);
        assert!(got.items.iter().all(|i| i.link_shared));
        assert!(got.items[0].id.starts_with("u:https://x.com/news#"));
    }

    #[test]
    fn no_guid_no_link_falls_back_to_content_hash() {
        let raw = [item(None, None, "lonely")];
        let got = identify(&raw, IdentityMode::Guid, &canon());
        assert_eq!(got.items[0].id, format!("h:{}", got.items[0].content_hash));
        // Same content parsed again gives the same id.
        assert_eq!(
            identify(&raw, IdentityMode::Guid, &canon()).items[0].id,
            got.items[0].id
        );
    }

    #[test]
    fn raw_xhtml_notes_sharing_one_link_stay_distinct() {
        let body = include_bytes!("../testdata/feeds/raw-xhtml-descriptions.rss.xml");
        let base = Url::parse("https://jamie-okafor.example.net/now/feed.xml").unwrap();
        let feed = crate::parse::parse_feed(body, None, &base).unwrap();
        let got = identify(&feed.items, IdentityMode::Guid, &canon());
        assert_eq!(got.mode, IdentityMode::Url, "no GUIDs at all");
        assert_eq!(got.items.len(), 6, "no two notes collapse into one");
        assert!(got.items.iter().all(|i| i.link_shared));
    }
}
