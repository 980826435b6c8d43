//! The quest catalog (F-006) as versioned domain data, the rule that turns progress and claims
//! into a quest's state, and the daily check-in's streak and reward rule.
//!
//! Versioning: a published quest is never edited. Changing what a quest asks or pays is a new
//! quest id in a new catalog version, so every ledger entry keeps pointing at the quest it paid
//! for, with the meaning it had.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use utoipa::ToSchema;

use crate::periods::{self, Period, Window};

/// The catalog version clients see.
pub const CATALOG_VERSION: i32 = 1;

/// One quest: count `requirement` events of kind `event` within a period, then claim `reward`
/// crystals once per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quest {
    /// Stable slug, used in routes and stored in the ledger.
    pub id: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The `domain_events.kind` it counts (`platform::events::EventKind::name`).
    pub event: &'static str,
    pub requirement: u32,
    /// Memory Crystals paid by a claim.
    pub reward: u32,
    pub period: Period,
}

/// The current catalog. Answers are counted only by a once-quest: `response_received` events
/// carry the UTC day alone (no per-answer time exists), so no daily or weekly window could count
/// them honestly.
pub const CATALOG: [Quest; 6] = [
    Quest {
        id: "first_survey",
        title: "First survey",
        description: "Create your first survey and share it with friends.",
        event: "survey_created",
        requirement: 1,
        reward: 50,
        period: Period::Once,
    },
    Quest {
        id: "five_answers",
        title: "Seen by five friends",
        description: "Receive 5 answers to your surveys.",
        event: "response_received",
        requirement: 5,
        reward: 100,
        period: Period::Once,
    },
    Quest {
        id: "share_persona",
        title: "Show yourself",
        description: "Share your persona.",
        event: "persona_shared",
        requirement: 1,
        reward: 75,
        period: Period::Once,
    },
    Quest {
        id: "chat_ten_times",
        title: "Getting to know you",
        description: "Chat with your persona 10 times.",
        event: "chat_sent",
        requirement: 10,
        reward: 50,
        period: Period::Once,
    },
    Quest {
        id: "daily_bond",
        title: "Daily bond",
        description: "Chat with your persona 3 times today.",
        event: "chat_sent",
        requirement: 3,
        reward: 50,
        period: Period::Daily,
    },
    Quest {
        id: "weekly_spotlight",
        title: "Weekly spotlight",
        description: "Share your persona 3 times this week.",
        event: "persona_shared",
        requirement: 3,
        reward: 150,
        period: Period::Weekly,
    },
];

/// The quest with slug `id`, if the catalog has one.
pub fn find(id: &str) -> Option<&'static Quest> {
    CATALOG.iter().find(|quest| quest.id == id)
}

/// The lowercase name of a period, as clients see it.
pub fn period_name(period: Period) -> &'static str {
    match period {
        Period::Once => "once",
        Period::Daily => "daily",
        Period::Weekly => "weekly",
    }
}

/// Where a quest stands in the current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestState {
    /// Not enough progress yet.
    Active,
    /// Enough progress; the reward can be claimed.
    Completed,
    /// The reward of this period was paid.
    Claimed,
}

impl Quest {
    /// The period of this quest that contains `now`, in `zone`.
    pub fn window(&self, zone: Tz, now: DateTime<Utc>) -> Window {
        periods::window(self.period, zone, now)
    }

    /// What a claim in the period containing `now` pays for: `<id>` for a once-quest,
    /// `<id>@<first local day of the period>` otherwise. At most one ledger entry per user
    /// carries it (a unique constraint), so a period pays once however many claims race.
    pub fn claim_reference(&self, zone: Tz, now: DateTime<Utc>) -> String {
        match self.period {
            Period::Once => self.id.to_owned(),
            Period::Daily | Period::Weekly => {
                let start = self.window(zone, now).start;
                format!("{}@{}", self.id, periods::local_day(zone, start))
            }
        }
    }

    /// The state of a quest with `progress` events counted in the period and whether that
    /// period was claimed.
    pub fn state(&self, progress: u32, claimed: bool) -> QuestState {
        if claimed {
            QuestState::Claimed
        } else if progress >= self.requirement {
            QuestState::Completed
        } else {
            QuestState::Active
        }
    }
}

/// Crystals for the first check-in of a streak.
pub const CHECK_IN_BASE_REWARD: u32 = 10;
/// Extra crystals for each further consecutive day.
pub const CHECK_IN_STEP: u32 = 5;
/// The streak length after which the reward stops growing.
pub const CHECK_IN_MAX_STEPS: u32 = 7;

/// The daily check-in reward: 10 crystals on the first day of a streak, 5 more for each further
/// consecutive day, capped from the 7th day on (10, 15, 20, 25, 30, 35, 40, 40, ...).
pub fn check_in_reward(streak: u32) -> u32 {
    CHECK_IN_BASE_REWARD + CHECK_IN_STEP * (streak.clamp(1, CHECK_IN_MAX_STEPS) - 1)
}

/// A user's latest check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastCheckIn {
    /// The day in the quest time zone.
    pub day: NaiveDate,
    pub streak: u32,
}

/// The streak a check-in on `today` makes: one more than yesterday's, or 1 after a missed day
/// (or with no check-in before). `None` when the user already checked in today.
pub fn next_streak(last: Option<LastCheckIn>, today: NaiveDate) -> Option<u32> {
    match last {
        Some(last) if last.day >= today => None,
        Some(last) if last.day + Duration::days(1) == today => Some(last.streak.saturating_add(1)),
        _ => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::{Datelike, FixedOffset, TimeZone, Timelike};
    use proptest::prelude::*;

    use super::*;
    use crate::periods::DEFAULT_TIME_ZONE;

    fn quest(id: &str) -> &'static Quest {
        find(id).unwrap()
    }

    #[test]
    fn the_catalog_holds_the_specified_quests() {
        let spec = [
            ("first_survey", "survey_created", 1, 50, Period::Once),
            ("five_answers", "response_received", 5, 100, Period::Once),
            ("share_persona", "persona_shared", 1, 75, Period::Once),
            ("chat_ten_times", "chat_sent", 10, 50, Period::Once),
            ("daily_bond", "chat_sent", 3, 50, Period::Daily),
        ];
        for (id, event, requirement, reward, period) in spec {
            let quest = quest(id);
            assert_eq!(
                (quest.event, quest.requirement, quest.reward, quest.period),
                (event, requirement, reward, period),
                "{id}"
            );
        }
        assert!(CATALOG.iter().any(|q| q.period == Period::Weekly));
        let names: Vec<_> = [Period::Once, Period::Daily, Period::Weekly]
            .into_iter()
            .map(period_name)
            .collect();
        assert_eq!(names, ["once", "daily", "weekly"]);
    }

    #[test]
    fn quest_ids_are_unique_slugs_and_every_quest_pays() {
        let ids: HashSet<_> = CATALOG.iter().map(|q| q.id).collect();
        assert_eq!(ids.len(), CATALOG.len());
        for quest in CATALOG {
            assert!(
                quest
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                quest.id
            );
            assert!(quest.requirement > 0 && quest.reward > 0, "{}", quest.id);
        }
        assert_eq!(find("no_such_quest"), None);
    }

    #[test]
    fn no_daily_or_weekly_quest_counts_answers() {
        for quest in CATALOG {
            if quest.event == "response_received" {
                assert_eq!(quest.period, Period::Once, "{}", quest.id);
            }
        }
    }

    #[test]
    fn a_quest_is_active_then_completed_then_claimed() {
        let daily = quest("daily_bond");
        assert_eq!(daily.state(2, false), QuestState::Active);
        assert_eq!(daily.state(3, false), QuestState::Completed);
        assert_eq!(daily.state(7, false), QuestState::Completed);
        assert_eq!(daily.state(3, true), QuestState::Claimed);
    }

    #[test]
    fn the_check_in_reward_grows_by_five_a_day_up_to_forty() {
        let rewards: Vec<_> = (1..=9).map(check_in_reward).collect();
        assert_eq!(rewards, [10, 15, 20, 25, 30, 35, 40, 40, 40]);
        assert_eq!(check_in_reward(0), 10);
        assert_eq!(check_in_reward(u32::MAX), 40);
    }

    #[test]
    fn a_streak_grows_on_consecutive_days_and_restarts_after_a_missed_one() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let last = |d, streak| {
            Some(LastCheckIn {
                day: day(d),
                streak,
            })
        };
        assert_eq!(next_streak(None, day(1)), Some(1));
        assert_eq!(next_streak(last(1, 1), day(2)), Some(2));
        assert_eq!(next_streak(last(2, 6), day(3)), Some(7));
        assert_eq!(next_streak(last(1, 4), day(3)), Some(1));
        assert_eq!(next_streak(last(3, 2), day(3)), None);
    }

    #[test]
    fn once_quests_have_one_reference_for_all_time() {
        let first = quest("first_survey");
        let early = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let late = Utc.with_ymd_and_hms(2031, 6, 1, 0, 0, 0).unwrap();
        assert_eq!(
            first.claim_reference(DEFAULT_TIME_ZONE, early),
            "first_survey"
        );
        assert_eq!(
            first.claim_reference(DEFAULT_TIME_ZONE, late),
            "first_survey"
        );
    }

    #[test]
    fn periodic_references_name_the_first_local_day_of_the_period() {
        // 2026-12-06 23:59:59 in Seoul is a Sunday; its week began on Monday 2026-11-30.
        let sunday_night = DEFAULT_TIME_ZONE
            .with_ymd_and_hms(2026, 12, 6, 23, 59, 59)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            quest("daily_bond").claim_reference(DEFAULT_TIME_ZONE, sunday_night),
            "daily_bond@2026-12-06"
        );
        assert_eq!(
            quest("weekly_spotlight").claim_reference(DEFAULT_TIME_ZONE, sunday_night),
            "weekly_spotlight@2026-11-30"
        );
        let monday = sunday_night + Duration::seconds(1);
        assert_eq!(
            quest("weekly_spotlight").claim_reference(DEFAULT_TIME_ZONE, monday),
            "weekly_spotlight@2026-12-07"
        );
    }

    /// Seoul has kept UTC+9 without daylight saving since 1988: an oracle independent of the
    /// zone database.
    fn seoul_wall_clock(instant: DateTime<Utc>) -> chrono::NaiveDateTime {
        instant
            .with_timezone(&FixedOffset::east_opt(9 * 3600).unwrap())
            .naive_local()
    }

    /// Instants from 2000 to 2100, a third of them within seconds of a Seoul midnight.
    fn instants() -> impl Strategy<Value = DateTime<Utc>> {
        let any = (946_684_800i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0));
        let near_midnight = (10_957i64..47_482, -3i64..3).prop_map(|(day, offset)| {
            DateTime::from_timestamp(day * 86_400 - 9 * 3600 + offset, 0)
        });
        prop_oneof![2 => any, 1 => near_midnight].prop_map(Option::unwrap)
    }

    proptest! {
        #[test]
        fn a_daily_window_is_the_seoul_calendar_day_of_the_instant(t in instants()) {
            let window = periods::window(Period::Daily, DEFAULT_TIME_ZONE, t);
            let end = window.end.unwrap();
            prop_assert!(window.start <= t && t < end);
            prop_assert_eq!(end - window.start, Duration::hours(24));
            let start = seoul_wall_clock(window.start);
            prop_assert_eq!((start.hour(), start.minute(), start.second()), (0, 0, 0));
            prop_assert_eq!(start.date(), seoul_wall_clock(t).date());
        }

        #[test]
        fn a_weekly_window_runs_from_the_seoul_monday_of_the_instant(t in instants()) {
            let window = periods::window(Period::Weekly, DEFAULT_TIME_ZONE, t);
            let end = window.end.unwrap();
            prop_assert!(window.start <= t && t < end);
            prop_assert_eq!(end - window.start, Duration::days(7));
            let start = seoul_wall_clock(window.start);
            prop_assert_eq!(start.weekday(), chrono::Weekday::Mon);
            prop_assert_eq!(start.time(), chrono::NaiveTime::MIN);
            prop_assert_eq!(start.date().iso_week(), seoul_wall_clock(t).date().iso_week());
        }

        #[test]
        fn two_claims_share_a_period_exactly_when_they_share_a_seoul_day_or_week(
            t in instants(),
            later in prop_oneof![0i64..5, 0i64..(15 * 86_400)],
        ) {
            let u = t + Duration::seconds(later);
            let (day_t, day_u) = (seoul_wall_clock(t).date(), seoul_wall_clock(u).date());
            let daily = quest("daily_bond");
            let weekly = quest("weekly_spotlight");
            prop_assert_eq!(
                daily.claim_reference(DEFAULT_TIME_ZONE, t) == daily.claim_reference(DEFAULT_TIME_ZONE, u),
                day_t == day_u
            );
            prop_assert_eq!(
                weekly.claim_reference(DEFAULT_TIME_ZONE, t) == weekly.claim_reference(DEFAULT_TIME_ZONE, u),
                day_t.iso_week() == day_u.iso_week()
            );
        }

        #[test]
        fn the_last_second_of_a_seoul_day_and_the_next_midnight_are_different_periods(
            day in 10_957i64..47_482,
        ) {
            let midnight = DateTime::from_timestamp(day * 86_400 - 9 * 3600, 0).unwrap();
            let before = midnight - Duration::seconds(1);
            let daily = quest("daily_bond");
            prop_assert_ne!(
                daily.claim_reference(DEFAULT_TIME_ZONE, before),
                daily.claim_reference(DEFAULT_TIME_ZONE, midnight)
            );
            prop_assert_eq!(daily.window(DEFAULT_TIME_ZONE, before).end, Some(midnight));
        }
    }
}
