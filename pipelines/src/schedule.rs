//! Cron schedules: parsing a chain's 5-field `schedule` with its `timezone`, computing the next
//! firing time (pure), and the loop that sleeps until then and fires.
//!
//! Missed firings are not caught up: after a restart the next firing is computed from the current
//! time, and after a suspend or a clock jump the one firing that was due fires (late) once and the
//! slots in between are skipped.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use tokio_util::sync::CancellationToken;

/// A validated cron schedule in a timezone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    timezone: Tz,
}

/// Why a schedule did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "bad cron expression `{expr}`: {reason}; expected 5 fields: minute hour day-of-month month day-of-week, e.g. `0 3 * * *`"
    )]
    Cron { expr: String, reason: String },
    #[error("unknown timezone `{name}`; expected an IANA name such as `UTC` or `Europe/Berlin`")]
    Timezone { name: String },
}

impl Schedule {
    /// Parses a 5-field cron expression (no seconds, no year) and an IANA timezone name.
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let timezone = Tz::from_str(timezone).map_err(|_| ScheduleError::Timezone {
            name: timezone.to_owned(),
        })?;
        let cron_error = |reason: String| ScheduleError::Cron {
            expr: expr.to_owned(),
            reason,
        };
        let fields = expr.split_whitespace().count();
        if fields != 5 && !expr.trim_start().starts_with('@') {
            return Err(cron_error(format!("it has {fields} fields")));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|err| cron_error(err.to_string().to_lowercase()))?;
        Ok(Self {
            expr: expr.to_owned(),
            cron,
            timezone,
        })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The timezone the expression is read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The first firing strictly after `after`, or `None` if the expression never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

/// The longest single sleep: the wall clock is re-read at least this often, so a suspended
/// machine or a clock change does not delay a firing by more than this.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Sleeps until each firing of `schedule` and calls `fire` with its time, until `cancel`.
pub async fn run_schedule<F, Fut>(schedule: &Schedule, cancel: CancellationToken, fire: F)
where
    F: FnMut(DateTime<Utc>) -> Fut,
    Fut: Future<Output = ()>,
{
    run_schedule_with_clock(schedule, cancel, Utc::now, fire).await;
}

/// [`run_schedule`] reading the wall clock through `now` (tests pass a clock that follows
/// tokio's paused time).
pub async fn run_schedule_with_clock<C, F, Fut>(
    schedule: &Schedule,
    cancel: CancellationToken,
    now: C,
    mut fire: F,
) where
    C: Fn() -> DateTime<Utc>,
    F: FnMut(DateTime<Utc>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut after = now();
    loop {
        let Some(next) = schedule.next_after(after) else {
            tracing::warn!(schedule = schedule.expr(), "schedule never fires again");
            return;
        };
        loop {
            let current = now();
            if current >= next {
                break;
            }
            let wait = (next - current).to_std().unwrap_or_default().min(MAX_SLEEP);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if cancel.is_cancelled() {
            return;
        }
        fire(next).await;
        // After a suspend or a clock jump `next` lies far behind: go on from now, so the slots
        // in between are skipped instead of all firing at once.
        after = next.max(now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_firing_in_utc() {
        let schedule = Schedule::parse("0 3 * * *", "UTC").unwrap();
        assert_eq!(
            schedule.next_after(utc("2025-01-01T02:59:00Z")),
            Some(utc("2025-01-01T03:00:00Z"))
        );
        // strictly after: the firing time itself gives the next day
        assert_eq!(
            schedule.next_after(utc("2025-01-01T03:00:00Z")),
            Some(utc("2025-01-02T03:00:00Z"))
        );
    }

    #[test]
    fn next_firing_respects_timezone_and_dst() {
        let schedule = Schedule::parse("0 3 * * *", "Europe/Berlin").unwrap();
        // winter: UTC+1
        assert_eq!(
            schedule.next_after(utc("2025-01-10T00:00:00Z")),
            Some(utc("2025-01-10T02:00:00Z"))
        );
        // summer: UTC+2
        assert_eq!(
            schedule.next_after(utc("2025-07-10T00:00:00Z")),
            Some(utc("2025-07-10T01:00:00Z"))
        );
    }

    #[test]
    fn weekday_and_step_fields() {
        let schedule = Schedule::parse("*/15 9-17 * * MON-FRI", "UTC").unwrap();
        // Saturday 2025-01-04 → Monday 09:00
        let sat = Utc.with_ymd_and_hms(2025, 1, 4, 12, 0, 0).unwrap();
        assert_eq!(schedule.next_after(sat), Some(utc("2025-01-06T09:00:00Z")));
        assert_eq!(
            schedule.next_after(utc("2025-01-06T09:00:00Z")),
            Some(utc("2025-01-06T09:15:00Z"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_fires_at_each_occurrence_until_cancelled() {
        let schedule = Schedule::parse("*/5 * * * *", "UTC").unwrap();
        let start = utc("2025-01-01T00:03:30Z");
        let origin = tokio::time::Instant::now();
        let clock = move || start + (tokio::time::Instant::now() - origin);
        let cancel = CancellationToken::new();
        let fired = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (seen, stop) = (fired.clone(), cancel.clone());
        run_schedule_with_clock(&schedule, cancel, clock, move |at| {
            let mut seen = seen.lock().unwrap();
            seen.push((at, clock()));
            if seen.len() == 3 {
                stop.cancel();
            }
            async {}
        })
        .await;
        let fired = fired.lock().unwrap();
        let times: Vec<_> = fired.iter().map(|(at, _)| *at).collect();
        assert_eq!(
            times,
            [
                utc("2025-01-01T00:05:00Z"),
                utc("2025-01-01T00:10:00Z"),
                utc("2025-01-01T00:15:00Z")
            ]
        );
        for (at, when) in fired.iter() {
            assert!(
                when >= at && *when - *at < chrono::TimeDelta::seconds(1),
                "{when} for {at}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_jump_fires_the_due_slot_once_and_skips_the_missed_ones() {
        let schedule = Schedule::parse("*/15 * * * *", "UTC").unwrap();
        let start = utc("2025-01-01T00:03:30Z");
        let origin = tokio::time::Instant::now();
        // The wall clock: paused tokio time plus a jump the test sets (a suspend of 8 hours).
        let jump = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let clock = {
            let jump = jump.clone();
            move || {
                start
                    + (tokio::time::Instant::now() - origin)
                    + chrono::TimeDelta::seconds(jump.load(std::sync::atomic::Ordering::SeqCst))
            }
        };
        let cancel = CancellationToken::new();
        let fired = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let schedule_task = tokio::spawn({
            let (fired, stop, cancel) = (fired.clone(), cancel.clone(), cancel.clone());
            let now = clock.clone();
            async move {
                run_schedule_with_clock(&schedule, cancel, now, move |at| {
                    let mut fired = fired.lock().unwrap();
                    fired.push((at, clock()));
                    if at >= utc("2025-01-01T08:00:00Z") || fired.len() > 40 {
                        stop.cancel();
                    }
                    async {}
                })
                .await;
            }
        });
        // While the loop waits for 00:15, the machine sleeps for 8 hours.
        tokio::time::sleep(Duration::from_secs(5 * 60)).await;
        jump.store(8 * 3600, std::sync::atomic::Ordering::SeqCst);
        schedule_task.await.unwrap();

        let fired = fired.lock().unwrap();
        let times: Vec<_> = fired.iter().map(|(at, _)| *at).collect();
        assert_eq!(
            times,
            [utc("2025-01-01T00:15:00Z"), utc("2025-01-01T08:15:00Z")],
            "the slot due at the jump fires once, the 31 after it are skipped"
        );
        let (at, when) = fired[1];
        assert!(
            when >= at && when - at < chrono::TimeDelta::seconds(1),
            "{when} for {at}"
        );
    }

    #[test]
    fn rejects_seconds_field_bad_values_and_timezones() {
        let err = Schedule::parse("0 0 3 * * *", "UTC").unwrap_err();
        assert!(err.to_string().contains("it has 6 fields"), "{err}");
        let err = Schedule::parse("61 3 * * *", "UTC").unwrap_err();
        assert!(matches!(err, ScheduleError::Cron { .. }), "{err}");
        let err = Schedule::parse("0 3 * *", "UTC").unwrap_err();
        assert!(err.to_string().contains("expected 5 fields"), "{err}");
        let err = Schedule::parse("0 3 * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(
            err,
            ScheduleError::Timezone {
                name: "Mars/Olympus".into()
            }
        );
    }
}
