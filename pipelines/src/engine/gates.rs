//! The engine side of gates and budgets: whether an attempt of a stage may start (its gate on
//! the first attempt, the chain's budget on every attempt), and what a gated stage's end does to
//! its gate. The decisions are `crate::gate` and `crate::budget`; the store writes `state`.

use std::collections::BTreeSet;

use runner_api::{Run, Trigger};

use super::Engine;
use crate::chain::Chain;
use crate::gate::links_of;
use crate::state::{Admission, Admit, StateError};

impl Engine {
    /// Whether attempt `attempt` of stage `index` of `run` may start; an open answer has charged
    /// the attempt's cost and (first attempt) taken the gate's links.
    pub(super) async fn admit(
        &self,
        chain: &Chain,
        index: usize,
        run: &Run,
        attempt: u32,
    ) -> Result<Admission, StateError> {
        let stage = &chain.stages()[index];
        let gate = stage.gate().filter(|_| attempt == 1).cloned();
        let cost = match (chain.budget(), stage.cost()) {
            (Some(budget), Some(cost)) => Some((budget.clone(), cost)),
            _ => None,
        };
        if gate.is_none() && cost.is_none() {
            return Ok(Admission::Open);
        }
        // A catch-up run brings no links; every other run brings its config's.
        let links = if gate.is_some() && run.trigger != Trigger::Gate {
            run_links(run).await
        } else {
            BTreeSet::new()
        };
        let admission = self
            .inner
            .state
            .admit(Admit {
                chain: chain.name().to_owned(),
                stage: stage.name().to_owned(),
                run_id: run.id.clone(),
                attempt,
                gate,
                links,
                cost,
                force: run.force,
                now: self.inner.clock.now(),
            })
            .await?;
        match &admission {
            Admission::Open if run.force => tracing::info!(attempt, "gate and budget forced open"),
            Admission::Open => tracing::info!(attempt, "gate and budget open"),
            Admission::Deferred(why) => tracing::info!(attempt, reason = %why, "stage deferred"),
        }
        Ok(admission)
    }

    /// A gated stage of `run_id` failed or was stopped: its links wait again and its
    /// `gate_retry` starts (on the blocking pool).
    pub(super) async fn gate_failed(&self, chain: &Chain, stage: &str, run_id: &str) {
        let this = self.clone();
        let (chain, stage, run_id) = (chain.name().to_owned(), stage.to_owned(), run_id.to_owned());
        sled_gate::blocking(move || this.gate_failed_blocking(&chain, &stage, &run_id)).await;
    }

    /// [`gate_failed`](Self::gate_failed) on the calling thread (drop guards).
    pub(super) fn gate_failed_blocking(&self, chain: &str, stage: &str, run_id: &str) {
        let now = self.inner.clock.now();
        if let Err(err) = self
            .inner
            .state
            .gate_failed_blocking(chain, stage, run_id, now)
        {
            tracing::error!(error = %err, "recording a gated stage's failure failed");
        }
    }
}

/// Digests of the links in a run's `config.yaml` (none if it cannot be read: a run without
/// readable links still reaches the gate, it just adds nothing to its count).
async fn run_links(run: &Run) -> BTreeSet<String> {
    let path = run.run_dir.join("config.yaml");
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => match serde_yaml_ng::from_str::<serde_json::Value>(&text) {
            Ok(config) => links_of(&config),
            Err(err) => {
                tracing::warn!(error = %err, path = %path.display(), "a run's config is not YAML; it brings no links to the gate");
                BTreeSet::new()
            }
        },
        Err(err) => {
            tracing::warn!(error = %err, path = %path.display(), "cannot read a run's config; it brings no links to the gate");
            BTreeSet::new()
        }
    }
}
