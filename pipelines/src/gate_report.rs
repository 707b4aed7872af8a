//! The gates and budgets report (`pipelines gates` and `GET /api/v1/gates`): every gated stage
//! with its counters and when it opens, every budget with what is spent and left in its window,
//! read from the store by the runner's clock.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use runner_api::{BudgetView, ChainGates, GateReport, GateView};

use crate::chain::Chain;
use crate::state::{State, StateError};

/// The report for `chains` (those without gates or a budget are left out).
pub fn report<'a>(
    chains: impl IntoIterator<Item = &'a Arc<Chain>>,
    state: &State,
    now: DateTime<Utc>,
) -> Result<GateReport, StateError> {
    let mut report = GateReport {
        at: now,
        chains: Vec::new(),
    };
    for chain in chains {
        if !chain.is_gated() && chain.budget().is_none() {
            continue;
        }
        let mut gates = Vec::new();
        for stage in chain.stages() {
            let Some(gate) = stage.gate() else {
                continue;
            };
            let record = state.gate_record(chain.name(), stage.name())?;
            gates.push(GateView {
                stage: stage.name().to_owned(),
                min_new_links: gate.min_new_links,
                or_after: gate
                    .or_after
                    .map(|d| humantime::format_duration(d).to_string()),
                gate_retry: humantime::format_duration(gate.retry).to_string(),
                new_links: record.waiting.len() as u64,
                in_flight_links: record.in_flight.values().map(|l| l.len() as u64).sum(),
                since: record.since,
                last_success: record.last_success,
                last_failure: record.last_failure,
                opens_at: record.opens_at(gate),
                retry_after: record.retry_after(gate).filter(|&until| until > now),
                open: record.in_flight.is_empty() && record.decide(gate, now).is_ok(),
                summary: record.summary(gate, now),
            });
        }
        let budget = match chain.budget() {
            None => None,
            Some(budget) => {
                let ledger = state.ledger(chain.name())?;
                let spent = ledger.spent(budget, now);
                let left = budget.limit.milli() as f64 - spent.milli() as f64;
                Some(BudgetView {
                    limit: budget.limit.units(),
                    per: humantime::format_duration(budget.per).to_string(),
                    spent: spent.units(),
                    left: left / 1000.0,
                    window_start: now - TimeDelta::from_std(budget.per).unwrap_or(TimeDelta::MAX),
                    next_release_at: ledger.next_release(budget, now),
                    costs: chain
                        .stages()
                        .iter()
                        .filter_map(|s| Some((s.name().to_owned(), s.cost()?.units())))
                        .collect(),
                })
            }
        };
        report.chains.push(ChainGates {
            chain: chain.name().to_owned(),
            gates,
            budget,
        });
    }
    Ok(report)
}
