//! durations.rs: the upper bound of every duration key in the config. Durations are added to
//! timestamps at run time (due times, retry times, the pruning cutoff, the cost guard, shutdown
//! deadlines); a bound checked once here means none of those additions can overflow, so a
//! mistyped `"1000000000y"` is one line from `watcher check`, never a panic in the daemon.

use std::time::Duration;

use super::ConfigProblem;
use super::settings::{FetchSettings, RawTrigger, WatcherSettings};

/// The largest duration any key accepts: 100 years.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Reports `key` when `value` is above [`MAX_DURATION`].
pub(super) fn bounded(key: &str, value: Duration, problems: &mut Vec<ConfigProblem>) {
    if value > MAX_DURATION {
        problems.push(ConfigProblem::new(
            key,
            format!(
                "{} is too large; expected at most 100 years (\"36500d\")",
                short(value)
            ),
        ));
    }
}

/// A huge duration in days, which reads better than humantime's years-days-hours.
fn short(value: Duration) -> String {
    format!("{}d", value.as_secs() / 86_400)
}

/// The duration keys of `[watcher]` and `[fetch]`.
pub(super) fn settings(
    watcher: &WatcherSettings,
    fetch: &FetchSettings,
    problems: &mut Vec<ConfigProblem>,
) {
    all_bounded(&settings_keys(watcher, fetch), problems);
}

/// The watcher's duration keys of `[trigger]` (the trigger client bounds its own).
pub(super) fn trigger(raw: &RawTrigger, problems: &mut Vec<ConfigProblem>) {
    all_bounded(&trigger_keys(raw), problems);
}

fn settings_keys(
    watcher: &WatcherSettings,
    fetch: &FetchSettings,
) -> [(&'static str, Duration); 10] {
    [
        ("watcher.interval", watcher.interval),
        ("watcher.batch_window", watcher.batch_window),
        ("watcher.min_interval", watcher.min_interval),
        ("watcher.max_interval", watcher.max_interval),
        ("watcher.keep_deliveries", watcher.keep_deliveries),
        ("watcher.health_poll_age", watcher.health_poll_age),
        ("watcher.health_delivery_age", watcher.health_delivery_age),
        ("fetch.timeout", fetch.timeout),
        ("fetch.connect_timeout", fetch.connect_timeout),
        ("fetch.poll_deadline", fetch.poll_deadline),
    ]
}

fn trigger_keys(raw: &RawTrigger) -> [(&'static str, Duration); 7] {
    [
        ("trigger.retry_base_delay", raw.retry_base_delay),
        ("trigger.retry_max_delay", raw.retry_max_delay),
        ("trigger.min_interval", raw.min_interval),
        ("trigger.wait_timeout", raw.wait_timeout),
        ("trigger.follow_interval", raw.follow_interval),
        ("trigger.run_lost_after", raw.run_lost_after),
        ("trigger.shutdown_grace", raw.shutdown_grace),
    ]
}

fn all_bounded(keys: &[(&str, Duration)], problems: &mut Vec<ConfigProblem>) {
    for (key, value) in keys {
        bounded(key, *value, problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_inclusive_and_the_message_is_one_line() {
        let mut problems = Vec::new();
        bounded("k", MAX_DURATION, &mut problems);
        assert!(problems.is_empty());
        bounded("k", MAX_DURATION + Duration::from_secs(1), &mut problems);
        assert_eq!(problems.len(), 1);
        assert!(!problems[0].message.contains('\n'));
    }

    #[test]
    fn every_duration_field_of_the_settings_has_a_bound() {
        let fields = include_str!("settings.rs")
            .matches("with = \"humantime_serde\"")
            .count();
        let bounded = settings_keys(&Default::default(), &Default::default()).len()
            + trigger_keys(&RawTrigger::default()).len();
        assert_eq!(
            fields, bounded,
            "a duration field in config/settings.rs has no bound: add its key to config/durations.rs"
        );
    }
}
