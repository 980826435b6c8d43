//! Days and weeks in the quest time zone (`QUEST_TIME_ZONE`, default Asia/Seoul): daily things
//! (daily quests, the daily check-in, the daily bond cap, the daily chat quota) reset at 00:00
//! there, weekly ones at Monday 00:00 there. Instants are always stored in UTC; only these
//! boundaries are computed in the zone.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// The zone when `QUEST_TIME_ZONE` is not set.
pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::Asia::Seoul;

/// How often something resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// Never: one period for all time.
    Once,
    /// At 00:00 in the zone.
    Daily,
    /// At Monday 00:00 in the zone.
    Weekly,
}

/// The period that contains an instant: `[start, end)`, `end` absent for [`Period::Once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

/// The calendar day of `instant` in `zone`.
pub fn local_day(zone: Tz, instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&zone).date_naive()
}

/// The instant `day` begins in `zone`. Where a DST change skips midnight, the day begins at the
/// first instant that exists.
pub fn day_start(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    (0..=3)
        .find_map(|hours| {
            zone.from_local_datetime(&(midnight + Duration::hours(hours)))
                .earliest()
        })
        .map(|local| local.with_timezone(&Utc))
        .unwrap_or_else(|| midnight.and_utc())
}

/// The period of kind `period` containing `instant`.
pub fn window(period: Period, zone: Tz, instant: DateTime<Utc>) -> Window {
    let day = local_day(zone, instant);
    match period {
        Period::Once => Window {
            start: DateTime::<Utc>::MIN_UTC,
            end: None,
        },
        Period::Daily => Window {
            start: day_start(zone, day),
            end: Some(day_start(zone, day + Duration::days(1))),
        },
        Period::Weekly => {
            let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
            Window {
                start: day_start(zone, monday),
                end: Some(day_start(zone, monday + Duration::days(7))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seoul(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        DEFAULT_TIME_ZONE
            .with_ymd_and_hms(y, m, d, h, min, s)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_seoul_day_starts_at_15_00_utc_the_day_before() {
        let late = seoul(2026, 12, 1, 23, 59, 59);
        let next = seoul(2026, 12, 2, 0, 0, 0);
        let today = window(Period::Daily, DEFAULT_TIME_ZONE, late);
        assert_eq!(today.start.to_rfc3339(), "2026-11-30T15:00:00+00:00");
        assert_eq!(today.end, Some(next));
        assert_ne!(today, window(Period::Daily, DEFAULT_TIME_ZONE, next));
    }

    #[test]
    fn a_week_runs_from_monday_midnight_to_monday_midnight() {
        // 2026-12-06 is a Sunday, 2026-12-07 a Monday.
        let sunday_night = seoul(2026, 12, 6, 23, 59, 59);
        let monday = seoul(2026, 12, 7, 0, 0, 0);
        let week = window(Period::Weekly, DEFAULT_TIME_ZONE, sunday_night);
        assert_eq!(week.start, seoul(2026, 11, 30, 0, 0, 0));
        assert_eq!(week.end, Some(monday));
        assert_eq!(
            window(Period::Weekly, DEFAULT_TIME_ZONE, monday).start,
            monday
        );
    }

    #[test]
    fn a_day_without_midnight_starts_at_its_first_instant() {
        // Santiago skipped 2022-09-11 00:00 (clocks went to 01:00).
        let zone: Tz = "America/Santiago".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2022, 9, 11).unwrap();
        let start = day_start(zone, day);
        assert_eq!(local_day(zone, start), day);
        assert_eq!(
            start.with_timezone(&zone).format("%H:%M").to_string(),
            "01:00"
        );
    }
}
