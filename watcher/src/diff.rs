//! diff.rs: parsed items minus known items gives new and updated items. Pure: the caller looks
//! up what the store knows and passes it in.

use std::collections::{HashMap, HashSet};

use crate::identity::Item;

/// What the store knows about one item id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub content_hash: String,
}

/// The outcome of comparing one fetch with the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Unknown ids whose article is unknown too: these trigger.
    pub new: Vec<Item>,
    /// Known ids whose content hash changed.
    pub updated: Vec<Item>,
    /// Unknown ids whose canonical URL the author already has (a feed that rewrote its GUIDs):
    /// recorded as known, never triggered.
    pub aliases: Vec<Item>,
}

/// Compares `items` with what is known. An item is new only if its id is unknown and, unless
/// its link is shared by several items of the fetch, its canonical URL is unknown for the author.
pub fn diff(
    items: &[Item],
    known_ids: &HashMap<String, Known>,
    known_urls: &HashSet<String>,
) -> Diff {
    let mut out = Diff::default();
    for item in items {
        match known_ids.get(&item.id) {
            Some(known) if known.content_hash != item.content_hash => {
                out.updated.push(item.clone())
            }
            Some(_) => {}
            None => {
                let url_known = !item.link_shared
                    && item
                        .canonical_url
                        .as_ref()
                        .is_some_and(|u| known_urls.contains(u));
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
            (
                "g:1".to_string(),
                Known {
                    content_hash: "h1".into(),
                },
            ),
            (
                "g:2".to_string(),
                Known {
                    content_hash: "h2".into(),
                },
            ),
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
            (
                "g:old-a".to_string(),
                Known {
                    content_hash: "h1".into(),
                },
            ),
            (
                "g:old-b".to_string(),
                Known {
                    content_hash: "h2".into(),
                },
            ),
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
}
