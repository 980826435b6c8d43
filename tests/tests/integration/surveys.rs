//! Surveys and anonymous answers (F-001), end to end through the HTTP API.

use std::{collections::HashSet, sync::Arc};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, TimeZone, Utc};
use domain::personas::PersonaState;
use integration_tests::{answers_with_words, spawn_app, spawn_app_with, TestApp, TestAppOptions};
use platform::clock::ManualClock;
use serde_json::{json, Value};

#[tokio::test]
async fn creating_a_survey_returns_its_share_link_and_starts_the_status_at_awaiting_responses() {
    let app = spawn_app().await;
    let owner = app.owner("mira@example.com").await;

    let response = app.create_survey(&owner, json!({})).await;

    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/surveys/{id}/progress"));
    assert_eq!(body["share_url"], format!("http://localhost:5173/s/{id}"));
    assert_eq!(body["status"], "collecting");
    assert_eq!(body["title"], "How do my friends see me?");
    assert_eq!(body["question_count"], 12);
    let created =
        chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, Duration::days(30));
    let (status, _) = app
        .state
        .personas
        .status
        .get(owner.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, PersonaState::AwaitingResponses);
}

#[tokio::test]
async fn one_collecting_survey_per_owner_until_it_is_closed() {
    let app = spawn_app().await;
    let owner = app.owner("one@example.com").await;
    let first = app.survey(&owner).await;

    let second = app.create_survey(&owner, json!({})).await;
    assert_eq!(second.status(), 409);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "survey_already_collecting");
    assert_eq!(body["error"]["details"]["survey_id"], first);

    let closed = app
        .http
        .delete(app.url(&format!("/v1/surveys/{first}")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 204);
    assert_eq!(app.create_survey(&owner, json!({})).await.status(), 201);
}

#[tokio::test]
async fn concurrent_creates_make_exactly_one_survey() {
    let app = spawn_app().await;
    let owner = app.owner("race-create@example.com").await;

    let statuses: Vec<u16> =
        futures_util::future::join_all((0..5).map(|_| app.create_survey(&owner, json!({}))))
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();

    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| [201, 409].contains(s)));
    assert_eq!(app.count("SELECT count(*) FROM surveys").await, 1);
}

#[tokio::test]
async fn an_idempotency_key_makes_survey_creation_safe_to_retry() {
    let app = spawn_app().await;
    let owner = app.owner("idem@example.com").await;
    let send = || {
        app.http
            .post(app.url("/v1/surveys"))
            .bearer_auth(&owner.token)
            .header("idempotency-key", "create-1")
            .json(&json!({"title": "Mine"}))
            .send()
    };

    let first: Value = send().await.unwrap().json().await.unwrap();
    let retry = send().await.unwrap();

    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(first["id"], retry["id"]);
    assert_eq!(app.count("SELECT count(*) FROM surveys").await, 1);
}

#[tokio::test]
async fn survey_titles_are_validated() {
    let app = spawn_app().await;
    let owner = app.owner("titles@example.com").await;

    let long = app
        .create_survey(&owner, json!({"title": "x".repeat(81)}))
        .await;
    let control = app.create_survey(&owner, json!({"title": "a\u{7}b"})).await;
    let unknown = app
        .create_survey(&owner, json!({"title": "ok", "theme": "dark"}))
        .await;
    let unauthenticated = app
        .http
        .post(app.url("/v1/surveys"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    assert_eq!(long.status(), 422);
    let body: Value = long.json().await.unwrap();
    assert!(body["error"]["details"]["fields"]["title"].is_string());
    assert_eq!(control.status(), 422);
    assert_eq!(unknown.status(), 400);
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn the_public_view_shows_title_first_name_and_questions_without_internals() {
    let app = spawn_app().await;
    let owner = app.owner("public@example.com").await;
    let id = app.survey(&owner).await;

    let response = app.get(&format!("/v1/surveys/{id}/public")).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["title"], "Who am I to you?");
    assert_eq!(body["owner_first_name"], "Mira");
    let questions = body["questions"].as_array().unwrap();
    assert_eq!(questions.len(), 12);
    let text = body.to_string();
    for internal in ["\"stat\"", "\"hints\"", "public@example.com", &owner.id] {
        assert!(!text.contains(internal), "{internal} leaked");
    }
    let kinds: HashSet<&str> = questions
        .iter()
        .map(|q| q["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, HashSet::from(["scale", "choice", "text"]));
    assert_eq!(
        app.get("/v1/surveys/00000000-0000-4000-8000-000000000000/public")
            .await
            .status(),
        404
    );
    assert_eq!(app.get("/v1/surveys/not-a-uuid/public").await.status(), 404);
}

#[tokio::test]
async fn closed_and_expired_surveys_are_410() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap());
    let app = spawn_app_with(TestAppOptions {
        clock: Some(Arc::new(clock.clone())),
        ..Default::default()
    })
    .await;
    let owner = app.owner("gone@example.com").await;
    let expiring = app.survey(&owner).await;

    clock.advance(Duration::days(30) + Duration::seconds(1));
    // A month later the access token has long expired (tokens read the same clock): sign in again.
    let owner = app.owner("gone@example.com").await;
    let expired_view = app.get(&format!("/v1/surveys/{expiring}/public")).await;
    let expired_answer = app
        .submit(
            &app.http,
            &expiring,
            json!({"answers": answers_with_words("a b c")}),
            None,
        )
        .await;
    let closing = app.survey(&owner).await;
    app.http
        .delete(app.url(&format!("/v1/surveys/{closing}")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    let closed_view = app.get(&format!("/v1/surveys/{closing}/public")).await;
    let closed_answer = app
        .submit(
            &app.http,
            &closing,
            json!({"answers": answers_with_words("a b c")}),
            None,
        )
        .await;

    assert_eq!(expired_view.status(), 410);
    assert_eq!(
        expired_view.json::<Value>().await.unwrap()["error"]["code"],
        "survey_expired"
    );
    assert_eq!(expired_answer.status(), 410);
    assert_eq!(closed_view.status(), 410);
    assert_eq!(
        closed_view.json::<Value>().await.unwrap()["error"]["code"],
        "survey_closed"
    );
    assert_eq!(closed_answer.status(), 410);
}

#[tokio::test]
async fn my_surveys_come_newest_first_in_cursor_pages() {
    let app = spawn_app().await;
    let owner = app.owner("pages@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = app.survey(&owner).await;
        app.http
            .delete(app.url(&format!("/v1/surveys/{id}")))
            .bearer_auth(&owner.token)
            .send()
            .await
            .unwrap();
        ids.push(id);
    }
    let page = |query: String| {
        let app = &app;
        let token = owner.token.clone();
        async move {
            app.http
                .get(app.url(&format!("/v1/surveys/mine{query}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };

    let first: Value = page("?limit=2".into()).await.json().await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second: Value = page(format!("?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();

    let listed: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    assert!(second["next_cursor"].is_null());
    assert_eq!(first["items"][0]["status"], "closed");
    for bad in [
        "?limit=0",
        "?limit=101",
        "?cursor=garbage",
        "?limit=abc",
        "?sort=asc",
    ] {
        assert_eq!(page(bad.into()).await.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn another_users_survey_progress_and_delete_answer_404() {
    let app = spawn_app().await;
    let mira = app.owner("mira2@example.com").await;
    let eve = app.owner("eve@example.com").await;
    let id = app.survey(&mira).await;

    let progress = app
        .http
        .get(app.url(&format!("/v1/surveys/{id}/progress")))
        .bearer_auth(&eve.token)
        .send()
        .await
        .unwrap();
    let delete = app
        .http
        .delete(app.url(&format!("/v1/surveys/{id}")))
        .bearer_auth(&eve.token)
        .send()
        .await
        .unwrap();
    let anonymous = app.get(&format!("/v1/surveys/{id}/progress")).await;
    let own: Value = app
        .http
        .get(app.url(&format!("/v1/surveys/{id}/progress")))
        .bearer_auth(&mira.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(progress.status(), 404);
    assert_eq!(delete.status(), 404);
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        own,
        json!({"response_count": 0, "threshold": 3, "unlocked": false, "persona_status": "awaiting_responses",
               "new_responses": 0, "responses_needed": 3})
    );
    assert_eq!(
        app.count("SELECT count(*) FROM surveys WHERE status = 'collecting'")
            .await,
        1
    );
}

#[tokio::test]
async fn every_bad_answer_is_refused_with_its_field() {
    let app = spawn_app().await;
    let owner = app.owner("matrix@example.com").await;
    let id = app.survey(&owner).await;
    let with = |field: &str, value: Value| {
        let mut a = answers_with_words("a b c");
        if value.is_null() {
            a.as_object_mut().unwrap().remove(field);
        } else {
            a[field] = value;
        }
        json!({ "answers": a })
    };
    let cases = [
        ("charisma_room", with("charisma_room", json!(6))),
        ("charisma_room", with("charisma_room", json!(0))),
        ("charisma_story", with("charisma_story", json!("5"))),
        ("intellect_curious", with("intellect_curious", json!(2.5))),
        (
            "first_impression",
            with("first_impression", json!("not_an_option")),
        ),
        ("in_a_crisis", with("in_a_crisis", json!(3))),
        ("three_words", with("three_words", json!("x".repeat(281)))),
        ("three_words", with("three_words", Value::Null)),
        ("energy_late", with("energy_late", Value::Null)),
        ("best_memory", with("best_memory", json!(["list"]))),
        ("favourite_food", with("favourite_food", json!("kimchi"))),
    ];

    for (field, body) in cases {
        let client = app.client_from(30);
        let response = app.submit(&client, &id, body, Some("fp")).await;
        assert_eq!(response.status(), 422, "{field}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_answers");
        assert!(
            body["error"]["details"]["fields"][field].is_string(),
            "{field}: {body}"
        );
    }
    for (case, body) in [
        ("no answers", json!({})),
        ("answers not an object", json!({"answers": [1, 2]})),
        (
            "unknown top-level field",
            json!({"answers": answers_with_words("a b c"), "name": "x"}),
        ),
    ] {
        assert_eq!(
            app.submit(&app.http, &id, body, None).await.status(),
            400,
            "{case}"
        );
    }
    let not_json = app
        .http
        .post(app.url(&format!("/v1/surveys/{id}/responses")))
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    // No invalid answer was stored, and none left a duplicate marker behind.
    assert_eq!(app.count("SELECT count(*) FROM survey_responses").await, 0);
    let valid = app
        .submit(
            &app.client_from(30),
            &id,
            json!({"answers": answers_with_words("a b c")}),
            Some("fp"),
        )
        .await;
    assert_eq!(valid.status(), 201);
}

#[tokio::test]
async fn the_owner_cannot_answer_their_own_survey() {
    let app = spawn_app().await;
    let owner = app.owner("self@example.com").await;
    let id = app.survey(&owner).await;

    let response = app
        .http
        .post(app.url(&format!("/v1/surveys/{id}/responses")))
        .bearer_auth(&owner.token)
        .json(&json!({"answers": answers_with_words("a b c")}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 403);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "own_survey"
    );
}

#[tokio::test]
async fn a_duplicate_within_24_hours_is_409_but_another_fingerprint_behind_the_same_address_is_not()
{
    let app = spawn_app().await;
    let owner = app.owner("dupes@example.com").await;
    let id = app.survey(&owner).await;
    let friend = app.client_from(40);

    let first = app
        .submit(
            &friend,
            &id,
            json!({"answers": answers_with_words("one")}),
            Some("device-a"),
        )
        .await;
    let again = app
        .submit(
            &friend,
            &id,
            json!({"answers": answers_with_words("two")}),
            Some("device-a"),
        )
        .await;
    let same_nat = app
        .submit(
            &friend,
            &id,
            json!({"answers": answers_with_words("three")}),
            Some("device-b"),
        )
        .await;

    assert_eq!(first.status(), 201);
    assert_eq!(again.status(), 409);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"]["code"],
        "already_answered"
    );
    assert_eq!(same_nat.status(), 201);
    assert_eq!(app.count("SELECT count(*) FROM survey_responses").await, 2);
}

async fn day_keys(app: &TestApp) -> Vec<String> {
    let items = app
        .aws
        .dynamodb
        .query()
        .table_name(&app.config().anonymity_table_name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("anonymity#day-key".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    items
        .iter()
        .map(|i| i["sk"].as_s().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn markers_expire_after_24_hours_and_become_unlinkable_once_the_day_keys_rotate() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 10, 22, 0, 0).unwrap());
    let app = spawn_app_with(TestAppOptions {
        clock: Some(Arc::new(clock.clone())),
        ..Default::default()
    })
    .await;
    let owner = app.owner("rotate@example.com").await;
    let id = app.survey(&owner).await;
    let friend = app.client_from(41);
    let answer = |words: &'static str| {
        app.submit(
            &friend,
            &id,
            json!({"answers": answers_with_words(words)}),
            Some("device-r"),
        )
    };

    assert_eq!(answer("first").await.status(), 201);
    clock.advance(Duration::hours(3)); // past midnight: the marker was made with yesterday's key
    assert_eq!(answer("next day").await.status(), 409);
    clock.advance(Duration::hours(22)); // 25 h after the first answer
    assert_eq!(answer("a day later").await.status(), 201);
    clock.advance(Duration::hours(49)); // two more days: both earlier day keys rotated away
    assert_eq!(answer("much later").await.status(), 201);

    // The keys of the 10th and 11th, which made the earlier markers, are gone: nothing can link
    // those markers to a device any more. (No answer came on the 13th, so it has no key.)
    let keys = day_keys(&app).await;
    assert_eq!(keys, ["2026-11-14".to_owned()]);
}

#[tokio::test]
async fn answers_are_stored_sealed_and_open_only_for_their_survey_and_response() {
    let app = spawn_app().await;
    let owner = app.owner("sealed@example.com").await;
    let id = app.survey(&owner).await;
    app.submit(
        &app.client_from(42),
        &id,
        json!({"answers": answers_with_words("plaintext-marker-91c")}),
        None,
    )
    .await;

    let row = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT id, survey_id, key_id, nonce, ciphertext FROM survey_responses",
            &[],
        )
        .await
        .unwrap();
    let sealed = platform::crypto::Sealed {
        key_id: row.get(2),
        nonce: row.get(3),
        ciphertext: row.get(4),
    };
    let (response_id, survey_id): (uuid::Uuid, uuid::Uuid) = (row.get(0), row.get(1));

    assert_eq!(sealed.key_id, "local");
    assert_eq!(sealed.nonce.len(), 12);
    assert!(!String::from_utf8_lossy(&sealed.ciphertext).contains("plaintext-marker"));
    let opened: Value = serde_json::from_slice(
        &app.state
            .surveys
            .cipher
            .open(survey_id, response_id, &sealed)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(opened["three_words"], "plaintext-marker-91c");
    assert_eq!(opened["charisma_room"], 4);
    assert!(app
        .state
        .surveys
        .cipher
        .open(response_id, survey_id, &sealed)
        .is_err());
    assert_eq!(
        response_id.get_version_num(),
        4,
        "response ids carry no timestamp"
    );
}

#[tokio::test]
async fn twenty_concurrent_answers_around_the_threshold_start_exactly_one_job() {
    let app = spawn_app().await;
    let owner = app.owner("race@example.com").await;
    let id = app.survey(&owner).await;

    let statuses: Vec<u16> = futures_util::future::join_all((0..20u8).map(|i| {
        let client = app.client_from(50 + i);
        let id = id.clone();
        let app = &app;
        async move {
            app.submit(
                &client,
                &id,
                json!({"answers": answers_with_words("race")}),
                Some(&format!("fp-{i}")),
            )
            .await
            .status()
            .as_u16()
        }
    }))
    .await;

    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_eq!(app.count("SELECT count(*) FROM personas").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM personas WHERE state = 'queued' AND response_count = 3")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL")
            .await,
        1
    );
    let messages = app.queue_messages("SynthesizeQueue").await;
    assert_eq!(messages.len(), 1);
    let persona_id: uuid::Uuid = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT id FROM personas", &[])
        .await
        .unwrap()
        .get(0);
    let body: Value = serde_json::from_str(messages[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body, json!({"persona_id": persona_id, "generation": 1}));
    assert!(messages[0]
        .message_attributes
        .as_ref()
        .unwrap()
        .contains_key("request_id"));
    let (status, _) = app
        .state
        .personas
        .status
        .get(owner.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, PersonaState::Queued);
    assert_eq!(status.persona_id, Some(persona_id));
    let progress: Value = app
        .http
        .get(app.url(&format!("/v1/surveys/{id}/progress")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        progress,
        json!({"response_count": 20, "threshold": 3, "unlocked": true, "persona_status": "queued",
               "new_responses": 17, "responses_needed": 0})
    );
}

#[tokio::test]
async fn a_lost_publish_leaves_the_outbox_row_for_the_sweeper_and_nothing_is_lost() {
    let healthy = spawn_app().await;
    let broken = spawn_app_with(TestAppOptions {
        overrides: [
            ("DATABASE_URL".to_owned(), healthy.database_url.clone()),
            (
                "SYNTHESIZE_QUEUE_URL".to_owned(),
                format!("{}-missing", healthy.resource("SynthesizeQueue").reference),
            ),
        ]
        .into(),
        ..Default::default()
    })
    .await;
    let owner = broken.owner("lost@example.com").await;
    let id = broken.survey(&owner).await;

    for i in 0..3u8 {
        let response = broken
            .submit(
                &broken.client_from(90 + i),
                &id,
                json!({"answers": answers_with_words("x")}),
                None,
            )
            .await;
        assert_eq!(
            response.status(),
            201,
            "the answer is stored even when SQS is unreachable"
        );
    }
    assert_eq!(
        healthy
            .count("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            .await,
        1
    );
    assert!(healthy.queue_messages("SynthesizeQueue").await.is_empty());

    let sent = healthy
        .state
        .personas
        .publisher
        .publish_stale(&healthy.state.db, std::time::Duration::ZERO)
        .await
        .unwrap();

    assert_eq!(sent, 1);
    assert_eq!(healthy.queue_messages("SynthesizeQueue").await.len(), 1);
    assert_eq!(
        healthy
            .count("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn a_retried_submission_with_its_idempotency_key_is_stored_once() {
    let app = spawn_app().await;
    let owner = app.owner("retry@example.com").await;
    let id = app.survey(&owner).await;
    let friend = app.client_from(43);
    let send = || {
        friend
            .post(app.url(&format!("/v1/surveys/{id}/responses")))
            .header("idempotency-key", "answer-1")
            .header("x-fingerprint", "fp-retry")
            .json(&json!({"answers": answers_with_words("retry")}))
            .send()
    };

    let first = send().await.unwrap();
    let retry = send().await.unwrap();

    assert_eq!(first.status(), 201);
    assert_eq!(retry.status(), 201, "a replay, not a duplicate-answer 409");
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(app.count("SELECT count(*) FROM survey_responses").await, 1);
}

#[tokio::test]
async fn a_canary_answer_address_and_fingerprint_leave_no_trace_in_the_database_logs_queue_or_table(
) {
    let app = spawn_app().await;
    let owner = app.owner("canary-owner@example.com").await;
    let id = app.survey(&owner).await;
    let canary = format!("canary-answer-{}", uuid::Uuid::new_v4().simple());
    let fingerprint = format!("canary-fp-{}", uuid::Uuid::new_v4().simple());
    let address = "127.0.0.77";
    let friend = app.client_from(77);

    for n in 0..3 {
        let mut body = answers_with_words(&canary);
        body["best_memory"] = json!(format!("{canary} memory {n}"));
        let response = app
            .submit(
                &friend,
                &id,
                json!({"answers": body}),
                Some(&format!("{fingerprint}-{n}")),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    // A refused duplicate and a refused invalid answer, which must not leak either.
    app.submit(
        &friend,
        &id,
        json!({"answers": answers_with_words(&canary)}),
        Some(&format!("{fingerprint}-0")),
    )
    .await;
    let mut invalid = answers_with_words(&canary);
    invalid["charisma_room"] = json!(canary.clone());
    app.submit(
        &friend,
        &id,
        json!({"answers": invalid}),
        Some(&fingerprint),
    )
    .await;

    let dump = app.database_dump().await;
    let logs = integration_tests::captured_logs();
    let messages = app.queue_messages("SynthesizeQueue").await;
    assert_eq!(messages.len(), 1, "the third answer queued the job");
    let queue = format!("{messages:?}");
    let table = app.table_dump().await;

    assert!(dump.contains("survey_responses"), "the dump is real");
    assert!(table.contains("marker#"), "the table is real");
    for (place, text) in [
        ("pg_dump", &dump),
        ("logs", &logs),
        ("queue", &queue),
        ("table", &table),
    ] {
        for (what, needle) in [
            ("answer", canary.as_str()),
            ("address", address),
            ("fingerprint", fingerprint.as_str()),
        ] {
            assert!(!text.contains(needle), "the {what} appears in the {place}");
        }
    }
}
