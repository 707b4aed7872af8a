//! diff.rs: parsed items minus known items gives new and updated items. Pure: the caller looks
//! up what the store knows and passes it in.

use std::collections::{HashMap, HashSet};

use crate::identity::Item;

/// What the store knows about one item id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub content_hash: String,
    /// How often its content changed since it was first recorded.
    pub revision: u32,
}

/// The outcome of comparing one fetch with the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Unknown ids whose article is unknown too: these trigger.
    pub new: Vec<Item>,
    /// Known ids whose content hash changed, with their revision counted up.
    pub updated: Vec<Item>,
    /// Unknown ids whose identity key is already known (see [`diff`]): recorded as known, never
    /// triggered.
    pub aliases: Vec<Item>,
}

/// Compares `items` with what is known. An item is new only if its id is unknown and, unless
/// its link is shared by several items of the fetch, its identity key (the canonical URL, or
/// what a platform rule derives: see `platform`) is not in `known_keys`: the keys this source
/// has recorded, and those the author's other sources recorded after their baseline (so a feed
/// that rewrites its GUIDs triggers nothing, an article two sources list under two URLs is
/// delivered once, and another source's baseline hides nothing new). An updated item's
/// `revision` is one more than the known one: content that returns to an earlier state is still
/// a new revision.
pub fn diff(
    items: &[Item],
    known_ids: &HashMap<String, Known>,
    known_keys: &HashSet<String>,
) -> Diff {
    let mut out = Diff::default();
    for item in items {
        match known_ids.get(&item.id) {
            Some(known) if known.content_hash != item.content_hash => out.updated.push(Item {
                revision: known.revision + 1,
                ..item.clone()
            }),
            Some(_) => {}
            None => {
                let url_known = !item.link_shared
                    && item.identity_key().is_some_and(|k| known_keys.contains(k));
                if url_known {
                    out.aliases.push(item.clone());
                } else {
                    out.new.push(item.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, url: Option<&str>, hash: &str) -> Item {
        Item {
            id: id.into(),
            canonical_url: url.map(String::from),
            link_shared: false,
            title: None,
            content_hash: hash.into(),
            published: None,
            revision: 0,
            keys: Default::default(),
        }
    }

    fn known(hash: &str) -> Known {
        Known {
            content_hash: hash.into(),
            revision: 0,
        }
    }

    #[test]
    fn splits_new_updated_and_unchanged() {
        let items = [
            item("g:1", Some("https://x/1"), "h1"),
            item("g:2", Some("https://x/2"), "h2-changed"),
            item("g:3", Some("https://x/3"), "h3"),
        ];
        let known = HashMap::from([
            ("g:1".to_string(), known("h1")),
            ("g:2".to_string(), known("h2")),
        ]);
        let urls = HashSet::from(["https://x/1".to_string(), "https://x/2".to_string()]);
        let d = diff(&items, &known, &urls);
        assert_eq!(
            d.new.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["g:3"]
        );
        assert_eq!(
            d.updated.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["g:2"]
        );
        assert!(d.aliases.is_empty());
    }

    #[test]
    fn rewritten_guids_trigger_nothing() {
        let items = [
            item("g:new-a", Some("https://x/1"), "h1"),
            item("g:new-b", Some("https://x/2"), "h2"),
        ];
        let known = HashMap::from([
            ("g:old-a".to_string(), known("h1")),
            ("g:old-b".to_string(), known("h2")),
        ]);
        let urls = HashSet::from(["https://x/1".to_string(), "https://x/2".to_string()]);
        let d = diff(&items, &known, &urls);
        assert!(d.new.is_empty());
        assert_eq!(d.aliases.len(), 2);
    }

    #[test]
    fn shared_links_do_not_hide_new_items() {
        let mut a = item("u:https://x/n#1", Some("https://x/n"), "h1");
        a.link_shared = true;
        let urls = HashSet::from(["https://x/n".to_string()]);
        let d = diff(&[a], &HashMap::new(), &urls);
        assert_eq!(d.new.len(), 1);
    }

    #[test]
    fn every_content_change_is_a_new_revision() {
        let mut known = HashMap::from([("g:1".to_string(), known("a"))]);
        let mut revisions = Vec::new();
        for hash in ["b", "a", "a", "b"] {
            let d = diff(
                &[item("g:1", Some("https://x/1"), hash)],
                &known,
                &HashSet::new(),
            );
            if let Some(updated) = d.updated.first() {
                revisions.push(updated.revision);
                known.insert(
                    updated.id.clone(),
                    Known {
                        content_hash: updated.content_hash.clone(),
                        revision: updated.revision,
                    },
                );
            }
        }
        assert_eq!(revisions, [1, 2, 3], "A → B → A → A → B");
    }
}
