//! outbox/batch.rs: staged items become batches: grouped (one per author, or one for everyone),
//! held by the batch window and the cost guard, named by a content-derived batch id (a batch
//! rebuilt after a crash keeps its id, and the trigger carries it as the idempotency key), and
//! moved to the outbox. The dry-run preview shows the same grouping without writing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::config::OutputFormat;
use crate::delivery::{Delivery, DeliveryItem, DeliveryState, Phase};
use crate::emit;
use crate::store::{StagedItem, Store, StoreError};

/// sha256 over the format and the sorted (author, source, item id, content hash, revision) of
/// its items; 16 hex chars. The content hash and the revision make an updated article
/// (`trigger_on_update`) a new batch, also when its content returns to an earlier state (A → B →
/// A). Revision 0 adds nothing, so the ids of new articles are those earlier versions gave.
pub fn batch_id(format: OutputFormat, items: &[StagedItem]) -> String {
    let mut keys: Vec<String> = items
        .iter()
        .map(|s| {
            let mut key = format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}",
                s.author, s.source, s.item.id, s.item.content_hash
            );
            if s.item.revision > 0 {
                key.push_str(&format!("\u{1f}r{}", s.item.revision));
            }
            key
        })
        .collect();
    keys.sort();
    keys.dedup();
    let mut h = Sha256::new();
    h.update(format.as_str().as_bytes());
    for k in keys {
        h.update([0]);
        h.update(k.as_bytes());
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// How staged items become batches.
#[derive(Debug, Clone)]
pub struct Batching<'a> {
    pub output_dir: &'a Path,
    pub format: OutputFormat,
    /// With a window, a group waits until its oldest item is that old (more may join
    /// meanwhile); without, every group is ready.
    pub window: Option<Duration>,
    /// Cost guard: no batch forms until this long after the previous run started.
    pub min_interval: Duration,
}

/// Staged items grouped per batch: per author, or all together for `end_to_end_data`.
pub fn group_staged<T>(
    format: OutputFormat,
    staged: impl IntoIterator<Item = (T, StagedItem)>,
) -> BTreeMap<String, Vec<(T, StagedItem)>> {
    let mut groups: BTreeMap<String, Vec<(T, StagedItem)>> = BTreeMap::new();
    for (key, s) in staged {
        let group = match format {
            OutputFormat::DigitalDataEtl => s.author.clone(),
            OutputFormat::EndToEndData => String::new(),
        };
        groups.entry(group).or_default().push((key, s));
    }
    groups
}

/// When the cost guard lets the next batch form, if it holds batches now.
pub fn held_until(
    store: &Store,
    min_interval: Duration,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    if min_interval.is_zero() {
        return Ok(None);
    }
    Ok(store
        .last_delivered_at()?
        .map(|t| t + chrono::Duration::from_std(min_interval).unwrap_or(chrono::Duration::MAX))
        .filter(|until| *until > now))
}

/// Groups staged items into batches and moves them to the outbox. Returns the batches formed.
pub async fn form_batches(
    store: &Store,
    batching: &Batching<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Delivery>, StoreError> {
    let staged = store.staged()?;
    if staged.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(until) = held_until(store, batching.min_interval, now)? {
        tracing::debug!(items = staged.len(), %until, "cost guard: holding new articles until then");
        return Ok(Vec::new());
    }
    let mut formed = Vec::new();
    for (_, group) in group_staged(batching.format, staged) {
        let oldest = group.iter().map(|(_, s)| s.found_at).min().unwrap_or(now);
        if let Some(window) = batching.window
            && now - oldest < chrono::Duration::from_std(window).unwrap_or_default()
        {
            continue;
        }
        let (keys, items): (Vec<u64>, Vec<StagedItem>) = group.into_iter().unzip();
        let delivery = new_delivery(batching.format, batching.output_dir, &items, now);
        let added = store.form_batch(&keys, &delivery).await?;
        let _batch = tracing::info_span!("batch", batch = %delivery.batch_id).entered();
        if !added {
            // Only a batch rebuilt after a crash (the same items) is already in the outbox.
            info!("batch already in the outbox; not added twice");
        } else {
            info!(
                authors = ?delivery.authors,
                items = delivery.items.len(),
                "batch formed"
            );
            formed.push(delivery);
        }
    }
    Ok(formed)
}

/// A pending delivery for `items`; items of one author that are one article (the same identity
/// key) are listed once.
pub fn new_delivery(
    format: OutputFormat,
    output_dir: &Path,
    items: &[StagedItem],
    now: DateTime<Utc>,
) -> Delivery {
    let id = batch_id(format, items);
    let mut authors: Vec<String> = Vec::new();
    for s in items {
        if !authors.contains(&s.author) {
            authors.push(s.author.clone());
        }
    }
    // One article (and revision) once per author, whichever sources staged it (its identity
    // key, see `platform`): the first link staged is the one delivered.
    let mut articles = std::collections::HashSet::new();
    let delivery_items: Vec<DeliveryItem> = items
        .iter()
        .filter(|s| match s.item.identity_key() {
            Some(key) if !s.item.link_shared => {
                articles.insert((s.author.as_str(), key, s.item.revision))
            }
            _ => true,
        })
        .filter_map(|s| {
            Some(DeliveryItem {
                author: s.author.clone(),
                source: s.source.clone(),
                url: s.item.canonical_url.clone()?,
                title: s.item.title.clone(),
                published: s.item.published,
                revision: s.item.revision,
            })
        })
        .collect();
    Delivery {
        config_path: output_dir.join(emit::file_name(format, &authors, now, &id)),
        batch_id: id,
        created_at: now,
        format,
        authors,
        items: delivery_items,
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        delivered_at: None,
        redeliveries: 0,
    }
}

/// Dry run: the pending deliveries that are due, then the batches the staged items plus
/// `found` (this pass's finds) would form.
pub fn preview(
    store: &Store,
    format: OutputFormat,
    output_dir: &Path,
    found: Vec<StagedItem>,
    now: DateTime<Utc>,
) -> Result<Vec<Delivery>, StoreError> {
    let mut staged: Vec<StagedItem> = store.staged()?.into_iter().map(|(_, s)| s).collect();
    staged.extend(found);
    let groups = group_staged(format, staged.into_iter().map(|s| ((), s)));
    let mut out: Vec<Delivery> = store
        .deliveries()?
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d.phase() == Phase::Pending && d.next_attempt_at <= now)
        .collect();
    out.extend(groups.values().map(|group| {
        let items: Vec<StagedItem> = group.iter().map(|(_, s)| s.clone()).collect();
        new_delivery(format, output_dir, &items, now)
    }));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{FollowedRun, RunFollow};
    use crate::identity::Item;

    fn run(follow: RunFollow) -> FollowedRun {
        FollowedRun {
            handle: "webhook:r1".parse().unwrap(),
            follow,
            message: None,
            checked_at: None,
            errors: 0,
            unreachable_since: None,
        }
    }

    fn staged(author: &str, id: &str) -> StagedItem {
        StagedItem {
            author: author.into(),
            source: "https://x/feed".into(),
            found_at: Utc::now(),
            item: Item {
                id: id.into(),
                canonical_url: Some(format!("https://x/{id}")),
                link_shared: false,
                title: None,
                content_hash: "h".into(),
                published: None,
                revision: 0,
                keys: Default::default(),
            },
        }
    }

    #[test]
    fn batch_id_ignores_order_and_depends_on_content() {
        let a = [staged("A", "1"), staged("A", "2")];
        let b = [staged("A", "2"), staged("A", "1")];
        let f = OutputFormat::DigitalDataEtl;
        assert_eq!(batch_id(f, &a), batch_id(f, &b));
        assert_ne!(batch_id(f, &a), batch_id(f, &a[..1]));
        assert_ne!(batch_id(f, &a), batch_id(OutputFormat::EndToEndData, &a));
        assert_eq!(batch_id(f, &a).len(), 16);
    }

    #[test]
    fn a_later_revision_of_the_same_content_is_another_batch() {
        let first = [staged("A", "1")];
        let mut back = first.clone();
        back[0].item.revision = 2;
        let f = OutputFormat::DigitalDataEtl;
        assert_ne!(batch_id(f, &first), batch_id(f, &back));
        // Revision 0 leaves the id as it was before revisions were counted.
        assert_eq!(batch_id(f, &first), "8edfae3743c1c320");
    }

    #[test]
    fn one_article_staged_by_two_sources_is_listed_once_per_author() {
        let mut author_feed = staged("A", "medium-author");
        author_feed.item.keys.identity = Some("medium:0123456789ab".into());
        let mut publication = staged("A", "medium-publication");
        publication.source = "https://x/publication".into();
        publication.item.keys = author_feed.item.keys.clone();
        let mut other_author = publication.clone();
        other_author.author = "B".into();
        let d = new_delivery(
            OutputFormat::EndToEndData,
            Path::new("out"),
            &[author_feed, publication, other_author, staged("A", "2")],
            Utc::now(),
        );
        let listed: Vec<(&str, &str)> = (d.items.iter())
            .map(|i| (i.author.as_str(), i.url.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("A", "https://x/medium-author"),
                ("B", "https://x/medium-publication"),
                ("A", "https://x/2")
            ],
            "the first link staged is delivered"
        );
    }

    #[tokio::test]
    async fn window_holds_young_groups_and_rebuilt_batches_keep_their_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let items = [staged("A", "1"), staged("B", "2")];
        store
            .commit_poll(crate::store::PollCommit {
                source_key: "k".into(),
                state: Default::default(),
                record: vec![],
                stage: items.to_vec(),
                hold: vec![],
                baseline: false,
            })
            .await
            .unwrap();
        let out = dir.path().join("out");
        let f = OutputFormat::DigitalDataEtl;
        let batching = |window| Batching {
            output_dir: &out,
            format: f,
            window,
            min_interval: Duration::ZERO,
        };
        let held = form_batches(&store, &batching(Some(Duration::from_secs(60))), Utc::now())
            .await
            .unwrap();
        assert!(held.is_empty());
        let formed = form_batches(&store, &batching(None), Utc::now())
            .await
            .unwrap();
        assert_eq!(formed.len(), 2);
        assert_eq!(formed[0].batch_id, batch_id(f, &items[..1]));
        assert!(store.staged().unwrap().is_empty());
        // The same batch formed again (as after a crash before the staged items were removed)
        // is not added twice.
        let again = new_delivery(f, &out, &items[..1], Utc::now());
        assert!(!store.form_batch(&[], &again).await.unwrap());
        assert_eq!(store.deliveries().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_cost_guard_holds_and_merges_new_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let out = dir.path().join("out");
        let guard = Batching {
            output_dir: &out,
            format: OutputFormat::DigitalDataEtl,
            window: None,
            min_interval: Duration::from_secs(3600),
        };
        let stage = |items: Vec<StagedItem>| crate::store::PollCommit {
            source_key: "k".into(),
            state: Default::default(),
            record: vec![],
            stage: items,
            hold: vec![],
            baseline: false,
        };
        store
            .commit_poll(stage(vec![staged("A", "1")]))
            .await
            .unwrap();
        let first = form_batches(&store, &guard, Utc::now()).await.unwrap();
        assert_eq!(first.len(), 1, "no run yet: nothing to hold");
        let (seq, mut d) = store.deliveries().unwrap().remove(0);
        d.state = DeliveryState::Done(run(RunFollow::Started));
        d.delivered_at = Some(Utc::now());
        store.put_delivery(seq, &d).await.unwrap();
        store
            .commit_poll(stage(vec![staged("A", "2")]))
            .await
            .unwrap();
        store
            .commit_poll(stage(vec![staged("A", "3")]))
            .await
            .unwrap();
        assert!(
            form_batches(&store, &guard, Utc::now())
                .await
                .unwrap()
                .is_empty()
        );
        let later = Utc::now() + chrono::Duration::hours(2);
        let merged = form_batches(&store, &guard, later).await.unwrap();
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].items.len(), 2, "what arrived meanwhile is merged");
    }

    #[tokio::test]
    async fn pruned_deliveries_stay_known_as_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let items = [staged("A", "1")];
        let mut d = new_delivery(OutputFormat::DigitalDataEtl, dir.path(), &items, Utc::now());
        assert!(store.form_batch(&[], &d).await.unwrap());
        let (seq, _) = store.deliveries().unwrap().remove(0);
        d.state = DeliveryState::Done(run(RunFollow::Reported(
            trigger_client::RunState::Succeeded,
        )));
        d.delivered_at = Some(Utc::now() - chrono::Duration::days(100));
        store.put_delivery(seq, &d).await.unwrap();
        let cutoff = Utc::now() - chrono::Duration::days(90);
        assert_eq!(store.prune_deliveries(cutoff).await.unwrap(), 1);
        assert!(store.deliveries().unwrap().is_empty());
        assert!(
            !store.form_batch(&[], &d).await.unwrap(),
            "its batch id is still known"
        );
    }

    #[test]
    fn redelivery_keys_derive_from_the_batch_id() {
        let mut d = new_delivery(
            OutputFormat::DigitalDataEtl,
            Path::new("/o"),
            &[staged("A", "1")],
            Utc::now(),
        );
        assert_eq!(d.idempotency_key(), d.batch_id);
        d.redeliveries = 2;
        assert_eq!(d.idempotency_key(), format!("{}-r2", d.batch_id));
    }
}
