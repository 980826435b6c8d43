//! Your data: an owner exports everything (the chat in plaintext, never a friend's words) and
//! erases the account, after which nothing of it is left in PostgreSQL, S3 or DynamoDB, even
//! when the erase worker crashes after any of its steps.

use std::time::Duration;

use account::{EraseFault, EraseJob};
use integration_tests::{answers, spawn_app, Owner, TestApp};
use platform::worker::{Message, StepError};
use serde_json::{json, Value};
use uuid::Uuid;

/// A friend's memory of the owner: anonymous, and never to be exported.
const FRIENDS_MEMORY: &str = "that night we got lost in Busan and you sang to the taxi driver";

/// Every id of `owner`'s account that a residue search looks for: the user, the survey and every
/// persona version.
async fn ids_of(app: &TestApp, owner: &Owner) -> Vec<String> {
    let client = app.state.db.get().await.unwrap();
    let user: Uuid = owner.id.parse().unwrap();
    let mut ids = vec![owner.id.clone()];
    for row in client
        .query(
            "SELECT id::text FROM surveys WHERE owner_id = $1
             UNION ALL SELECT id::text FROM personas WHERE owner_id = $1",
            &[&user],
        )
        .await
        .unwrap()
    {
        ids.push(row.get(0));
    }
    ids
}

/// An owner whose persona is ready and public, who chatted, checked in and shared; one of the
/// three friends left a memory in the optional question.
async fn busy_owner(app: &TestApp, email: &str) -> (Owner, String) {
    let owner = app.owner(email).await;
    let survey = app.survey(&owner).await;
    for friend in 0..3u8 {
        let mut answer = answers(u32::from(friend));
        if friend == 1 {
            answer["best_memory"] = json!(FRIENDS_MEMORY);
        }
        let response = app
            .submit(
                &app.client_from(100 + friend),
                &survey,
                json!({ "answers": answer }),
                Some(&format!("friend-{friend}")),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    app.wait_for_state(&owner.token, "ready", Duration::from_secs(60))
        .await;
    let persona = app.publish(&owner).await;
    app.chat(&owner, "my secret plan is to learn the cello")
        .await;
    assert_eq!(app.check_in(&owner).await.status(), 200);
    let shared = app
        .post_as(&owner, "/v1/personas/me/shares", json!({"channel": "link"}))
        .await;
    assert_eq!(shared.status(), 201);
    (owner, persona["id"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_journey_exports_everything_then_an_erase_leaves_nothing() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let (owner, persona) = busy_owner(&app, "journey@example.com").await;
    let refresh_token = app.dev_sign_in("journey@example.com", "Mira").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The export: one document, the chat in plaintext, friends only as aggregates.
    let export = app.export_of(&owner).await;
    let text = export.to_string();
    assert_eq!(export["schema_version"], 1);
    assert_eq!(export["profile"]["id"], owner.id.as_str());
    assert!(text.contains("my secret plan is to learn the cello"));
    assert_eq!(export["chat"]["messages"].as_array().unwrap().len(), 2);
    assert_eq!(export["surveys"][0]["response_count"], 3);
    assert_eq!(export["personas"][0]["id"], persona.as_str());
    assert_eq!(export["personas"][0]["cards"].as_array().unwrap().len(), 3);
    assert_eq!(export["visibility"]["is_public"], true);
    assert_eq!(export["shares"][0]["channel"], "link");
    assert_eq!(export["crystals"]["ledger"][0]["reason"], "daily_check_in");
    assert!(export["quests"].as_array().unwrap().len() >= 5);
    assert!(
        !text.contains(FRIENDS_MEMORY),
        "a friend's words were exported"
    );
    for friend in 0..3 {
        let words = answers(friend)["three_words"].as_str().unwrap().to_owned();
        assert!(
            !text.contains(&words),
            "a friend's words were exported: {words}"
        );
    }
    let card = export["personas"][0]["cards"][0]["url"].as_str().unwrap();
    assert_eq!(reqwest::get(card).await.unwrap().status(), 200);

    // The erase: refused at once everywhere, then gone.
    let ids = ids_of(&app, &owner).await;
    let erased = app.erase(&owner).await;
    assert_eq!(erased.status(), 202);
    assert_eq!(
        erased.json::<Value>().await.unwrap(),
        json!({"state": "erasing"})
    );
    for path in [
        "/v1/me",
        "/v1/personas/me/status",
        "/v1/personas/me",
        "/v1/quests",
    ] {
        let response = app.get_as(&owner, path).await;
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "account_erased", "{path}");
    }
    let export_again = app.post_as(&owner, "/v1/me/exports", json!({})).await;
    assert_eq!(export_again.status(), 401);
    let refreshed = app
        .post(
            "/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        )
        .await;
    assert_eq!(refreshed.status(), 401);
    assert_eq!(app.get(&format!("/p/{persona}")).await.status(), 404);
    assert_eq!(
        app.get(&format!("/p/{persona}/card.png")).await.status(),
        404
    );
    assert_eq!(
        app.erase(&owner).await.status(),
        202,
        "erasing again is fine"
    );

    app.wait_for_erasures(Duration::from_secs(60)).await;
    assert_eq!(app.residue(&ids).await, Vec::<String>::new());
    assert!(
        !app.bucket_keys()
            .await
            .iter()
            .any(|key| key.starts_with("exports/")),
        "the export went too"
    );

    // Signing in again makes a new, empty account.
    let again = app.owner("journey@example.com").await;
    assert_ne!(again.id, owner.id);
    let profile: Value = app.get_as(&again, "/v1/me").await.json().await.unwrap();
    assert_eq!(profile["crystal_balance"], 0);
    assert_eq!(app.get_as(&again, "/v1/personas/me").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erase_that_crashes_after_any_step_resumes_and_leaves_nothing() {
    let app = spawn_app().await;
    let workers = app.start_workers(app.saga(&[]).await).await;
    let mut owners = Vec::new();
    for (i, _) in EraseFault::ALL.iter().enumerate() {
        owners.push(busy_owner(&app, &format!("crash{i}@example.com")).await.0);
    }
    // From here on the test drives the erase worker itself.
    drop(workers);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, plain) = app.account(&[("ERASE_GRACE_SECS", "0")]).await;

    for (owner, fault) in owners.iter().zip(EraseFault::ALL) {
        let ids = ids_of(&app, owner).await;
        assert_eq!(app.erase(owner).await.status(), 202);
        let erasure: Uuid = app
            .state
            .db
            .get()
            .await
            .unwrap()
            .query_one(
                "SELECT id FROM account_erasures WHERE user_id = $1",
                &[&owner.id.parse::<Uuid>().unwrap()],
            )
            .await
            .unwrap()
            .get(0);
        let message = |receive_count| Message {
            id: format!("erase-{receive_count}"),
            request_id: None,
            receive_count,
            body: EraseJob {
                erasure_id: erasure,
            },
        };
        let mut crashing = plain.clone();
        crashing.inject_faults(move |point| {
            if point == fault {
                Err(StepError::retryable(anyhow::anyhow!("crash at {point:?}")))
            } else {
                Ok(())
            }
        });

        assert!(crashing.erase(message(1)).await.is_err(), "{fault:?}");
        plain
            .erase(message(2))
            .await
            .unwrap_or_else(|error| panic!("{fault:?}: {error}"));
        plain
            .erase(message(3))
            .await
            .unwrap_or_else(|error| panic!("a duplicate: {error}"));

        assert_eq!(app.residue(&ids).await, Vec::<String>::new(), "{fault:?}");
        assert_eq!(
            app.count("SELECT count(*) FROM account_erasures").await,
            0,
            "{fault:?}"
        );
    }
}

#[tokio::test]
async fn exports_are_one_at_a_time_three_a_day_and_only_the_owners() {
    let app = spawn_app().await;
    let owner = app.owner("exports@example.com").await;
    let other = app.owner("someone@example.com").await;

    let first = app.post_as(&owner, "/v1/me/exports", json!({})).await;
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["state"], "pending");
    assert_eq!(
        location,
        format!("/v1/me/exports/{}", first["id"].as_str().unwrap())
    );

    let pending = app.post_as(&owner, "/v1/me/exports", json!({})).await;
    assert_eq!(pending.status(), 409);
    let body: Value = pending.json().await.unwrap();
    assert_eq!(body["error"]["code"], "export_in_progress");

    assert_eq!(
        app.get_as(&other, &location).await.status(),
        404,
        "another user's"
    );
    let unknown = app
        .get_as(&owner, &format!("/v1/me/exports/{}", Uuid::new_v4()))
        .await;
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "export_not_found");

    // Two more finish, then the fourth of the day is refused until the first is a day old.
    let finish = || async {
        app.execute("UPDATE data_exports SET state = 'failed'", &[])
            .await;
    };
    for _ in 0..2 {
        finish().await;
        assert_eq!(
            app.post_as(&owner, "/v1/me/exports", json!({}))
                .await
                .status(),
            202
        );
    }
    finish().await;
    let fourth = app.post_as(&owner, "/v1/me/exports", json!({})).await;
    assert_eq!(fourth.status(), 429);
    let retry_after: u64 = fourth.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((86_000..=86_400).contains(&retry_after), "{retry_after}");
    let body: Value = fourth.json().await.unwrap();
    assert_eq!(body["error"]["code"], "export_limit_reached");
    assert_eq!(
        app.get_as(&owner, &location)
            .await
            .json::<Value>()
            .await
            .unwrap()["state"],
        "failed"
    );
}

#[tokio::test]
async fn the_sample_export_and_erase_events_run_through_their_workers() {
    let app = spawn_app().await;
    let (export, erase) = app.account(&[]).await;
    let load = |name: &str| -> aws_lambda_events::sqs::SqsEvent {
        serde_json::from_str(&std::fs::read_to_string(integration_tests::repo_path(name)).unwrap())
            .unwrap()
    };

    // Both name work this database does not have: done, nothing written, nothing parked.
    let exported = export.handle_batch(load("events/export/job.json")).await;
    let erased = erase.handle_batch(load("events/erase/job.json")).await;

    assert!(exported.batch_item_failures.is_empty());
    assert!(erased.batch_item_failures.is_empty());
    assert!(app.queue_messages("ExportDeadLetterQueue").await.is_empty());
    assert!(app.queue_messages("EraseDeadLetterQueue").await.is_empty());
    let command: Value = serde_json::from_str(
        &std::fs::read_to_string(integration_tests::repo_path("events/erase/reapply.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        erase.handle_command(command).await.unwrap(),
        json!({"reapplied": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restore_the_journal_erases_the_accounts_the_snapshot_brought_back() {
    let app = spawn_app().await;
    let workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("restored@example.com").await;
    let user: Uuid = owner.id.parse().unwrap();
    let subject: String = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT subject FROM users WHERE id = $1", &[&user])
        .await
        .unwrap()
        .get(0);
    let snapshot_taken = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(app.erase(&owner).await.status(), 202);
    app.wait_for_erasures(Duration::from_secs(60)).await;
    drop(workers);

    // The restore brings the account back, as it was when the snapshot was taken.
    app.execute(
        "INSERT INTO users (id, subject, display_name) VALUES ($1, $2, 'Restored')",
        &[&user, &subject],
    )
    .await;
    let (_, erase) = app.account(&[("ERASE_GRACE_SECS", "0")]).await;
    let command = json!({"reapply_erasures": {"since": snapshot_taken.to_rfc3339()}});

    assert_eq!(
        erase.handle_command(command).await.unwrap(),
        json!({"reapplied": 1})
    );
    let erasure: Uuid = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT id FROM account_erasures", &[])
        .await
        .unwrap()
        .get(0);
    erase
        .erase(Message {
            id: "reapplied".into(),
            request_id: None,
            receive_count: 1,
            body: EraseJob {
                erasure_id: erasure,
            },
        })
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
    assert_eq!(
        app.residue(std::slice::from_ref(&owner.id)).await,
        Vec::<String>::new()
    );
}
