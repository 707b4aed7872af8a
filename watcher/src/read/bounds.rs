//! bounds.rs: what one poll may read. A [`Budget`] per poll counts the bytes fetched and the
//! items read (a sitemap index and its children together) against `[fetch] max_poll_bytes` and
//! `max_poll_items`: over either, the poll fails and records nothing. [`bound_fields`] applies the
//! field-length limits to every item read, whatever the reader: a GUID or title that is too long
//! is cut, an item whose URL is too long is skipped, and both are counted.

use crate::config::FetchSettings;
use crate::fetch::Cap;
use crate::parse::RawItem;

/// One poll went over a per-poll limit; nothing of it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverLimit {
    #[error(
        "the poll read more than {limit} items in all (a sitemap index and its children \
         together); nothing was recorded; hint: narrow the source with `include`, or raise \
         [fetch] max_poll_items"
    )]
    Items { limit: usize },
    #[error(
        "the poll fetched more than {limit} bytes in all (a sitemap index and its children \
         together); nothing was recorded; hint: narrow the source to one child sitemap, or raise \
         [fetch] max_poll_bytes"
    )]
    Bytes { limit: u64 },
}

/// What one poll has left to read.
#[derive(Debug, Clone)]
pub struct Budget {
    max_items: usize,
    max_bytes: u64,
    bytes: u64,
}

impl Budget {
    pub fn new(settings: &FetchSettings) -> Budget {
        Budget {
            max_items: settings.max_poll_items,
            max_bytes: settings.max_poll_bytes,
            bytes: 0,
        }
    }

    /// The cap for the next body: `file` or, when the poll has less left, what it has left
    /// (then named `max_poll_bytes`).
    pub fn cap(&self, file: Cap) -> Cap {
        let left = self.max_bytes.saturating_sub(self.bytes);
        if left < file.bytes {
            Cap {
                bytes: left,
                key: "max_poll_bytes",
            }
        } else {
            file
        }
    }

    /// Counts `n` bytes read.
    pub fn spend_bytes(&mut self, n: u64) -> Result<(), OverLimit> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.max_bytes {
            return Err(OverLimit::Bytes {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Checks that `items` read in all are within the limit.
    pub fn check_items(&self, items: usize) -> Result<(), OverLimit> {
        if items > self.max_items {
            return Err(OverLimit::Items {
                limit: self.max_items,
            });
        }
        Ok(())
    }

    /// The error for a body cut off at `cap`, when `cap` was the poll's budget.
    pub fn over(&self, cap: Cap) -> Option<OverLimit> {
        (cap.key == "max_poll_bytes").then_some(OverLimit::Bytes {
            limit: self.max_bytes,
        })
    }
}

/// How many items the field-length limits changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cuts {
    /// Items with a GUID or title cut to its limit.
    pub cut: usize,
    /// Items skipped for a URL over its limit.
    pub skipped: usize,
}

impl Cuts {
    pub fn is_empty(&self) -> bool {
        *self == Cuts::default()
    }
}

/// Applies the field-length limits of `settings` to `items`: GUIDs and titles over their limit
/// are cut (at a character boundary), items whose URL is over its limit are dropped.
pub fn bound_fields(items: &mut Vec<RawItem>, settings: &FetchSettings) -> Cuts {
    let mut cuts = Cuts::default();
    items.retain_mut(|item| {
        if item
            .link
            .as_ref()
            .is_some_and(|link| link.as_str().len() > settings.max_url_bytes)
        {
            cuts.skipped += 1;
            return false;
        }
        let guid = cut(&mut item.guid, settings.max_guid_bytes);
        let title = cut(&mut item.title, settings.max_title_bytes);
        if guid || title {
            cuts.cut += 1;
        }
        true
    });
    if !cuts.is_empty() {
        tracing::warn!(
            cut = cuts.cut,
            skipped = cuts.skipped,
            "items over the field-length limits: long GUIDs and titles cut, items with a long URL skipped"
        );
    }
    cuts
}

/// Cuts `field` to at most `max` bytes, at a character boundary; whether it was cut.
fn cut(field: &mut Option<String>, max: usize) -> bool {
    let Some(text) = field.as_mut().filter(|t| t.len() > max) else {
        return false;
    };
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;

    fn settings() -> FetchSettings {
        FetchSettings {
            max_guid_bytes: 8,
            max_title_bytes: 5,
            max_url_bytes: 30,
            max_poll_items: 3,
            max_poll_bytes: 100,
            ..FetchSettings::default()
        }
    }

    fn item(guid: &str, title: &str, link: &str) -> RawItem {
        RawItem {
            guid: Some(guid.into()),
            title: Some(title.into()),
            link: Some(Url::parse(link).unwrap()),
            ..RawItem::default()
        }
    }

    #[test]
    fn long_guids_and_titles_are_cut_and_long_urls_skipped_and_counted() {
        let mut items = vec![
            item("short", "ok", "https://e.com/a"),
            item("a-very-long-guid", "héllo wörld", "https://e.com/b"),
            item("g", "t", "https://e.com/a-path-that-is-far-too-long"),
        ];
        let cuts = bound_fields(&mut items, &settings());
        assert_eq!(cuts, Cuts { cut: 1, skipped: 1 });
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].guid.as_deref(), Some("a-very-l"));
        // "héllo" is 6 bytes: cut before the `l` that would not fit, never inside the `é`.
        assert_eq!(items[1].title.as_deref(), Some("héll"));
        assert_eq!(items[0].title.as_deref(), Some("ok"));
    }

    #[test]
    fn the_budget_counts_bytes_and_items_across_bodies() {
        let mut budget = Budget::new(&settings());
        let file = Cap {
            bytes: 60,
            key: "max_sitemap_bytes",
        };
        assert_eq!(budget.cap(file), file);
        budget.spend_bytes(60).unwrap();
        let left = budget.cap(file);
        assert_eq!((left.bytes, left.key), (40, "max_poll_bytes"));
        assert_eq!(budget.over(left), Some(OverLimit::Bytes { limit: 100 }));
        assert_eq!(budget.over(file), None);
        assert_eq!(budget.spend_bytes(41), Err(OverLimit::Bytes { limit: 100 }));
        budget.check_items(3).unwrap();
        assert_eq!(budget.check_items(4), Err(OverLimit::Items { limit: 3 }));
    }
}
