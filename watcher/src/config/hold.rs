//! hold.rs: the flood guard's settings: `[watcher] hold, hold_above, hold_share,
//! hold_share_min` and their per-source overrides, resolved into one [`HoldRule`] per source
//! (`None` when the source opted out with `hold = false`), and checked with their keys.

use super::ConfigProblem;
use super::settings::WatcherSettings;

/// A source table's overrides of the `[watcher]` defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct HoldOverrides {
    pub hold: Option<bool>,
    pub hold_above: Option<usize>,
    pub hold_share: Option<f64>,
    pub hold_share_min: Option<usize>,
}

/// When one poll's new items are a flood, to be held instead of delivered: more than `above`,
/// or at least `share_min` making up `share` or more of what the source returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldRule {
    pub above: usize,
    pub share: f64,
    pub share_min: usize,
}

impl HoldRule {
    /// Whether `new` new items out of the `returned` a poll read are a flood.
    pub fn floods(&self, new: usize, returned: usize) -> bool {
        new > self.above
            || (new >= self.share_min && returned > 0 && new as f64 >= self.share * returned as f64)
    }
}

/// The rule of a source: its overrides `t` over the `[watcher]` defaults, the overrides checked
/// under `key`; `None` with `hold = false`.
pub(super) fn resolve(
    watcher: &WatcherSettings,
    t: &HoldOverrides,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<HoldRule> {
    let rule = HoldRule {
        above: t.hold_above.unwrap_or(watcher.hold_above),
        share: t.hold_share.unwrap_or(watcher.hold_share),
        share_min: t.hold_share_min.unwrap_or(watcher.hold_share_min),
    };
    check(
        (t.hold_above, t.hold_share, t.hold_share_min),
        key,
        problems,
    );
    t.hold.unwrap_or(watcher.hold).then_some(rule)
}

/// The `[watcher]` defaults, checked.
pub(super) fn check_watcher(watcher: &WatcherSettings, problems: &mut Vec<ConfigProblem>) {
    check(
        (
            Some(watcher.hold_above),
            Some(watcher.hold_share),
            Some(watcher.hold_share_min),
        ),
        "watcher",
        problems,
    );
}

fn check(
    (above, share, share_min): (Option<usize>, Option<f64>, Option<usize>),
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) {
    if above == Some(0) {
        problems.push(ConfigProblem::new(
            format!("{key}.hold_above"),
            "expected at least 1 (to deliver every flood, set `hold = false`)",
        ));
    }
    if let Some(share) = share
        && !(share > 0.0 && share <= 1.0)
    {
        problems.push(ConfigProblem::new(
            format!("{key}.hold_share"),
            format!("expected a fraction above 0.0 and at most 1.0 (0.8 = 80%), got {share}"),
        ));
    }
    if share_min == Some(0) {
        problems.push(ConfigProblem::new(
            format!("{key}.hold_share_min"),
            "expected at least 1",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: HoldRule = HoldRule {
        above: 20,
        share: 0.8,
        share_min: 5,
    };

    #[test]
    fn more_than_hold_above_new_items_is_a_flood() {
        assert!(!DEFAULT.floods(20, 1000));
        assert!(DEFAULT.floods(21, 1000));
    }

    #[test]
    fn a_feed_that_turns_over_is_a_flood_from_share_min_items() {
        // 4 of 4: too few to tell.
        assert!(!DEFAULT.floods(4, 4));
        // 5 of 6 (83%), 8 of 10 (80%): a flood; 7 of 10, 6 of 16: not.
        assert!(DEFAULT.floods(5, 6));
        assert!(DEFAULT.floods(8, 10));
        assert!(!DEFAULT.floods(7, 10));
        assert!(!DEFAULT.floods(6, 16));
        assert!(!DEFAULT.floods(0, 0));
    }

    #[test]
    fn bad_thresholds_are_named_with_their_key() {
        let mut problems = Vec::new();
        let t = HoldOverrides {
            hold_above: Some(0),
            hold_share: Some(1.5),
            hold_share_min: Some(0),
            ..HoldOverrides::default()
        };
        resolve(
            &WatcherSettings::default(),
            &t,
            "authors[0].feeds[1]",
            &mut problems,
        );
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "authors[0].feeds[1].hold_above",
                "authors[0].feeds[1].hold_share",
                "authors[0].feeds[1].hold_share_min"
            ]
        );
        let mut problems = Vec::new();
        check_watcher(&WatcherSettings::default(), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn hold_false_opts_a_source_out_and_overrides_win() {
        let mut problems = Vec::new();
        let w = WatcherSettings::default();
        let off = HoldOverrides {
            hold: Some(false),
            ..HoldOverrides::default()
        };
        assert_eq!(resolve(&w, &off, "k", &mut problems), None);
        let tighter = HoldOverrides {
            hold_above: Some(3),
            ..HoldOverrides::default()
        };
        assert_eq!(
            resolve(&w, &tighter, "k", &mut problems),
            Some(HoldRule {
                above: 3,
                ..DEFAULT
            })
        );
        assert_eq!(
            resolve(&w, &HoldOverrides::default(), "k", &mut problems),
            Some(DEFAULT)
        );
    }
}
