//! outbox/follow.rs: the runs deliveries started are followed: the engine is asked about every
//! run that has not ended (at most once per `follow_interval`), what it says is stored, and a run
//! whose status stays unavailable for `run_lost_after` (an engine down for a day, or one that
//! forgot the run) counts as lost. An engine down for minutes loses nothing: the run may still be
//! running, and only `redeliver --force` starts a lost run again.

use std::time::Duration;

use chrono::Utc;
use tracing::{Instrument, info, warn};

use crate::deliver::Deliverer;
use crate::delivery::{Delivery, DeliveryState, RunFollow};
use crate::store::{Store, StoreError};

/// How runs are followed.
#[derive(Debug, Clone, Copy)]
pub struct Following {
    /// A run is asked about at most once per this long.
    pub min_age: Duration,
    /// A run whose status stays unavailable this long counts as lost.
    pub lost_after: Duration,
}

/// Asks the engine about every run that has not ended (at most once per `min_age`), and stores
/// what it says. Returns the deliveries whose run ended now.
pub async fn follow_runs(
    store: &Store,
    deliverer: &Deliverer,
    following: Following,
) -> Result<Vec<Delivery>, StoreError> {
    let min_age = following.min_age;
    let mut ended = Vec::new();
    for (seq, d) in store.unsettled_deliveries()? {
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
        if let Some(d) = follow_one(store, deliverer, following.lost_after, seq, d)
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
    lost_after: Duration,
    seq: u64,
    mut d: Delivery,
) -> Result<Option<Delivery>, StoreError> {
    let DeliveryState::Done(run) = &mut d.state else {
        return Ok(None);
    };
    let now = Utc::now();
    run.checked_at = Some(now);
    let before = (run.follow, run.message.clone(), run.errors);
    let mut ended = false;
    match deliverer.status(&run.handle).await {
        Ok(Some(status)) => {
            run.errors = 0;
            run.unreachable_since = None;
            let follow = RunFollow::Reported(status.state);
            if run.follow != follow {
                info!(state = %status.state, "run state changed");
            }
            run.follow = follow;
            run.message = status.message;
            if status.state.is_terminal() {
                if status.state != trigger_client::RunState::Succeeded {
                    warn!(message = %crate::printable::printable_within(run.message.as_deref().unwrap_or("-"), crate::printable::LINE), "run did not succeed; `watcher redeliver` starts it again");
                }
                ended = true;
            }
        }
        Ok(None) => run.follow = RunFollow::Untracked,
        Err(e) => {
            run.errors += 1;
            let since = *run.unreachable_since.get_or_insert(now);
            let error = crate::causes::one_line(&e);
            tracing::debug!(%error, failures = run.errors, %since, "run status unavailable");
            if (now - since).to_std().is_ok_and(|down| down >= lost_after) {
                warn!(%error, "run lost: its status has been unavailable too long; `watcher redeliver --force` starts the batch again (check first that the engine is not still running it)");
                run.follow = RunFollow::Lost;
                run.message = Some(format!(
                    "status unavailable since {} ({} checks): {error}",
                    since.format("%Y-%m-%d %H:%M UTC"),
                    run.errors
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
