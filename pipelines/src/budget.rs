//! What a budget allows (pure): a chain's durable spend records ([`Ledger`]) over a rolling
//! window, and the check-and-charge an attempt passes when it starts (failed attempts count).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::chain::{Amount, Budget};
use crate::gate::Deferral;

/// The charges of one chain that may still be within its window, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    #[serde(default)]
    pub charges: Vec<Charge>,
}

/// One attempt's cost, charged when the attempt started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub at: DateTime<Utc>,
    /// Thousandths of the user's unit.
    pub milli: u64,
    pub run_id: String,
    pub stage: String,
    pub attempt: u32,
}

fn window(budget: &Budget) -> TimeDelta {
    TimeDelta::from_std(budget.per).unwrap_or(TimeDelta::MAX)
}

impl Ledger {
    /// What was charged within the window ending at `now`.
    pub fn spent(&self, budget: &Budget, now: DateTime<Utc>) -> Amount {
        let start = now - window(budget);
        Amount(
            self.charges
                .iter()
                .filter(|charge| charge.at > start)
                .map(|charge| charge.milli)
                .sum(),
        )
    }

    /// When the oldest charge within the window leaves it.
    pub fn next_release(&self, budget: &Budget, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = now - window(budget);
        self.charges
            .iter()
            .filter(|charge| charge.at > start)
            .map(|charge| charge.at + window(budget))
            .min()
    }

    /// Charges `charge` if the budget has room for it (always with `force`); charges that left
    /// the window are dropped on the way.
    pub fn try_charge(
        &mut self,
        budget: &Budget,
        charge: Charge,
        force: bool,
    ) -> Result<(), Deferral> {
        let now = charge.at;
        let spent = self.spent(budget, now);
        let left = budget.limit.milli().saturating_sub(spent.milli());
        if !force && charge.milli > left {
            return Err(Deferral::Budget {
                cost: Amount(charge.milli).to_string(),
                left: Amount(left).to_string(),
                limit: budget.limit.to_string(),
                per: humantime::format_duration(budget.per).to_string(),
                release: self.next_release(budget, now),
            });
        }
        let start = now - window(budget);
        self.charges.retain(|old| old.at > start);
        self.charges.push(charge);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn charge(day: i64, milli: u64) -> Charge {
        Charge {
            at: DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
                + TimeDelta::days(day),
            milli,
            run_id: format!("r{day}"),
            stage: "s".into(),
            attempt: 1,
        }
    }

    #[test]
    fn the_window_rolls_and_force_overspends() {
        let budget = Budget {
            limit: Amount(25_000),
            per: Duration::from_secs(10 * 86400),
        };
        let mut ledger = Ledger::default();
        ledger
            .try_charge(&budget, charge(0, 12_500), false)
            .unwrap();
        ledger
            .try_charge(&budget, charge(1, 12_500), false)
            .unwrap();
        let refused = ledger
            .try_charge(&budget, charge(2, 12_500), false)
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "budget: an attempt costs 12.5 but 0 of 25 per 10days is left; the oldest charge leaves the window on 2026-12-11 00:00 UTC"
        );
        ledger.try_charge(&budget, charge(2, 12_500), true).unwrap();
        assert_eq!(ledger.spent(&budget, charge(2, 0).at), Amount(37_500));
        // Day 10: the day-0 charge left the window; still 25 spent, no room.
        assert!(ledger.try_charge(&budget, charge(10, 1), false).is_err());
        // Day 11: the day-1 charge left too.
        ledger
            .try_charge(&budget, charge(11, 12_500), false)
            .unwrap();
        assert_eq!(ledger.charges.len(), 2, "old charges are dropped");
    }
}
