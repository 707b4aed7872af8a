//! outbox/send.rs: pending batches are delivered oldest first: the config rendered once, written
//! to its file and handed to the trigger; the outcome recorded; a failure backs off
//! (`trigger_client::RetryPolicy`) until the attempts run out. Also the two ways back to pending:
//! `retry` (a failed delivery) and `redeliver` (a run that ended badly, with a new key).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, warn};
use trigger_client::RunHandle;

use crate::deliver::{Deliverer, SendError};
use crate::delivery::{Delivery, DeliveryState, FollowedRun, Phase, RunFollow};
use crate::emit;
use crate::store::{Store, StoreError};

/// What happened to one delivery in this pass.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    pub batch_id: String,
    pub config_path: PathBuf,
    pub outcome: Result<RunHandle, SendError>,
    pub state: Phase,
}

/// Delivers every pending batch that is due, oldest first.
pub async fn deliver_due(
    store: &Store,
    deliverer: &Deliverer,
    now: DateTime<Utc>,
) -> Result<Vec<DeliveryReport>, StoreError> {
    let mut reports = Vec::new();
    for (seq, d) in store.unsettled_deliveries()? {
        if d.state != DeliveryState::Pending || d.next_attempt_at > now {
            continue;
        }
        let span = tracing::info_span!("delivery", batch = %d.batch_id);
        reports.push(
            deliver_one(store, deliverer, seq, d)
                .instrument(span)
                .await?,
        );
    }
    Ok(reports)
}

/// Sends one pending delivery and records the outcome.
async fn deliver_one(
    store: &Store,
    deliverer: &Deliverer,
    seq: u64,
    mut d: Delivery,
) -> Result<DeliveryReport, StoreError> {
    crate::crash::point("before-send");
    let outcome = send(deliverer, &d).await;
    d.attempts += 1;
    match &outcome {
        Ok(run) => {
            info!(run_id = %run, config = %d.config_path.display(), "delivered");
            d.state = DeliveryState::Done(FollowedRun {
                handle: run.clone(),
                follow: RunFollow::Started,
                message: None,
                checked_at: None,
                errors: 0,
                unreachable_since: None,
            });
            d.delivered_at = Some(Utc::now());
            d.last_error = None;
        }
        Err(error) => {
            let error_line = crate::causes::one_line(error);
            d.last_error = Some(error_line.clone());
            let policy = deliverer.outbox_policy();
            if !policy.allows_retry(d.attempts) {
                d.state = DeliveryState::Failed;
                warn!(attempts = d.attempts, error = %error_line, "delivery failed for good; `watcher retry` re-queues it");
            } else {
                let wait = policy.delay(d.attempts, None);
                d.next_attempt_at = chrono::Duration::from_std(wait)
                    .ok()
                    .and_then(|wait| Utc::now().checked_add_signed(wait))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                warn!(attempt = d.attempts, retry_in = ?wait, error = %error_line, "delivery failed; will retry");
            }
        }
    }
    store.put_delivery(seq, &d).await?;
    Ok(DeliveryReport {
        state: d.phase(),
        batch_id: d.batch_id,
        config_path: d.config_path,
        outcome,
    })
}

/// Renders the batch's config once, writes it and triggers; returns the run handle.
async fn send(deliverer: &Deliverer, d: &Delivery) -> Result<RunHandle, SendError> {
    let config = deliverer.render(d)?;
    emit::write_atomic(&d.config_path, config.yaml.as_bytes()).map_err(|source| {
        SendError::WriteConfig {
            path: d.config_path.clone(),
            source: source.into(),
        }
    })?;
    deliverer.trigger(d, config.json).await
}

#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    #[error("no batch `{0}`; hint: `watcher status` lists the batches")]
    Unknown(String),
    #[error(
        "batch `{batch}` is {what}; only a batch whose run failed or was cancelled, or whose delivery failed, can be redelivered"
    )]
    NotEnded { batch: String, what: String },
    #[error(
        "the run of batch `{batch}` is lost ({why}), so the engine may still be running it; hint: check the engine, then `watcher redeliver {batch} --force`"
    )]
    LostNeedsForce { batch: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues a batch whose run failed (or whose delivery failed) again, with a new idempotency key
/// derived from the batch id, so the engine starts a new run. A lost run (its status unavailable
/// for `run_lost_after`) may still be running: only `force` starts it again.
pub async fn redeliver(
    store: &Store,
    batch: &str,
    force: bool,
) -> Result<Delivery, RedeliverError> {
    let (seq, mut d) = store
        .delivery_by_batch(batch)?
        .ok_or_else(|| RedeliverError::Unknown(batch.to_string()))?;
    if let Some(run) = d.run()
        && run.follow == RunFollow::Lost
        && !force
    {
        return Err(RedeliverError::LostNeedsForce {
            batch: batch.to_string(),
            why: run
                .message
                .clone()
                .unwrap_or_else(|| "its status is unavailable".into()),
        });
    }
    let run_ended_badly = d.run().is_some_and(|r| r.follow.ended_badly());
    if !(run_ended_badly || d.state == DeliveryState::Failed) {
        let what = match &d.state {
            DeliveryState::Pending => "still pending".to_string(),
            DeliveryState::Done(run) => match run.follow.name() {
                Some(state) => format!("delivered and its run is {state}"),
                None => "delivered".to_string(),
            },
            DeliveryState::Failed => unreachable!("a failed delivery can be redelivered"),
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
