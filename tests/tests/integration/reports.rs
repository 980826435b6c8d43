//! Reports on public personas: three distinct reporters hide a persona everywhere the public
//! sees it (its later versions too) while its owner still has it; ops restore or remove it with
//! the sweeper's payload; reporters are kept only as keyed hashes.

use integration_tests::{spawn_app, Owner, TestApp};
use serde_json::{json, Value};

async fn report(app: &TestApp, reporter: &Owner, persona: &str, body: Value) -> reqwest::Response {
    app.post_as(reporter, &format!("/v1/personas/{persona}/reports"), body)
        .await
}

async fn publicly_visible(app: &TestApp, persona: &str) -> [u16; 3] {
    [
        app.get(&format!("/v1/personas/{persona}/public"))
            .await
            .status()
            .as_u16(),
        app.get(&format!("/p/{persona}")).await.status().as_u16(),
        app.get(&format!("/p/{persona}/card.png"))
            .await
            .status()
            .as_u16(),
    ]
}

async fn sweeper(app: &TestApp, payload: Value) -> Value {
    app.saga(&[]).await.sweeper.handle(payload).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_distinct_reporters_hide_a_persona_until_ops_restore_it() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("reported@example.com").await;
    let persona = app.publish(&owner).await["id"].as_str().unwrap().to_owned();
    let first = app.owner_with_ready_persona("reporter1@example.com").await;
    let second = app.owner("reporter2@example.com").await;
    let third = app.owner("reporter3@example.com").await;
    let harassment = json!({"reason": "harassment", "note": "The greeting insults people."});

    // One reporter counts once, however often they report.
    for _ in 0..2 {
        assert_eq!(
            report(&app, &first, &persona, harassment.clone())
                .await
                .status(),
            202
        );
    }
    assert_eq!(
        report(&app, &second, &persona, json!({"reason": "spam"}))
            .await
            .status(),
        202
    );
    assert_eq!(publicly_visible(&app, &persona).await, [200, 200, 200]);

    let third_report = report(&app, &third, &persona, json!({"reason": "hate"})).await;
    assert_eq!(third_report.status(), 202);
    assert_eq!(
        third_report.json::<Value>().await.unwrap(),
        json!({"state": "received"})
    );

    assert_eq!(publicly_visible(&app, &persona).await, [404, 404, 404]);
    let compatibility = app
        .get_as(
            &first,
            &format!("/v1/social/compatibility?persona_id={persona}"),
        )
        .await;
    assert_eq!(compatibility.status(), 404);
    let mine = app.persona(&owner).await;
    assert_eq!(mine["moderation"]["state"], "hidden");
    assert!(mine["moderation"]["since"].is_string());
    assert_eq!(mine["is_public"], true, "the owner's choice is kept");
    assert_eq!(
        app.chat(&owner, "still there?").await["reply"]["source"],
        "llm"
    );
    let hashes: Vec<String> = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query("SELECT reporter_hash FROM persona_reports", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(hashes.len(), 3);
    for reporter in [&first, &second, &third] {
        assert!(!hashes.iter().any(|hash| hash.contains(&reporter.id)));
    }

    // A refreshed version stays hidden.
    let refreshed = app.next_persona_version(&owner).await;
    let refreshed = refreshed["id"].as_str().unwrap().to_owned();
    assert_eq!(publicly_visible(&app, &refreshed).await, [404, 404, 404]);

    // Ops restore it: shown again, and its reports start over.
    let restored = sweeper(
        &app,
        json!({"moderation": {"persona_id": persona, "action": "restore"}}),
    )
    .await;
    assert_eq!(restored["applied"], true);
    assert_eq!(publicly_visible(&app, &refreshed).await, [200, 200, 200]);
    assert!(app.persona(&owner).await["moderation"].is_null());
    assert_eq!(app.count("SELECT count(*) FROM persona_reports").await, 0);

    // Or take it down for good.
    sweeper(
        &app,
        json!({"moderation": {"persona_id": persona, "action": "remove"}}),
    )
    .await;
    assert_eq!(publicly_visible(&app, &persona).await, [404, 404, 404]);
    assert_eq!(app.persona(&owner).await["moderation"]["state"], "removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_needs_a_signed_in_stranger_a_public_persona_and_a_valid_body() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("owner-r@example.com").await;
    let persona = app.persona(&owner).await["id"].as_str().unwrap().to_owned();
    let stranger = app.owner("stranger-r@example.com").await;
    let spam = json!({"reason": "spam"});

    assert_eq!(
        report(&app, &stranger, &persona, spam.clone())
            .await
            .status(),
        404,
        "not public"
    );
    app.publish(&owner).await;

    let anonymous = app
        .post(&format!("/v1/personas/{persona}/reports"), spam.clone())
        .await;
    assert_eq!(anonymous.status(), 401);
    let own = report(&app, &owner, &persona, spam.clone()).await;
    assert_eq!(own.status(), 422);
    assert_eq!(
        own.json::<Value>().await.unwrap()["error"]["code"],
        "own_persona"
    );
    let unknown = report(
        &app,
        &stranger,
        &uuid::Uuid::new_v4().to_string(),
        spam.clone(),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    let reason = report(&app, &stranger, &persona, json!({"reason": "boring"})).await;
    assert_eq!(reason.status(), 400);
    let long = report(
        &app,
        &stranger,
        &persona,
        json!({"reason": "other", "note": "x".repeat(501)}),
    )
    .await;
    assert_eq!(long.status(), 422);
    assert_eq!(
        long.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_fields"
    );
    assert_eq!(app.count("SELECT count(*) FROM persona_reports").await, 0);

    // Ten reports an hour per reporter.
    let busy = app.owner("busy-r@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(
            report(&app, &busy, &persona, spam.clone())
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses[..10], [202; 10]);
    assert_eq!(statuses[10], 429);
}
