//! Gates and costs in chain files: a stage's `gate = { min_new_links, or_after }` with its
//! `gate_retry`, its `cost` per attempt, and the chain's `budget = { limit, per }`, checked into
//! types that cannot be invalid afterwards. What a gate decides is in `crate::gate`.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use std::collections::BTreeSet;

use super::{Chain, Checker, Stage, topological_order};

/// The most links a gate may wait for (its waiting set is bounded by this too).
pub const MAX_MIN_NEW_LINKS: u64 = 100_000;
/// How long after a failure a gated stage is not tried again, unless `gate_retry` says.
pub const DEFAULT_GATE_RETRY: Duration = Duration::from_secs(24 * 3600);
/// The largest cost or budget limit accepted.
const MAX_AMOUNT: f64 = 1e12;

/// `gate = { ... }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGate {
    min_new_links: Option<i64>,
    or_after: Option<String>,
}

/// `budget = { ... }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    limit: f64,
    per: String,
}

/// A validated gate: the stage runs once `min_new_links` distinct links arrived, or once
/// `or_after` passed since its last success with at least one link waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub min_new_links: Option<u64>,
    pub or_after: Option<Duration>,
    /// After a failure the stage stays closed this long (the links keep counting).
    pub retry: Duration,
}

/// A validated budget: at most `limit` charged within any window of `per`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub limit: Amount,
    pub per: Duration,
}

/// A cost or a limit in the user's own unit, kept exactly in thousandths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub u64);

impl Amount {
    /// Thousandths of a unit.
    pub fn milli(self) -> u64 {
        self.0
    }
    /// As a number of units (for JSON).
    pub fn units(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    fn from_units(units: f64) -> Option<Self> {
        (units.is_finite() && (0.0..=MAX_AMOUNT).contains(&units))
            .then(|| Self((units * 1000.0).round() as u64))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let frac = format!("{frac:03}");
            write!(f, "{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl Chain {
    /// `budget`: what the costed stages may spend per rolling window.
    pub fn budget(&self) -> Option<&Budget> {
        self.budget.as_ref()
    }
    /// Whether some stage has a gate or a cost (the runner keeps counters for it).
    pub fn is_gated(&self) -> bool {
        self.stages
            .iter()
            .any(|stage| stage.gate.is_some() || stage.cost.is_some())
    }
    /// Indices of `roots` and every stage that waits for one of them, directly or not.
    pub fn downstream(&self, roots: &[usize]) -> BTreeSet<usize> {
        let mut found: BTreeSet<usize> = roots.iter().copied().collect();
        let order = topological_order(&self.stages).unwrap_or_default();
        for index in order {
            if self.stages[index]
                .deps
                .iter()
                .any(|dep| found.contains(dep))
            {
                found.insert(index);
            }
        }
        found
    }
}

impl Stage {
    /// `gate`: when the stage may run at all.
    pub fn gate(&self) -> Option<&Gate> {
        self.gate.as_ref()
    }
    /// `cost`: the user's estimate per attempt, charged to the chain's budget.
    pub fn cost(&self) -> Option<Amount> {
        self.cost
    }
}

/// `30d`-style durations of gates and budgets: positive.
fn positive_duration(check: &mut Checker, key: &str, text: &str) -> Option<Duration> {
    match humantime::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Some(duration),
        Ok(_) => {
            check.error(
                key,
                "zero; expected a positive duration such as \"14d\" or \"12h\"",
            );
            None
        }
        Err(err) => {
            check.error(
                key,
                format!("bad duration `{text}`: {err}; expected e.g. \"14d\", \"30d\" or \"12h\""),
            );
            None
        }
    }
}

impl Checker {
    /// Checks a stage's `gate` and `gate_retry` (`key` is the stage's key).
    pub(super) fn gate(
        &mut self,
        key: &str,
        raw: Option<RawGate>,
        retry: Option<&str>,
    ) -> Option<Gate> {
        let Some(raw) = raw else {
            if retry.is_some() {
                self.error(
                    format!("{key}.gate_retry"),
                    "has no effect without a `gate`; add `gate = { min_new_links = 20, or_after = \"30d\" }` or remove it",
                );
            }
            return None;
        };
        let gate_key = format!("{key}.gate");
        if raw.min_new_links.is_none() && raw.or_after.is_none() {
            self.error(
                &gate_key,
                "empty; expected `min_new_links`, `or_after` or both, e.g. `gate = { min_new_links = 20, or_after = \"30d\" }`",
            );
            return None;
        }
        let min_new_links = raw.min_new_links.and_then(|n| match u64::try_from(n) {
            Ok(n) if (1..=MAX_MIN_NEW_LINKS).contains(&n) => Some(n),
            _ => {
                self.error(
                    format!("{gate_key}.min_new_links"),
                    format!("got {n}; expected a whole number from 1 to {MAX_MIN_NEW_LINKS}"),
                );
                None
            }
        });
        let or_after = raw
            .or_after
            .as_deref()
            .and_then(|text| positive_duration(self, &format!("{gate_key}.or_after"), text));
        let retry = match retry {
            None => DEFAULT_GATE_RETRY,
            Some(text) => positive_duration(self, &format!("{key}.gate_retry"), text)
                .unwrap_or(DEFAULT_GATE_RETRY),
        };
        Some(Gate {
            min_new_links,
            or_after,
            retry,
        })
    }

    /// Checks a stage's `cost`.
    pub(super) fn cost(&mut self, key: &str, cost: Option<f64>) -> Option<Amount> {
        let cost = cost?;
        let amount = Amount::from_units(cost);
        if amount.is_none() {
            self.error(
                format!("{key}.cost"),
                format!("got {cost}; expected a number from 0 up, e.g. `cost = 12.5` (your estimate per attempt, any unit)"),
            );
        }
        amount
    }

    /// Checks the chain's `budget`.
    pub(super) fn budget(&mut self, raw: Option<RawBudget>) -> Option<Budget> {
        let raw = raw?;
        let limit = match Amount::from_units(raw.limit) {
            Some(limit) if limit.0 > 0 => Some(limit),
            _ => {
                self.error(
                    "budget.limit",
                    format!("got {}; expected a positive number, e.g. `budget = {{ limit = 100, per = \"30d\" }}`", raw.limit),
                );
                None
            }
        };
        let per = positive_duration(self, "budget.per", &raw.per);
        Some(Budget {
            limit: limit?,
            per: per?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn problems(text: &str) -> String {
        match crate::chain::parse(text, Path::new("c.toml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(errors) => errors.to_string(),
        }
    }

    #[test]
    fn gates_costs_and_budgets_parse() {
        let chain = crate::chain::parse(
            r#"
            name = "c"
            budget = { limit = 100, per = "30d" }
            [[stages]]
            name = "a"
            run = ["true"]
            cost = 2
            [[stages]]
            name = "b"
            after = ["a"]
            run = ["true"]
            gate = { min_new_links = 20, or_after = "14d" }
            gate_retry = "6h"
            cost = 12.5
            [[stages]]
            name = "c"
            after = ["b"]
            run = ["true"]
            gate = { or_after = "1h" }
            "#,
            Path::new("c.toml"),
        )
        .unwrap();
        let budget = chain.budget().unwrap();
        assert_eq!(
            (budget.limit.milli(), budget.per),
            (100_000, Duration::from_secs(30 * 86400))
        );
        let [a, b, c] = chain.stages() else { panic!() };
        assert_eq!(a.gate(), None);
        assert_eq!(a.cost().map(|c| c.to_string()).as_deref(), Some("2"));
        let gate = b.gate().unwrap();
        assert_eq!(gate.min_new_links, Some(20));
        assert_eq!(gate.or_after, Some(Duration::from_secs(14 * 86400)));
        assert_eq!(gate.retry, Duration::from_secs(6 * 3600));
        assert_eq!(b.cost().unwrap().to_string(), "12.5");
        assert_eq!(c.gate().unwrap().retry, DEFAULT_GATE_RETRY);
        assert_eq!(Amount(1050).to_string(), "1.05");
    }

    #[test]
    fn bad_gates_costs_and_budgets_are_reported_with_their_keys() {
        let text = problems(
            r#"
            name = "c"
            budget = { limit = 0, per = "soon" }
            [[stages]]
            name = "a"
            run = ["true"]
            gate = {}
            [[stages]]
            name = "b"
            run = ["true"]
            gate = { min_new_links = 0, or_after = "0s" }
            cost = -1
            [[stages]]
            name = "d"
            run = ["true"]
            gate_retry = "1d"
            "#,
        );
        for want in [
            "`budget.limit`: got 0; expected a positive number",
            "`budget.per`: bad duration `soon`",
            "`stages[a].gate`: empty; expected `min_new_links`, `or_after` or both",
            "`stages[b].gate.min_new_links`: got 0",
            "`stages[b].gate.or_after`: zero",
            "`stages[b].cost`: got -1",
            "`stages[d].gate_retry`: has no effect without a `gate`",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let text = problems(
            "name = \"c\"\n[[stages]]\nname = \"a\"\nrun = [\"true\"]\ngate = { min_links = 3 }\n",
        );
        assert!(text.contains("unknown field `min_links`"), "{text}");
    }
}
