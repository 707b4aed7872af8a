//! outbox.rs: staged items become batches (one per author, or one for everyone), and pending
//! batches are delivered oldest first: write the config, trigger, record the outcome, back off
//! on failure. The batch id is derived from the batch's content, so a batch rebuilt after a crash
//! keeps its id, and the trigger carries it as the idempotency key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::config::OutputFormat;
use crate::deliver::Deliverer;
use crate::emit;
use crate::store::{Delivery, DeliveryItem, DeliveryState, StagedItem, Store, StoreError};

/// sha256 over the format and the sorted (author, source, item id, content hash) of its items;
/// 16 hex chars. The content hash makes an updated article (`trigger_on_update`) a new batch.
pub fn batch_id(format: OutputFormat, items: &[StagedItem]) -> String {
    let mut keys: Vec<String> = items
        .iter()
        .map(|s| {
            format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}",
                s.author, s.source, s.item.id, s.item.content_hash
            )
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
    let last = store
        .deliveries()?
        .into_iter()
        .filter_map(|(_, d)| d.delivered_at)
        .max();
    Ok(last
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
        if !added {
            // Only a batch rebuilt after a crash (the same items) is already in the outbox.
            info!(batch = %delivery.batch_id, "batch already in the outbox; not added twice");
        } else {
            info!(
                batch = %delivery.batch_id,
                authors = ?delivery.authors,
                items = delivery.items.len(),
                "batch formed"
            );
            formed.push(delivery);
        }
    }
    Ok(formed)
}

/// A pending delivery for `items`.
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
    let delivery_items: Vec<DeliveryItem> = items
        .iter()
        .filter_map(|s| {
            Some(DeliveryItem {
                author: s.author.clone(),
                source: s.source.clone(),
                url: s.item.canonical_url.clone()?,
                title: s.item.title.clone(),
                published: s.item.published,
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
        run: None,
        delivered_at: None,
        run_state: None,
        run_message: None,
        run_checked_at: None,
        redeliveries: 0,
        run_errors: 0,
    }
}

/// Status failures in a row after which a followed run counts as lost (the engine forgot it).
pub const LOST_AFTER: u32 = 20;

/// Capped exponential backoff with ±20% jitter: `base × 2^(attempt-1)`, at most `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(
        1u32.checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX),
    );
    let capped = exp.min(max);
    let jitter = rand::rng().random_range(0.8..=1.2);
    capped.mul_f64(jitter).min(max)
}

/// What happened to one delivery in this pass.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    pub batch_id: String,
    pub config_path: std::path::PathBuf,
    pub outcome: Result<String, String>,
    pub state: DeliveryState,
}

/// Delivers every pending batch that is due, oldest first.
pub async fn deliver_due(
    store: &Store,
    deliverer: &Deliverer,
    now: DateTime<Utc>,
) -> Result<Vec<DeliveryReport>, StoreError> {
    let mut reports = Vec::new();
    for (seq, mut d) in store.deliveries()? {
        if d.state != DeliveryState::Pending || d.next_attempt_at > now {
            continue;
        }
        crate::crash::point("before-send");
        let outcome = deliver_one(deliverer, &d).await;
        d.attempts += 1;
        match &outcome {
            Ok(run) => {
                info!(batch = %d.batch_id, run_id = %run, config = %d.config_path.display(), "delivered");
                d.state = DeliveryState::Done;
                d.run = Some(run.clone());
                d.delivered_at = Some(Utc::now());
                d.last_error = None;
            }
            Err(error) => {
                d.last_error = Some(error.clone());
                if d.attempts >= deliverer.max_attempts {
                    d.state = DeliveryState::Failed;
                    warn!(batch = %d.batch_id, attempts = d.attempts, %error, "delivery failed for good; `watcher retry` re-queues it");
                } else {
                    let wait = backoff(
                        d.attempts,
                        deliverer.retry_base_delay,
                        deliverer.retry_max_delay,
                    );
                    d.next_attempt_at =
                        Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    warn!(batch = %d.batch_id, attempt = d.attempts, retry_in = ?wait, %error, "delivery failed; will retry");
                }
            }
        }
        store.put_delivery(seq, &d).await?;
        reports.push(DeliveryReport {
            batch_id: d.batch_id.clone(),
            config_path: d.config_path.clone(),
            outcome,
            state: d.state,
        });
    }
    Ok(reports)
}

/// Writes the batch's config and triggers; returns the run handle.
async fn deliver_one(deliverer: &Deliverer, d: &Delivery) -> Result<String, String> {
    let yaml = emit::config_yaml(d.format, &d.batch_id, &d.items);
    emit::write_atomic(&d.config_path, yaml.as_bytes()).map_err(|e| {
        format!(
            "cannot write config `{}`: {e}; hint: check output_dir permissions and free disk space",
            d.config_path.display()
        )
    })?;
    deliverer.trigger(d).await
}

/// Asks the engine about every run that has not ended (at most once per `min_age`), and stores
/// what it says. Returns the deliveries whose run ended now.
pub async fn follow_runs(
    store: &Store,
    deliverer: &Deliverer,
    min_age: Duration,
) -> Result<Vec<Delivery>, StoreError> {
    let mut ended = Vec::new();
    for (seq, mut d) in store.deliveries()? {
        if !d.run_open() {
            continue;
        }
        let now = Utc::now();
        if d.run_checked_at
            .is_some_and(|t| now - t < chrono::Duration::from_std(min_age).unwrap_or_default())
        {
            continue;
        }
        let run = d.run.clone().unwrap_or_default();
        d.run_checked_at = Some(now);
        let before = (d.run_state.clone(), d.run_message.clone(), d.run_errors);
        match deliverer.status(&run).await {
            Ok(Some(status)) => {
                d.run_errors = 0;
                let state = status.state.as_str().to_string();
                if d.run_state.as_deref() != Some(state.as_str()) {
                    info!(batch = %d.batch_id, run_id = %run, state = %state, "run state changed");
                }
                d.run_state = Some(state);
                d.run_message = status.message;
                if status.state.is_terminal() {
                    if status.state != trigger_client::RunState::Succeeded {
                        warn!(batch = %d.batch_id, run_id = %run, message = ?d.run_message, "run did not succeed; `watcher redeliver` starts it again");
                    }
                    ended.push(d.clone());
                }
            }
            Ok(None) => d.run_state = Some("untracked".into()),
            Err(e) => {
                d.run_errors += 1;
                tracing::debug!(batch = %d.batch_id, run_id = %run, error = %e, "run status unavailable");
                if d.run_errors >= LOST_AFTER {
                    warn!(batch = %d.batch_id, run_id = %run, error = %e, "run lost: the engine no longer reports it; `watcher redeliver` can start the batch again");
                    d.run_state = Some("lost".into());
                    d.run_message = Some(format!(
                        "status unavailable {LOST_AFTER} times in a row: {e}"
                    ));
                }
            }
        }
        // Only a change is worth a disk write now; the check time rides along lazily.
        if before != (d.run_state.clone(), d.run_message.clone(), d.run_errors) {
            store.put_delivery(seq, &d).await?;
        } else {
            store.put_delivery_lazy(seq, &d).await?;
        }
    }
    Ok(ended)
}

#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    #[error("no batch `{0}`; hint: `watcher status` lists the batches")]
    Unknown(String),
    #[error(
        "batch `{batch}` is {what}; only a batch whose run failed or was cancelled, or whose delivery failed, can be redelivered"
    )]
    NotEnded { batch: String, what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues a batch whose run failed (or whose delivery failed) again, with a new idempotency key
/// derived from the batch id, so the engine starts a new run.
pub async fn redeliver(store: &Store, batch: &str) -> Result<Delivery, RedeliverError> {
    let (seq, mut d) = store
        .delivery_by_batch(batch)?
        .ok_or_else(|| RedeliverError::Unknown(batch.to_string()))?;
    let run_ended_badly = matches!(
        d.run_state.as_deref(),
        Some("failed" | "cancelled" | "lost")
    );
    if !(run_ended_badly || d.state == DeliveryState::Failed) {
        let what = match (&d.state, d.run_state.as_deref()) {
            (DeliveryState::Pending, _) => "still pending".to_string(),
            (_, Some(state)) => format!("delivered and its run is {state}"),
            _ => "delivered".to_string(),
        };
        return Err(RedeliverError::NotEnded {
            batch: batch.to_string(),
            what,
        });
    }
    // A delivery that failed to send may still have reached the engine: keep its key, so the
    // engine answers with that run instead of starting a second. Only a run that ended badly
    // needs a new key.
    if run_ended_badly {
        d.redeliveries += 1;
    }
    d.state = DeliveryState::Pending;
    d.attempts = 0;
    d.next_attempt_at = Utc::now();
    d.run = None;
    d.run_state = None;
    d.run_message = None;
    d.run_checked_at = None;
    d.last_error = None;
    store.put_delivery(seq, &d).await?;
    info!(batch = %d.batch_id, key = %d.idempotency_key(), "batch queued for redelivery");
    Ok(d)
}

/// Moves failed deliveries back to pending, due now. Returns how many.
pub async fn requeue_failed(store: &Store, only: Option<&str>) -> Result<usize, StoreError> {
    let mut n = 0;
    for (seq, mut d) in store.deliveries()? {
        if d.state == DeliveryState::Failed && only.is_none_or(|b| b == d.batch_id) {
            d.state = DeliveryState::Pending;
            d.attempts = 0;
            d.next_attempt_at = Utc::now();
            store.put_delivery(seq, &d).await?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Item;

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
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(100);
        for (attempt, nominal) in [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0)] {
            let d = backoff(attempt, base, max).as_secs_f64();
            assert!(d >= nominal * 0.8 && d <= nominal * 1.2, "{attempt}: {d}");
        }
        assert!(backoff(5, base, max) <= max);
        assert!(backoff(60, base, max) <= max);
        assert_eq!(backoff(3, Duration::ZERO, max), Duration::ZERO);
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
        };
        store
            .commit_poll(stage(vec![staged("A", "1")]))
            .await
            .unwrap();
        let first = form_batches(&store, &guard, Utc::now()).await.unwrap();
        assert_eq!(first.len(), 1, "no run yet: nothing to hold");
        let (seq, mut d) = store.deliveries().unwrap().remove(0);
        d.state = DeliveryState::Done;
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
        d.state = DeliveryState::Done;
        d.delivered_at = Some(Utc::now() - chrono::Duration::days(100));
        d.run_state = Some("succeeded".into());
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
