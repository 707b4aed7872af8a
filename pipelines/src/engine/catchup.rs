//! Catching up without a new article: when a gate's `or_after` comes due with links waiting,
//! the runner starts the deferred part of the chain by itself: a run with trigger `gate` from the
//! due gated stages on, keyed `gate:<chain>:<stage>:<due time>` so a due time starts one run
//! even after downtime, and never while a run of that chain is queued or running. It adds no
//! links to any count and runs in a fresh run directory (gated stages read accumulated state).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use runner_api::{RunRequest, Trigger};

use super::{Engine, Submitted};
use crate::causes::error_chain;
use crate::chain::Chain;
use crate::state::StateError;

impl Engine {
    /// Starts the catch-up task if some chain has a gate with `or_after`, until shutdown.
    pub(super) fn start_catchup(&self) {
        let chains: Vec<Arc<Chain>> = self
            .inner
            .chains
            .iter()
            .filter(|chain| {
                chain
                    .stages()
                    .iter()
                    .any(|stage| stage.gate().is_some_and(|gate| gate.or_after.is_some()))
            })
            .cloned()
            .collect();
        if chains.is_empty() {
            return;
        }
        let engine = self.clone();
        self.inner.tracker.spawn(async move {
            let inner = &engine.inner;
            loop {
                let ended = inner.runs_ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                let mut next = None;
                for chain in &chains {
                    match engine.catch_up(chain).await {
                        Ok(later) => next = next.min(later).or(next).or(later),
                        Err(err) => {
                            tracing::error!(chain = chain.name(), error = %error_chain(&err), "reading a chain's gates failed");
                        }
                    }
                }
                tokio::select! {
                    () = inner.stopping.cancelled() => return,
                    () = inner.clock.sleep_until(next) => {}
                    () = &mut ended => {}
                }
            }
        });
    }

    /// Starts `chain`'s catch-up run if one of its gates is due and the chain is idle; returns
    /// the next time one comes due.
    async fn catch_up(&self, chain: &Arc<Chain>) -> Result<Option<DateTime<Utc>>, StateError> {
        let now = self.inner.clock.now();
        let dues = {
            let (state, chain) = (self.inner.state.clone(), Arc::clone(chain));
            sled_gate::blocking(move || {
                let mut dues = Vec::new();
                for (index, stage) in chain.stages().iter().enumerate() {
                    if let Some(gate) = stage.gate() {
                        let record = state.gate_record(chain.name(), stage.name())?;
                        if let Some(due) = record.due(gate) {
                            dues.push((index, due));
                        }
                    }
                }
                Ok::<_, StateError>(dues)
            })
            .await?
        };
        let next = dues
            .iter()
            .map(|&(_, due)| due)
            .filter(|&due| due > now)
            .min();
        let ready: Vec<(usize, DateTime<Utc>)> =
            dues.into_iter().filter(|&(_, due)| due <= now).collect();
        let Some(&(first, due)) = ready.first() else {
            return Ok(next);
        };
        let busy = self
            .lock_queues()
            .get(chain.name())
            .is_some_and(|queue| !queue.waiting.is_empty() || !queue.active.is_empty());
        if busy {
            // Looked at again when that run ends.
            return Ok(next);
        }
        let roots: Vec<usize> = ready.iter().map(|&(index, _)| index).collect();
        let scope: BTreeSet<usize> = chain.downstream(&roots);
        let stage = chain.stages()[first].name();
        let reason = format!("not part of this gate run, which starts at `{stage}`");
        let request = RunRequest {
            // The gated stages read accumulated state; without a default config they get `{}`.
            config: chain.default_config().is_none().then(serde_json::Map::new),
            idempotency_key: Some(format!(
                "gate:{}:{stage}:{}",
                chain.name(),
                due.to_rfc3339()
            )),
            params: Default::default(),
            force: false,
        };
        match self
            .submit_scoped(chain.name(), request, Trigger::Gate, Some((scope, reason)))
            .await
        {
            Ok(Submitted::Created(run)) => {
                tracing::info!(chain = chain.name(), stage, run_id = %run.id, due = %due, "gate due: catch-up run queued");
            }
            Ok(Submitted::Existing(_)) => {}
            Err(err) => {
                tracing::error!(chain = chain.name(), stage, error = %error_chain(&err), "gate due but its catch-up run was not started");
            }
        }
        Ok(next)
    }
}
