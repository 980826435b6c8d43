//! Quests and crystals (F-006), end to end through the HTTP API: progress from the events the
//! product records, periods in Seoul around midnight and Monday on a clock the tests move,
//! claims and check-ins that pay once, and a ledger whose sum is always the balance.
//!
//! Every kind of event fills its quest through the real routes (the survey tests,
//! `chats_and_shares_fill_their_quests`); tests that need `chat_sent` or `persona_shared` at
//! chosen instants, or by the hundred, record them with `platform::events::record` directly
//! ([`stand_in_events`]).

use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc,
};

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use domain::{periods::DEFAULT_TIME_ZONE, quests::CATALOG};
use futures_util::future::join_all;
use integration_tests::{answers, spawn_app, spawn_app_with, Owner, TestApp, TestAppOptions};
use platform::{clock::ManualClock, events::EventKind};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use serde_json::{json, Value};

/// `at` on the wall clock in Seoul.
fn seoul(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    DEFAULT_TIME_ZONE
        .with_ymd_and_hms(y, m, d, h, min, s)
        .unwrap()
        .with_timezone(&Utc)
}

async fn app_at(start: DateTime<Utc>) -> (TestApp, ManualClock) {
    let clock = ManualClock::new(start);
    let app = spawn_app_with(TestAppOptions {
        clock: Some(Arc::new(clock.clone())),
        ..Default::default()
    })
    .await;
    (app, clock)
}

fn set(clock: &ManualClock, at: DateTime<Utc>) {
    clock.advance(at - platform::clock::Clock::now(clock));
}

/// Stand-in for Chat and Social until they land: records `n` events of `kind` for `owner`, as
/// their routes will, at `at`.
async fn stand_in_events(
    app: &TestApp,
    owner: &Owner,
    kind: EventKind,
    n: usize,
    at: DateTime<Utc>,
) {
    let client = app.state.db.get().await.unwrap();
    for _ in 0..n {
        platform::events::record(&client, owner.id.parse().unwrap(), kind, at)
            .await
            .unwrap();
    }
}

/// A user signed in straight through the session store (the dev route is rate-limited per
/// address, and property tests sign in hundreds); the token is valid at the app clock's now.
async fn direct_user(app: &TestApp, subject: &str) -> Owner {
    let signed_in = auth::sessions::sign_in(&app.state.db, &app.state.auth.tokens, subject, "Prop")
        .await
        .unwrap();
    Owner {
        token: signed_in.access_token,
        id: signed_in.user.id.to_string(),
    }
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn ledger(app: &TestApp, owner: &Owner, query: &str) -> (u16, Value) {
    json_of(app.get_as(owner, &format!("/v1/me/ledger{query}")).await).await
}

#[tokio::test]
async fn a_new_user_sees_every_quest_active_with_its_reset_time_in_seoul() {
    // Wednesday 2026-12-02, 10:00 in Seoul.
    let (app, _clock) = app_at(seoul(2026, 12, 2, 10, 0, 0)).await;
    let owner = app.owner("new@example.com").await;

    let board: Value = app.get_as(&owner, "/v1/quests").await.json().await.unwrap();
    let quests = app.quests(&owner).await;

    assert_eq!(board["time_zone"], "Asia/Seoul");
    assert_eq!(board["catalog_version"], 1);
    assert_eq!(quests.len(), CATALOG.len());
    for quest in quests.values() {
        assert_eq!(quest["state"], "active", "{quest}");
        assert_eq!(quest["progress"], 0, "{quest}");
    }
    let first = &quests["first_survey"];
    assert_eq!(
        (&first["period"], &first["requirement"], &first["reward"]),
        (&json!("once"), &json!(1), &json!(50))
    );
    assert_eq!(first["resets_at"], Value::Null);
    // Midnight in Seoul is 15:00 UTC the day before; the week ends on Monday 2026-12-07.
    assert_eq!(quests["daily_bond"]["resets_at"], "2026-12-02T15:00:00Z");
    assert_eq!(quests["daily_bond"]["period"], "daily");
    assert_eq!(
        quests["weekly_spotlight"]["resets_at"],
        "2026-12-06T15:00:00Z"
    );
    assert_eq!(quests["weekly_spotlight"]["period"], "weekly");
}

#[tokio::test]
async fn creating_a_survey_completes_the_first_survey_quest_and_its_claim_pays_once() {
    let app = spawn_app().await;
    let owner = app.owner("first@example.com").await;
    assert_eq!(app.claim(&owner, "first_survey").await.status(), 409);

    app.survey(&owner).await;
    let before = app.quests(&owner).await;
    let (status, paid) = json_of(app.claim(&owner, "first_survey").await).await;
    let after = app.quests(&owner).await;
    let (again, refused) = json_of(app.claim(&owner, "first_survey").await).await;

    assert_eq!(before["first_survey"]["progress"], 1);
    assert_eq!(before["first_survey"]["state"], "completed");
    assert_eq!(status, 200);
    assert_eq!(paid, json!({ "reward": 50, "balance": 50 }));
    assert_eq!(after["first_survey"]["state"], "claimed");
    assert_eq!(again, 409);
    assert_eq!(refused["error"]["code"], "already_claimed");
    assert_eq!(refused["error"]["details"]["resets_at"], Value::Null);
    assert_eq!(app.balance(&owner).await, 50);
    let (_, page) = ledger(&app, &owner, "").await;
    let entry = &page["items"][0];
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(entry["amount"], 50);
    assert_eq!(entry["reason"], "quest_reward");
    assert_eq!(
        entry["quest"],
        json!({ "id": "first_survey", "period_start": null })
    );
    assert_eq!(entry["check_in"], Value::Null);
}

#[tokio::test]
async fn actions_that_roll_back_or_are_refused_leave_no_progress() {
    let app = spawn_app().await;
    let owner = app.owner("rollback@example.com").await;
    let survey = app.survey(&owner).await;
    let events = |kind: &'static str| {
        format!(
            "SELECT count(*) FROM domain_events WHERE user_id = '{}' AND kind = '{kind}'",
            owner.id
        )
    };

    // The second create hits the one-collecting-survey constraint and rolls back.
    let second = app.create_survey(&owner, json!({})).await;
    app.http
        .delete(app.url(&format!("/v1/surveys/{survey}")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    // An answer to the closed survey is refused inside the answer function.
    let late = app
        .submit(
            &app.client_from(150),
            &survey,
            json!({ "answers": answers(1) }),
            Some("late"),
        )
        .await;

    assert_eq!(second.status(), 409);
    assert_eq!(late.status(), 410);
    assert_eq!(app.count(&events("survey_created")).await, 1);
    assert_eq!(app.count(&events("response_received")).await, 0);
    assert_eq!(app.quests(&owner).await["five_answers"]["progress"], 0);
}

#[tokio::test]
async fn answers_from_five_friends_complete_the_answers_quest() {
    let app = spawn_app().await;
    let owner = app.owner("heard@example.com").await;
    let survey = app.survey(&owner).await;
    for friend in 0..4 {
        app.answer(&survey, friend).await;
    }

    let four = app.quests(&owner).await;
    let (early, refused) = json_of(app.claim(&owner, "five_answers").await).await;
    app.answer(&survey, 4).await;
    let five = app.quests(&owner).await;
    let (status, paid) = json_of(app.claim(&owner, "five_answers").await).await;

    assert_eq!(four["five_answers"]["progress"], 4);
    assert_eq!(four["five_answers"]["state"], "active");
    assert_eq!(early, 409);
    assert_eq!(refused["error"]["code"], "quest_not_completed");
    assert_eq!(
        refused["error"]["details"],
        json!({ "progress": 4, "requirement": 5 })
    );
    assert_eq!(five["five_answers"]["progress"], 5);
    assert_eq!(five["five_answers"]["state"], "completed");
    assert_eq!(status, 200);
    assert_eq!(paid, json!({ "reward": 100, "balance": 100 }));
}

#[tokio::test]
async fn chats_and_shares_fill_their_quests() {
    let (app, _clock) = app_at(seoul(2026, 12, 2, 12, 0, 0)).await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("social@example.com").await;

    // Through the real routes: ten exchanges with the persona, two shares of it.
    for turn in 0..10 {
        app.chat(&owner, &format!("Hi, it's me again ({turn})"))
            .await;
    }
    app.publish(&owner).await;
    for channel in ["link", "kakao"] {
        let shared = app
            .post_as(
                &owner,
                "/v1/personas/me/shares",
                json!({ "channel": channel }),
            )
            .await;
        assert_eq!(shared.status(), 201, "sharing on {channel}");
        let share: Value = shared.json().await.unwrap();
        if channel == "link" {
            // A self-report pays nothing until someone else opens the link.
            assert_eq!(app.quests(&owner).await["share_persona"]["state"], "active");
        }
        app.open_share_link(share["share_url"].as_str().unwrap(), 90)
            .await;
    }
    let quests = app.quests(&owner).await;

    assert_eq!(quests["chat_ten_times"]["progress"], 10);
    assert_eq!(quests["chat_ten_times"]["state"], "completed");
    assert_eq!(quests["daily_bond"]["progress"], 3);
    assert_eq!(quests["daily_bond"]["state"], "completed");
    assert_eq!(quests["share_persona"]["state"], "completed");
    assert_eq!(quests["weekly_spotlight"]["progress"], 2);
    assert_eq!(quests["weekly_spotlight"]["state"], "active");
    for (quest, reward) in [
        ("chat_ten_times", 50),
        ("daily_bond", 50),
        ("share_persona", 75),
    ] {
        let (status, paid) = json_of(app.claim(&owner, quest).await).await;
        assert_eq!((status, &paid["reward"]), (200, &json!(reward)), "{quest}");
    }
    assert_eq!(app.balance(&owner).await, 175);
}

#[tokio::test]
async fn an_unknown_quest_is_404() {
    let app = spawn_app().await;
    let owner = app.owner("unknown@example.com").await;

    let (status, body) = json_of(app.claim(&owner, "free_crystals").await).await;

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        app.claim(
            &Owner {
                token: "nope".into(),
                id: owner.id
            },
            "first_survey"
        )
        .await
        .status(),
        401
    );
}

#[tokio::test]
async fn the_daily_bond_claimed_at_23_59_59_in_seoul_can_be_earned_again_at_midnight() {
    let (app, clock) = app_at(seoul(2026, 12, 1, 23, 59, 50)).await;
    let owner = app.owner("midnight@example.com").await;
    stand_in_events(
        &app,
        &owner,
        EventKind::ChatSent,
        3,
        seoul(2026, 12, 1, 23, 59, 50),
    )
    .await;

    set(&clock, seoul(2026, 12, 1, 23, 59, 59));
    let (late, _) = json_of(app.claim(&owner, "daily_bond").await).await;
    let claimed = app.quests(&owner).await["daily_bond"].clone();
    set(&clock, seoul(2026, 12, 2, 0, 0, 0));
    let fresh = app.quests(&owner).await["daily_bond"].clone();
    let (empty, _) = json_of(app.claim(&owner, "daily_bond").await).await;
    stand_in_events(
        &app,
        &owner,
        EventKind::ChatSent,
        3,
        seoul(2026, 12, 2, 0, 0, 0),
    )
    .await;
    let (midnight, paid) = json_of(app.claim(&owner, "daily_bond").await).await;

    assert_eq!(late, 200);
    assert_eq!(claimed["state"], "claimed");
    assert_eq!(claimed["resets_at"], "2026-12-01T15:00:00Z");
    assert_eq!(fresh["state"], "active");
    assert_eq!(fresh["progress"], 0);
    assert_eq!(fresh["resets_at"], "2026-12-02T15:00:00Z");
    assert_eq!(empty, 409);
    assert_eq!(midnight, 200);
    assert_eq!(paid["balance"], 100);
    let (_, page) = ledger(&app, &owner, "").await;
    let starts: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["quest"]["period_start"].clone())
        .collect();
    assert_eq!(
        starts,
        [json!("2026-12-01T15:00:00Z"), json!("2026-11-30T15:00:00Z")]
    );
}

#[tokio::test]
async fn a_weekly_quest_resets_at_monday_midnight_in_seoul() {
    // Sunday 2026-12-06, one second before the week ends in Seoul.
    let sunday_night = seoul(2026, 12, 6, 23, 59, 59);
    let (app, clock) = app_at(sunday_night).await;
    let owner = app.owner("weekly@example.com").await;
    stand_in_events(
        &app,
        &owner,
        EventKind::PersonaShared,
        3,
        seoul(2026, 11, 30, 0, 0, 0),
    )
    .await;

    let (sunday, _) = json_of(app.claim(&owner, "weekly_spotlight").await).await;
    set(&clock, seoul(2026, 12, 7, 0, 0, 0));
    let monday = app.quests(&owner).await["weekly_spotlight"].clone();
    let (early, _) = json_of(app.claim(&owner, "weekly_spotlight").await).await;
    stand_in_events(
        &app,
        &owner,
        EventKind::PersonaShared,
        3,
        seoul(2026, 12, 7, 0, 0, 0),
    )
    .await;
    let (next_week, _) = json_of(app.claim(&owner, "weekly_spotlight").await).await;

    assert_eq!(sunday, 200);
    assert_eq!(monday["state"], "active");
    assert_eq!(monday["progress"], 0);
    assert_eq!(monday["resets_at"], "2026-12-13T15:00:00Z");
    assert_eq!(early, 409);
    assert_eq!(next_week, 200);
    assert_eq!(app.balance(&owner).await, 300);
}

/// One instant just around a Seoul midnight (or a Monday midnight), and a second one a few
/// seconds later.
#[derive(Debug, Clone)]
struct TwoClaims {
    weekly: bool,
    first: DateTime<Utc>,
    second: DateTime<Utc>,
}

fn two_claims() -> impl Strategy<Value = TwoClaims> {
    // Days from 2026-01-01 to 2029-12-31.
    (any::<bool>(), 20_454i64..21_914, -3i64..=3, 0i64..=4).prop_map(
        |(weekly, day, offset, gap)| {
            let mut date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + Duration::days(day);
            if weekly {
                let to_monday = (7 - date.weekday().num_days_from_monday()) % 7;
                date += Duration::days(i64::from(to_monday));
            }
            let boundary = seoul(date.year(), date.month(), date.day(), 0, 0, 0);
            let first = boundary + Duration::seconds(offset);
            TwoClaims {
                weekly,
                first,
                second: first + Duration::seconds(gap),
            }
        },
    )
}

/// Seoul has kept UTC+9 without daylight saving since 1988: an oracle that does not use the
/// zone database the code under test uses.
fn seoul_date(instant: DateTime<Utc>) -> NaiveDate {
    instant
        .with_timezone(&FixedOffset::east_opt(9 * 3600).unwrap())
        .date_naive()
}

#[test]
fn claims_at_two_instants_both_pay_exactly_when_the_instants_fall_in_different_seoul_periods() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, clock) = runtime.block_on(app_at(seoul(2026, 1, 1, 0, 0, 0)));
    let users = AtomicU32::new(0);
    let same_periods = AtomicU32::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });

    let outcome = runner.run(&two_claims(), |case| {
        runtime.block_on(async {
            let (quest, kind) = if case.weekly {
                ("weekly_spotlight", EventKind::PersonaShared)
            } else {
                ("daily_bond", EventKind::ChatSent)
            };
            let same_period = if case.weekly {
                seoul_date(case.first).iso_week() == seoul_date(case.second).iso_week()
            } else {
                seoul_date(case.first) == seoul_date(case.second)
            };
            set(&clock, case.first);
            let subject = format!("prop:periods:{}", users.fetch_add(1, Ordering::Relaxed));
            let owner = direct_user(&app, &subject).await;
            stand_in_events(&app, &owner, kind, 3, case.first).await;
            let first = app.claim(&owner, quest).await.status();
            set(&clock, case.second);
            stand_in_events(&app, &owner, kind, 3, case.second).await;
            let state = app.quests(&owner).await[quest]["state"].clone();
            let (second, body) = json_of(app.claim(&owner, quest).await).await;

            prop_assert_eq!(first, 200);
            if same_period {
                same_periods.fetch_add(1, Ordering::Relaxed);
                prop_assert_eq!(state, json!("claimed"));
                prop_assert_eq!(
                    (second, &body["error"]["code"]),
                    (409, &json!("already_claimed"))
                );
            } else {
                prop_assert_eq!(state, json!("completed"));
                prop_assert_eq!(second, 200);
            }
            Ok::<(), TestCaseError>(())
        })
    });

    outcome.unwrap();
    // Both outcomes were exercised.
    let same = same_periods.load(Ordering::Relaxed);
    assert!(0 < same && same < users.load(Ordering::Relaxed), "{same}");
}

#[tokio::test]
async fn a_hundred_concurrent_claims_pay_exactly_once() {
    let app = spawn_app().await;
    let owner = app.owner("race@example.com").await;
    app.survey(&owner).await;

    let statuses: Vec<u16> = join_all((0..100).map(|_| app.claim(&owner, "first_survey")))
        .await
        .iter()
        .map(|response| response.status().as_u16())
        .collect();

    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 99);
    let entries = format!(
        "SELECT count(*) FROM crystal_ledger WHERE user_id = '{}'",
        owner.id
    );
    assert_eq!(app.count(&entries).await, 1);
    assert_eq!(app.balance(&owner).await, 50);
}

#[tokio::test]
async fn an_idempotency_key_replays_a_claim_and_a_check_in_without_paying_again() {
    let app = spawn_app().await;
    let owner = app.owner("retry@example.com").await;
    app.survey(&owner).await;
    let post = |path: &str, key: &str| {
        app.http
            .post(app.url(path))
            .bearer_auth(&owner.token)
            .header("idempotency-key", key)
            .send()
    };

    let first = post("/v1/quests/first_survey/claim", "claim-1")
        .await
        .unwrap();
    let retry = post("/v1/quests/first_survey/claim", "claim-1")
        .await
        .unwrap();
    let other_quest = post("/v1/quests/five_answers/claim", "claim-1")
        .await
        .unwrap();
    let check_in = post("/v1/rewards/daily", "day-1").await.unwrap();
    let check_in_retry = post("/v1/rewards/daily", "day-1").await.unwrap();

    assert_eq!(first.status(), 200);
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(
        retry.json::<Value>().await.unwrap(),
        json!({ "reward": 50, "balance": 50 })
    );
    assert_eq!(other_quest.status(), 422);
    assert_eq!(check_in.status(), 200);
    assert_eq!(check_in_retry.status(), 200);
    assert_eq!(check_in_retry.headers()["idempotent-replayed"], "true");
    assert_eq!(
        check_in_retry.json::<Value>().await.unwrap(),
        json!({ "reward": 10, "streak": 1, "balance": 60 })
    );
    assert_eq!(app.balance(&owner).await, 60);
}

#[tokio::test]
async fn daily_check_ins_build_a_streak_that_restarts_after_a_missed_day() {
    let (app, clock) = app_at(seoul(2026, 12, 1, 23, 59, 59)).await;
    let owner = app.owner("streak@example.com").await;

    let (_, day_one) = json_of(app.check_in(&owner).await).await;
    let (twice, refused) = json_of(app.check_in(&owner).await).await;
    set(&clock, seoul(2026, 12, 2, 0, 0, 0));
    let (_, day_two) = json_of(app.check_in(&owner).await).await;
    clock.advance(Duration::days(1));
    // Access tokens read the same clock: a day later, sign in again.
    let owner = app.owner("streak@example.com").await;
    let (_, day_three) = json_of(app.check_in(&owner).await).await;
    clock.advance(Duration::days(2)); // 2026-12-04 missed
    let owner = app.owner("streak@example.com").await;
    let (_, after_a_gap) = json_of(app.check_in(&owner).await).await;

    assert_eq!(day_one, json!({ "reward": 10, "streak": 1, "balance": 10 }));
    assert_eq!(twice, 409);
    assert_eq!(refused["error"]["code"], "already_checked_in");
    assert_eq!(
        refused["error"]["details"]["next_check_in_at"],
        "2026-12-01T15:00:00Z"
    );
    assert_eq!(day_two, json!({ "reward": 15, "streak": 2, "balance": 25 }));
    assert_eq!(
        day_three,
        json!({ "reward": 20, "streak": 3, "balance": 45 })
    );
    assert_eq!(
        after_a_gap,
        json!({ "reward": 10, "streak": 1, "balance": 55 })
    );
    let (_, page) = ledger(&app, &owner, "").await;
    let check_ins: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["reason"].clone(), entry["check_in"].clone()))
        .collect();
    assert_eq!(
        check_ins,
        [
            (
                json!("daily_check_in"),
                json!({ "day": "2026-12-05", "streak": 1 })
            ),
            (
                json!("daily_check_in"),
                json!({ "day": "2026-12-03", "streak": 3 })
            ),
            (
                json!("daily_check_in"),
                json!({ "day": "2026-12-02", "streak": 2 })
            ),
            (
                json!("daily_check_in"),
                json!({ "day": "2026-12-01", "streak": 1 })
            ),
        ]
    );
}

#[tokio::test]
async fn the_ledger_is_paginated_newest_first() {
    let (app, clock) = app_at(seoul(2026, 12, 1, 9, 0, 0)).await;
    let mut owner = app.owner("pages@example.com").await;
    for _ in 0..3 {
        assert_eq!(app.check_in(&owner).await.status(), 200);
        clock.advance(Duration::days(1));
        owner = app.owner("pages@example.com").await;
    }

    let (_, first) = ledger(&app, &owner, "?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = ledger(&app, &owner, &format!("?limit=2&cursor={cursor}")).await;
    let (bad_cursor, bad_cursor_body) = ledger(&app, &owner, "?cursor=bm90aGluZw").await;
    let (zero, zero_body) = ledger(&app, &owner, "?limit=0").await;
    let (too_many, _) = ledger(&app, &owner, "?limit=101").await;

    let days = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["check_in"]["day"].clone())
            .collect()
    };
    assert_eq!(days(&first), [json!("2026-12-03"), json!("2026-12-02")]);
    assert_eq!(days(&rest), [json!("2026-12-01")]);
    assert_eq!(rest["next_cursor"], Value::Null);
    assert_eq!(bad_cursor, 400);
    assert_eq!(bad_cursor_body["error"]["code"], "invalid_cursor");
    assert_eq!(zero, 400);
    assert_eq!(zero_body["error"]["code"], "invalid_limit");
    assert_eq!(too_many, 400);
}

#[tokio::test]
async fn another_users_quests_and_ledger_are_their_own() {
    let app = spawn_app().await;
    let mira = app.owner("mira@example.com").await;
    let jun = app.owner("jun@example.com").await;
    app.survey(&mira).await;
    assert_eq!(app.claim(&mira, "first_survey").await.status(), 200);
    assert_eq!(app.check_in(&mira).await.status(), 200);

    let quests = app.quests(&jun).await;
    let (claim, refused) = json_of(app.claim(&jun, "first_survey").await).await;
    let (_, page) = ledger(&app, &jun, "").await;

    assert_eq!(quests["first_survey"]["state"], "active");
    assert_eq!(quests["first_survey"]["progress"], 0);
    assert_eq!(claim, 409);
    assert_eq!(refused["error"]["code"], "quest_not_completed");
    assert_eq!(page["items"], json!([]));
    assert_eq!(app.balance(&jun).await, 0);
    assert_eq!(app.balance(&mira).await, 60);
    // Mira's check-in today does not count as Jun's.
    assert_eq!(app.check_in(&jun).await.status(), 200);
}

#[tokio::test]
async fn the_ledger_is_append_only_and_the_balance_moves_only_with_it() {
    let app = spawn_app().await;
    let owner = app.owner("audit@example.com").await;
    app.survey(&owner).await;
    assert_eq!(app.claim(&owner, "first_survey").await.status(), 200);
    let client = app.state.db.get().await.unwrap();
    let user: uuid::Uuid = owner.id.parse().unwrap();
    let refused = |sql: &'static str| {
        let client = &client;
        async move {
            let error = client.execute(sql, &[&user]).await.unwrap_err();
            error.as_db_error().unwrap().message().to_owned()
        }
    };

    let rewrite = refused("UPDATE crystal_ledger SET amount = 5000 WHERE user_id = $1").await;
    let erase = refused("DELETE FROM crystal_ledger WHERE user_id = $1").await;
    let inflate = refused("UPDATE crystal_balances SET balance = 5000 WHERE user_id = $1").await;
    let forge = refused("INSERT INTO crystal_balances (user_id, balance) VALUES ($1, 10)").await;
    let no_quest = client
        .execute(
            "INSERT INTO crystal_ledger (id, user_id, amount, reason, reference)
             VALUES (gen_random_uuid(), $1, 10, 'quest_reward', 'x')",
            &[&user],
        )
        .await;
    client
        .execute(
            "INSERT INTO crystal_ledger (id, user_id, amount, reason, reference, quest_id)
             VALUES (gen_random_uuid(), $1, 7, 'quest_reward', 'manual', 'first_survey')",
            &[&user],
        )
        .await
        .unwrap();
    let balance_after_insert = app.balance(&owner).await;
    client
        .execute("DELETE FROM users WHERE id = $1", &[&user])
        .await
        .unwrap();

    assert!(rewrite.contains("append-only"), "{rewrite}");
    assert!(erase.contains("append-only"), "{erase}");
    assert!(inflate.contains("projection"), "{inflate}");
    assert!(forge.contains("projection"), "{forge}");
    assert!(no_quest.is_err(), "a quest reward must name its quest");
    assert_eq!(balance_after_insert, 57);
    // Deleting the user takes their ledger and balance with them.
    assert_eq!(
        app.count("SELECT (SELECT count(*) FROM crystal_ledger) + (SELECT count(*) FROM crystal_balances)")
            .await,
        0
    );
}

/// Something a user does, in a random sequence.
#[derive(Debug, Clone)]
enum Action {
    CreateSurvey,
    CloseSurvey,
    Answer(u8),
    Chat(usize),
    Share,
    CheckIn,
    Claim(usize),
    ClaimTwiceAtOnce(usize),
    Later(i64),
}

fn actions() -> impl Strategy<Value = Vec<Action>> {
    let action = prop_oneof![
        Just(Action::CreateSurvey),
        Just(Action::CloseSurvey),
        (0u8..50).prop_map(Action::Answer),
        (1usize..4).prop_map(Action::Chat),
        Just(Action::Share),
        Just(Action::CheckIn),
        (0..CATALOG.len()).prop_map(Action::Claim),
        (0..CATALOG.len()).prop_map(Action::ClaimTwiceAtOnce),
        (1i64..3000).prop_map(Action::Later),
    ];
    prop::collection::vec(action, 5..30)
}

#[test]
fn any_sequence_of_actions_and_claims_keeps_the_ledger_sum_equal_to_the_balance() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, clock) = runtime.block_on(app_at(seoul(2026, 3, 1, 12, 0, 0)));
    let users = AtomicU32::new(0);
    let total_paid = std::sync::atomic::AtomicI64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });

    let outcome = runner.run(&actions(), |actions| {
        runtime.block_on(async {
            let subject = format!("prop:ledger:{}", users.fetch_add(1, Ordering::Relaxed));
            let mut owner = direct_user(&app, &subject).await;
            let mut survey: Option<String> = None;
            let mut paid = 0i64;
            let mut statuses = Vec::new();
            for action in actions {
                let now = platform::clock::Clock::now(&clock);
                let responses = match action {
                    Action::CreateSurvey => {
                        let response = app.create_survey(&owner, json!({})).await;
                        let (status, body) = json_of(response).await;
                        if status == 201 {
                            survey = body["id"].as_str().map(str::to_owned);
                        }
                        statuses.push(status);
                        Vec::new()
                    }
                    Action::CloseSurvey => {
                        if let Some(id) = &survey {
                            let response = app
                                .http
                                .delete(app.url(&format!("/v1/surveys/{id}")))
                                .bearer_auth(&owner.token)
                                .send()
                                .await
                                .unwrap();
                            statuses.push(response.status().as_u16());
                        }
                        Vec::new()
                    }
                    Action::Answer(friend) => {
                        if let Some(id) = &survey {
                            let response = app
                                .submit(
                                    &app.client_from(100 + friend),
                                    id,
                                    json!({ "answers": answers(u32::from(friend)) }),
                                    Some(&format!("prop-{friend}-{now}")),
                                )
                                .await;
                            statuses.push(response.status().as_u16());
                        }
                        Vec::new()
                    }
                    Action::Chat(n) => {
                        stand_in_events(&app, &owner, EventKind::ChatSent, n, now).await;
                        Vec::new()
                    }
                    Action::Share => {
                        stand_in_events(&app, &owner, EventKind::PersonaShared, 1, now).await;
                        Vec::new()
                    }
                    Action::CheckIn => vec![app.check_in(&owner).await],
                    Action::Claim(i) => vec![app.claim(&owner, CATALOG[i].id).await],
                    Action::ClaimTwiceAtOnce(i) => {
                        let quest = CATALOG[i].id;
                        let (a, b) = tokio::join!(app.claim(&owner, quest), app.claim(&owner, quest));
                        prop_assert!(
                            a.status() != 200 || b.status() != 200,
                            "two racing claims of {} both paid",
                            quest
                        );
                        vec![a, b]
                    }
                    Action::Later(minutes) => {
                        clock.advance(Duration::minutes(minutes));
                        owner = direct_user(&app, &subject).await;
                        Vec::new()
                    }
                };
                for response in responses {
                    let (status, body) = json_of(response).await;
                    statuses.push(status);
                    if status == 200 {
                        paid += body["reward"].as_i64().unwrap();
                        prop_assert_eq!(body["balance"].as_i64().unwrap(), paid);
                    }
                }
            }

            let ledger_sum = app
                .count(&format!(
                    "SELECT COALESCE(sum(amount), 0)::bigint FROM crystal_ledger WHERE user_id = '{}'",
                    owner.id
                ))
                .await;
            prop_assert!(statuses.iter().all(|s| *s < 500), "{:?}", statuses);
            prop_assert_eq!(ledger_sum, paid);
            prop_assert_eq!(app.balance(&owner).await, paid);
            total_paid.fetch_add(paid, Ordering::Relaxed);
            Ok::<(), TestCaseError>(())
        })
    });

    outcome.unwrap();
    assert!(
        total_paid.load(Ordering::Relaxed) > 0,
        "no sequence paid anything"
    );
    let disagreeing = runtime.block_on(app.count(
        "SELECT count(*) FROM crystal_balances b
         FULL JOIN (SELECT user_id, sum(amount) AS total FROM crystal_ledger GROUP BY user_id) l
           USING (user_id)
         WHERE b.balance IS DISTINCT FROM l.total",
    ));
    assert_eq!(disagreeing, 0);
}

#[test]
fn the_document_lists_the_quest_routes_with_every_status() {
    let document = serde_json::to_value(api::openapi_document()).unwrap();
    let statuses = |path: &str, method: &str| -> Vec<String> {
        document["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} missing"))
            .keys()
            .cloned()
            .collect()
    };

    // 500 is on every operation (`api::openapi::complete`).
    assert_eq!(statuses("/v1/quests", "get"), ["200", "401", "500"]);
    assert_eq!(
        statuses("/v1/quests/{id}/claim", "post"),
        ["200", "400", "401", "404", "409", "422", "500"]
    );
    assert_eq!(
        statuses("/v1/rewards/daily", "post"),
        ["200", "400", "401", "409", "500"]
    );
    assert_eq!(
        statuses("/v1/me/ledger", "get"),
        ["200", "400", "401", "500"]
    );
}
