//! outbox/follow.rs: the runs deliveries started are followed: the engine is asked about every
//! run that has not ended (at most once per `follow_interval`), what it says is stored, and a run
//! it stops knowing counts as lost after `LOST_AFTER` failed asks in a row.

use std::time::Duration;

use chrono::Utc;
use tracing::{Instrument, info, warn};

use crate::deliver::Deliverer;
use crate::delivery::{Delivery, DeliveryState, RunFollow};
use crate::store::{Store, StoreError};

/// Status failures in a row after which a followed run counts as lost (the engine forgot it).
pub const LOST_AFTER: u32 = 20;

/// Asks the engine about every run that has not ended (at most once per `min_age`), and stores
/// what it says. Returns the deliveries whose run ended now.
pub async fn follow_runs(
    store: &Store,
    deliverer: &Deliverer,
    min_age: Duration,
) -> Result<Vec<Delivery>, StoreError> {
    let mut ended = Vec::new();
    for (seq, d) in store.deliveries()? {
        let DeliveryState::Done(run) = &d.state else {
            continue;
        };
        if !run.follow.open() {
            continue;
        }
        let now = Utc::now();
        if run
            .checked_at
            .is_some_and(|t| now - t < chrono::Duration::from_std(min_age).unwrap_or_default())
        {
            continue;
        }
        let span = tracing::info_span!("run", batch = %d.batch_id, run_id = %run.handle);
        if let Some(d) = follow_one(store, deliverer, seq, d)
            .instrument(span)
            .await?
        {
            ended.push(d);
        }
    }
    Ok(ended)
}

/// Asks about one open run and stores the answer; returns the delivery if its run ended now.
async fn follow_one(
    store: &Store,
    deliverer: &Deliverer,
    seq: u64,
    mut d: Delivery,
) -> Result<Option<Delivery>, StoreError> {
    let DeliveryState::Done(run) = &mut d.state else {
        return Ok(None);
    };
    run.checked_at = Some(Utc::now());
    let before = (run.follow, run.message.clone(), run.errors);
    let mut ended = false;
    match deliverer.status(&run.handle).await {
        Ok(Some(status)) => {
            run.errors = 0;
            let follow = RunFollow::Reported(status.state);
            if run.follow != follow {
                info!(state = %status.state, "run state changed");
            }
            run.follow = follow;
            run.message = status.message;
            if status.state.is_terminal() {
                if status.state != trigger_client::RunState::Succeeded {
                    warn!(message = ?run.message, "run did not succeed; `watcher redeliver` starts it again");
                }
                ended = true;
            }
        }
        Ok(None) => run.follow = RunFollow::Untracked,
        Err(e) => {
            run.errors += 1;
            let error = crate::causes::one_line(&e);
            tracing::debug!(%error, "run status unavailable");
            if run.errors >= LOST_AFTER {
                warn!(%error, "run lost: the engine no longer reports it; `watcher redeliver` can start the batch again");
                run.follow = RunFollow::Lost;
                run.message = Some(format!(
                    "status unavailable {LOST_AFTER} times in a row: {error}"
                ));
            }
        }
    }
    // Only a change is worth a disk write now; the check time rides along lazily.
    if before != (run.follow, run.message.clone(), run.errors) {
        store.put_delivery(seq, &d).await?;
    } else {
        store.put_delivery_lazy(seq, &d).await?;
    }
    Ok(ended.then_some(d))
}
