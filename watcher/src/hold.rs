//! hold.rs: floods are held, not triggered. Whether a poll's new items are held (a pure decision:
//! the source's [`HoldRule`], the user's consent, a hold already under way), how a source holding
//! many is slowed down, and what `watcher held`, `release` and `discard` do with the `held` tree,
//! in the store or through the daemon's endpoint.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::HoldRule;
use crate::printable::printable;
use crate::schedule::Next;
use crate::store::{StagedItem, Store, StoreError};

/// Above this many held items a source is polled at `max_interval`: a flood that goes on is
/// looked at rarely until someone decides.
pub const SLOW_ABOVE: usize = 1000;

/// Why a poll's new items are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// This poll's new items are a flood by the source's rule.
    Flood,
    /// The source already holds items: later ones join them until released or discarded.
    Joining,
}

/// What one poll brought, as far as the hold cares.
#[derive(Debug, Clone, Copy)]
pub struct PollCounts {
    /// Items that would be staged for delivery.
    pub new: usize,
    /// Items the source returned.
    pub returned: usize,
    /// Items the source holds already.
    pub held_before: usize,
    /// The source's first poll, with `backfill`: the user asked for what it finds.
    pub consent: bool,
}

/// Whether this poll's new items are held, and why. `rule` is `None` for `hold = false`.
pub fn decide(rule: Option<&HoldRule>, poll: PollCounts) -> Option<Held> {
    let rule = rule?;
    if poll.new == 0 || poll.consent {
        return None;
    }
    if poll.held_before > 0 {
        return Some(Held::Joining);
    }
    rule.floods(poll.new, poll.returned).then_some(Held::Flood)
}

/// The warning a held poll logs (counts only: nothing the server sent).
pub fn log(why: Held, poll: PollCounts) {
    let held = poll.held_before + poll.new;
    match why {
        Held::Flood => tracing::warn!(
            new = poll.new,
            returned = poll.returned,
            held,
            "flood held: too many new items in one poll to start runs for; hint: `watcher held` lists them, then `watcher release SOURCE` or `watcher discard SOURCE`"
        ),
        Held::Joining => tracing::warn!(
            new = poll.new,
            held,
            "new items joined this source's hold; hint: `watcher release SOURCE` delivers them"
        ),
    }
}

/// A source that holds more than [`SLOW_ABOVE`] items waits `max_interval` until its next poll.
pub fn slow_down(next: Next, held: usize, max_interval: Duration) -> Next {
    if held <= SLOW_ABOVE {
        return next;
    }
    Next {
        wait: max_interval,
        reason: format!("over {SLOW_ABOVE} items held: max_interval until released or discarded"),
    }
}

/// Which held items a command acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    All,
    /// The items of the source configured as `url` (of `author`, or of every author).
    Source {
        url: String,
        author: Option<String>,
    },
}

impl Selection {
    fn picks(&self, item: &StagedItem) -> bool {
        match self {
            Selection::All => true,
            Selection::Source { url, author } => {
                same_url(&item.source, url) && author.as_ref().is_none_or(|a| *a == item.author)
            }
        }
    }

    /// As query parameters for the daemon's endpoint.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        match self {
            Selection::All => vec![("all", "true".into())],
            Selection::Source { url, author } => {
                let mut q = vec![("source", url.clone())];
                q.extend(author.clone().map(|a| ("author", a)));
                q
            }
        }
    }

    /// From the endpoint's query parameters; `None` when neither `all` nor `source` is given.
    pub fn from_query(all: bool, source: Option<String>, author: Option<String>) -> Option<Self> {
        match (all, source) {
            (true, _) => Some(Selection::All),
            (false, Some(url)) => Some(Selection::Source { url, author }),
            (false, None) => None,
        }
    }
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim().trim_end_matches('/')
}

/// One held item, as listed (its text made safe to print: see [`crate::printable`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldItem {
    pub url: Option<String>,
    pub title: Option<String>,
    pub found_at: DateTime<Utc>,
}

/// One source's held items.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldSource {
    pub author: String,
    pub url: String,
    pub items: Vec<HeldItem>,
}

/// Every source's held items, oldest first (a scan: run it on the blocking pool).
pub fn list(store: &Store) -> Result<Vec<HeldSource>, StoreError> {
    let mut out: Vec<HeldSource> = Vec::new();
    for held in store.held()? {
        let item = HeldItem {
            url: held.item.canonical_url.as_deref().map(printable),
            title: held.item.title.as_deref().map(printable),
            found_at: held.found_at,
        };
        match out.last_mut() {
            Some(s) if s.author == held.author && s.url == held.source => s.items.push(item),
            _ => out.push(HeldSource {
                author: held.author,
                url: held.source,
                items: vec![item],
            }),
        }
    }
    Ok(out)
}

/// What to do with held items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldAction {
    /// Stage them for delivery.
    Release,
    /// Drop them (they stay known, so they are never delivered).
    Discard,
}

impl HeldAction {
    /// The past tense, as printed (and the field of the endpoint's answer).
    pub fn done(self) -> &'static str {
        match self {
            HeldAction::Release => "released",
            HeldAction::Discard => "discarded",
        }
    }
}

/// Releases or discards the selected held items; returns how many.
pub async fn apply(
    store: &Store,
    action: HeldAction,
    selection: Selection,
) -> Result<usize, StoreError> {
    let picks = move |item: &StagedItem| selection.picks(item);
    let n = match action {
        HeldAction::Release => store.release_held(picks).await?,
        HeldAction::Discard => store.discard_held(picks).await?,
    };
    if n > 0 {
        tracing::info!(items = n, "held items {}", action.done());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: HoldRule = HoldRule {
        above: 20,
        share: 0.8,
        share_min: 5,
    };

    fn counts(new: usize, returned: usize) -> PollCounts {
        PollCounts {
            new,
            returned,
            held_before: 0,
            consent: false,
        }
    }

    #[test]
    fn a_flood_is_held_unless_the_user_consented_or_opted_out() {
        assert_eq!(decide(Some(&RULE), counts(25, 35)), Some(Held::Flood));
        assert_eq!(decide(Some(&RULE), counts(2, 35)), None);
        assert_eq!(decide(None, counts(25, 35)), None);
        let backfill = PollCounts {
            consent: true,
            ..counts(25, 25)
        };
        assert_eq!(decide(Some(&RULE), backfill), None);
    }

    #[test]
    fn later_items_of_a_held_source_join_the_hold() {
        let later = PollCounts {
            held_before: 25,
            ..counts(1, 36)
        };
        assert_eq!(decide(Some(&RULE), later), Some(Held::Joining));
        let nothing_new = PollCounts {
            held_before: 25,
            ..counts(0, 36)
        };
        assert_eq!(decide(Some(&RULE), nothing_new), None);
    }

    #[test]
    fn many_held_items_slow_the_source_down() {
        let next = Next {
            wait: Duration::from_secs(60),
            reason: "interval".into(),
        };
        let max = Duration::from_secs(12 * 3600);
        assert_eq!(slow_down(next.clone(), SLOW_ABOVE, max), next);
        let slow = slow_down(next, SLOW_ABOVE + 1, max);
        assert_eq!(slow.wait, max);
        assert!(slow.reason.contains("held"), "{}", slow.reason);
    }

    #[test]
    fn a_selection_names_a_source_by_its_configured_url() {
        let sel = Selection::Source {
            url: "https://a.example/feed/".into(),
            author: None,
        };
        let item = |author: &str, source: &str| StagedItem {
            author: author.into(),
            source: source.into(),
            found_at: Utc::now(),
            item: crate::identity::Item {
                id: "g".into(),
                canonical_url: None,
                link_shared: false,
                title: None,
                content_hash: "h".into(),
                published: None,
                revision: 0,
                keys: Default::default(),
            },
        };
        assert!(sel.picks(&item("A", "https://a.example/feed")));
        assert!(!sel.picks(&item("A", "https://b.example/feed")));
        let of_b = Selection::Source {
            url: "https://a.example/feed".into(),
            author: Some("B".into()),
        };
        assert!(!of_b.picks(&item("A", "https://a.example/feed")));
        assert_eq!(
            Selection::from_query(false, Some("u".into()), None),
            Some(Selection::Source {
                url: "u".into(),
                author: None
            })
        );
        assert_eq!(Selection::from_query(false, None, None), None);
    }
}
