//! The persona saga end to end: real queues, pollers with Lambda's semantics, the sweeper,
//! PostgreSQL, DynamoDB and S3 in the emulator.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use integration_tests::{spawn_app, TestApp};
use platform::worker::StepError;
use saga::{FaultPoint, Faults};
use serde_json::{json, Value};

const READY_WITHIN: Duration = Duration::from_secs(60);

async fn card_objects(app: &TestApp) -> Vec<(String, Option<String>, Option<String>)> {
    let listed = app
        .aws
        .s3
        .list_objects_v2()
        .bucket(&app.config().cards_bucket)
        .send()
        .await
        .unwrap();
    let mut objects = Vec::new();
    for object in listed.contents.unwrap_or_default() {
        let key = object.key.unwrap();
        let head = app
            .aws
            .s3
            .head_object()
            .bucket(&app.config().cards_bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        objects.push((key, head.content_type, head.cache_control));
    }
    objects
}

#[tokio::test]
async fn the_third_answer_runs_the_whole_saga_to_a_ready_persona_with_cards() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;

    let (token, _, _) = app.survey_with_answers("saga@example.com", 3).await;
    let status = app.wait_for_state(&token, "ready", READY_WITHIN).await;

    let steps = status["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for step in steps {
        assert_eq!(step["status"], "done", "{status}");
        assert!(
            step["started_at"].is_string() && step["finished_at"].is_string(),
            "{status}"
        );
        assert!(step["attempts"].as_u64().unwrap() >= 1);
    }
    assert!(status["error"].is_null());
    let persona: Value = app
        .http
        .get(app.url("/v1/personas/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(persona["version"], 1);
    assert_eq!(persona["synthesized_by"], "rule_based");
    assert!(persona["name"].as_str().unwrap().starts_with("Mira"));
    assert!(persona.get("system_prompt").is_none() && !persona.to_string().contains("You are"));
    for stat in ["charisma", "intellect", "kindness", "energy"] {
        assert!(persona["stats"][stat].as_u64().unwrap() <= 100);
    }
    assert_eq!(
        persona["stats"]["intellect"], 88,
        "the mean of 100 (a 5) and 75 (a 4)"
    );
    assert_eq!(persona["card"]["width"], 1080);
    assert_eq!(persona["card"]["sizes"].as_array().unwrap().len(), 3);
    let objects = card_objects(&app).await;
    assert_eq!(objects.len(), 3);
    for (key, content_type, cache_control) in objects {
        assert!(
            key.starts_with(&format!("cards/{}/", persona["id"].as_str().unwrap())),
            "{key}"
        );
        assert_eq!(content_type.as_deref(), Some("image/png"));
        assert_eq!(
            cache_control.as_deref(),
            Some("public, max-age=31536000, immutable")
        );
    }
}

#[tokio::test]
async fn the_status_supports_etags_and_says_when_to_poll_again() {
    let app = spawn_app().await;
    let (token, _, _) = app.survey_with_answers("etag@example.com", 3).await;

    let first = app
        .http
        .get(app.url("/v1/personas/me/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(first.headers()["retry-after"], "2");
    assert_eq!(first.json::<Value>().await.unwrap()["state"], "queued");
    let unchanged = app
        .http
        .get(app.url("/v1/personas/me/status"))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);

    let _workers = app.start_workers(app.saga(&[]).await).await;
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
    let changed = app
        .http
        .get(app.url("/v1/personas/me/status"))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert!(
        !changed.headers().contains_key("retry-after"),
        "nothing to wait for once ready"
    );
}

#[tokio::test]
async fn synthesize_is_409_below_three_answers_idempotent_while_running_and_versions_three_new_answers(
) {
    let app = spawn_app().await;
    let (token, _, survey_id) = app.survey_with_answers("versions@example.com", 2).await;
    let synthesize = || {
        app.http
            .post(app.url("/v1/personas/me/synthesize"))
            .bearer_auth(&token)
            .send()
    };

    let early = synthesize().await.unwrap();
    assert_eq!(early.status(), 409);
    let body: Value = early.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_enough_responses");
    assert_eq!(body["error"]["details"]["response_count"], 2);

    app.answer(&survey_id, 2).await; // the third answer queues version 1
    let running = synthesize().await.unwrap();
    assert_eq!(running.status(), 202);
    assert_eq!(running.headers()["location"], "/v1/personas/me/status");
    assert!(running.headers().contains_key("retry-after"));
    let running: Value = running.json().await.unwrap();
    assert_eq!(
        running["version"], 1,
        "the running job is returned, not duplicated"
    );

    let _workers = app.start_workers(app.saga(&[]).await).await;
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
    let unchanged = synthesize().await.unwrap();
    assert_eq!(unchanged.status(), 409, "nothing new to synthesize");
    let unchanged: Value = unchanged.json().await.unwrap();
    assert_eq!(unchanged["error"]["code"], "not_enough_new_responses");
    assert_eq!(
        unchanged["error"]["details"],
        json!({"new_responses": 0, "needed": 3})
    );

    // One new friend: a version 2 now would differ from version 1 by exactly their answers.
    app.answer(&survey_id, 3).await;
    let one_new = synthesize().await.unwrap();
    assert_eq!(one_new.status(), 409);
    let one_new: Value = one_new.json().await.unwrap();
    assert_eq!(
        one_new["error"]["details"],
        json!({"new_responses": 1, "needed": 2})
    );
    let progress: Value = app
        .http
        .get(app.url(&format!("/v1/surveys/{survey_id}/progress")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&progress["new_responses"], &progress["responses_needed"]),
        (&json!(1), &json!(2))
    );
    let status = app.wait_for_state(&token, "ready", READY_WITHIN).await;
    assert_eq!(
        (&status["new_responses"], &status["responses_needed"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(app.count("SELECT count(*) FROM personas").await, 1);

    app.answer(&survey_id, 4).await;
    app.answer(&survey_id, 5).await;
    let second: Value = synthesize().await.unwrap().json().await.unwrap();
    assert_eq!(
        second["version"], 2,
        "three unseen answers make a new version"
    );
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
    let persona: Value = app
        .http
        .get(app.url("/v1/personas/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(persona["version"], 2);
    assert_eq!(app.count("SELECT count(*) FROM personas").await, 2);
}

#[tokio::test]
async fn a_version_counts_the_answers_it_was_built_from_not_those_in_when_it_was_queued() {
    let app = spawn_app().await;
    let (token, _, survey_id) = app.survey_with_answers("late-answers@example.com", 3).await;
    // Two friends answer while version 1 waits in the queue: it is built from all five.
    app.answer(&survey_id, 3).await;
    app.answer(&survey_id, 4).await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let status = app.wait_for_state(&token, "ready", READY_WITHIN).await;
    assert_eq!(
        (&status["new_responses"], &status["responses_needed"]),
        (&json!(0), &json!(3)),
        "the two late answers are in version 1, not new"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM personas WHERE response_count = 5")
            .await,
        1
    );

    // A sixth friend: a version 2 now would differ from version 1 by exactly their answers.
    app.answer(&survey_id, 5).await;
    let refused = app
        .http
        .post(app.url("/v1/personas/me/synthesize"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(
        refused["error"]["details"],
        json!({"new_responses": 1, "needed": 2})
    );
}

/// A fault that fires once at `point`, as if the worker crashed there.
fn crash_once_at(point: FaultPoint) -> (Faults, Arc<AtomicUsize>) {
    let fired = Arc::new(AtomicUsize::new(0));
    let counter = fired.clone();
    let faults = Faults::inject(move |at| {
        if at == point && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(StepError::Retryable {
                error: anyhow::anyhow!("injected crash at {at:?}"),
                after: Some(Duration::ZERO),
            });
        }
        Ok(())
    });
    (faults, fired)
}

/// Sends duplicates of the persona's messages and a stale render message, out of order.
async fn duplicate_and_reorder(app: &TestApp, persona_id: &str) {
    for (queue, body) in [
        (
            "RenderQueue",
            json!({"persona_id": persona_id, "generation": 0}),
        ),
        ("SynthesizeQueue", json!({"persona_id": persona_id})),
        (
            "RenderQueue",
            json!({"persona_id": persona_id, "generation": 1}),
        ),
        ("SynthesizeQueue", json!({"persona_id": persona_id})),
    ] {
        app.aws
            .sqs
            .send_message()
            .queue_url(&app.resource(queue).reference)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }
}

async fn crash_and_duplicates_end_ready(point: FaultPoint) {
    let app = spawn_app().await;
    let mut saga = app.saga(&[]).await;
    let (faults, fired) = crash_once_at(point);
    saga.set_faults(faults);
    let (token, _, _) = app
        .survey_with_answers(&format!("fault-{point:?}@example.com").to_lowercase(), 3)
        .await;
    let persona_id: String = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT id::text FROM personas", &[])
        .await
        .unwrap()
        .get(0);
    duplicate_and_reorder(&app, &persona_id).await;

    let _workers = app.start_workers(saga).await;
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
    duplicate_and_reorder(&app, &persona_id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert!(fired.load(Ordering::SeqCst) >= 1, "the fault fired");
    assert_eq!(
        app.count("SELECT count(*) FROM personas").await,
        1,
        "exactly one persona version"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM personas WHERE state = 'ready' AND render_generation = 1")
            .await,
        1
    );
    let keys: HashSet<String> = card_objects(&app)
        .await
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(keys.len(), 3, "one set of cards: {keys:?}");
    let status: Value = app
        .http
        .get(app.url("/v1/personas/me/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "ready", "the status ends ready: {status}");
}

#[tokio::test]
async fn a_crash_after_the_llm_call_before_commit_with_duplicates_ends_ready_once() {
    crash_and_duplicates_end_ready(FaultPoint::AfterLlmBeforeCommit).await;
}

#[tokio::test]
async fn a_crash_after_the_synthesis_commit_before_publish_with_duplicates_ends_ready_once() {
    crash_and_duplicates_end_ready(FaultPoint::AfterSynthesisCommit).await;
}

#[tokio::test]
async fn a_crash_after_upload_before_commit_with_duplicates_ends_ready_once() {
    crash_and_duplicates_end_ready(FaultPoint::AfterUploadBeforeCommit).await;
}

#[tokio::test]
async fn a_crash_after_the_render_commit_before_the_status_write_with_duplicates_ends_ready_once() {
    crash_and_duplicates_end_ready(FaultPoint::AfterRenderCommitBeforeStatus).await;
}

#[tokio::test]
async fn a_crash_before_the_message_is_deleted_redelivers_it_harmlessly() {
    let app = spawn_app().await;
    let saga = app.saga(&[]).await;
    let (token, _, _) = app.survey_with_answers("nodelete@example.com", 3).await;
    let queue = app.resource("SynthesizeQueue").reference.clone();
    // A worker handles the batch, then dies before deleting it.
    let messages = app
        .aws
        .sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(messages.len(), 1);
    let event =
        devstack::poller::lambda_event(&messages, &app.resource("SynthesizeQueue").arn).unwrap();
    let response = saga.synthesize_batch(event).await;
    assert!(response.batch_item_failures.is_empty());
    app.aws
        .sqs
        .change_message_visibility()
        .queue_url(&queue)
        .receipt_handle(messages[0].receipt_handle.clone().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();

    let _workers = app.start_workers(saga).await;
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    assert_eq!(app.count("SELECT count(*) FROM personas").await, 1);
    assert_eq!(card_objects(&app).await.len(), 3);
    assert!(
        app.count("SELECT synthesize_attempts::bigint FROM personas")
            .await
            >= 1
    );
}

#[tokio::test]
async fn a_poison_message_ends_in_the_dlq_and_the_persona_fails_with_a_reason_then_retry_succeeds()
{
    let app = spawn_app().await;
    let mut saga = app.saga(&[]).await;
    // Rendering fails every time: the message is received maxReceiveCount (5) times, then SQS
    // moves it to the dead-letter queue and the sweeper fails the persona.
    saga.set_faults(Faults::inject(|at| match at {
        FaultPoint::AfterUploadBeforeCommit => Err(StepError::Retryable {
            error: anyhow::anyhow!("poison"),
            after: Some(Duration::ZERO),
        }),
        _ => Ok(()),
    }));
    let (token, _, _) = app.survey_with_answers("poison@example.com", 3).await;
    let workers = app.start_workers(saga).await;

    let failed = app.wait_for_state(&token, "failed", READY_WITHIN).await;
    assert_eq!(
        failed["error"],
        json!({"code": "dead_lettered", "retryable": true})
    );
    assert_eq!(failed["step"], "render_card");
    assert_eq!(failed["steps"][1]["status"], "failed");
    assert_eq!(
        app.count("SELECT render_attempts::bigint FROM personas")
            .await,
        5
    );
    drop(workers);

    let healthy = app.start_workers(app.saga(&[]).await).await;
    let retried = app
        .http
        .post(app.url("/v1/personas/me/retry"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 202);
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
    let again = app
        .http
        .post(app.url("/v1/personas/me/retry"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409, "only a failed persona can be retried");
    drop(healthy);
}

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_at_once_and_left_there_for_ops() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    app.aws
        .sqs
        .send_message()
        .queue_url(&app.resource("SynthesizeQueue").reference)
        .message_body("{\"not\": \"a job\"}")
        .send()
        .await
        .unwrap();

    let mut parked = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let attributes = app
            .aws
            .sqs
            .get_queue_attributes()
            .queue_url(&app.resource("SynthesizeDeadLetterQueue").reference)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        parked = [
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attributes
                .get(a)
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        })
        .sum();
        if parked == 1 {
            break;
        }
    }
    assert_eq!(parked, 1);
}

#[tokio::test]
async fn the_card_can_be_rendered_again_in_another_theme_and_the_persona_published() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let (token, _, _) = app.survey_with_answers("themes@example.com", 3).await;
    app.wait_for_state(&token, "ready", READY_WITHIN).await;

    let bad = app
        .http
        .post(app.url("/v1/personas/me/card"))
        .bearer_auth(&token)
        .json(&json!({"theme": "plaid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let rerender = app
        .http
        .post(app.url("/v1/personas/me/card"))
        .bearer_auth(&token)
        .json(&json!({"theme": "neon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rerender.status(), 202);
    assert_eq!(
        rerender.json::<Value>().await.unwrap()["state"],
        "rendering"
    );
    let during = app
        .http
        .get(app.url("/v1/personas/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        during.status(),
        200,
        "the persona stays visible with its last cards while re-rendering"
    );
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
    let persona: Value = app
        .http
        .get(app.url("/v1/personas/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(persona["card"]["theme"], "neon");
    assert_eq!(
        card_objects(&app).await.len(),
        6,
        "new theme, new content-addressed keys"
    );

    let published: Value = app
        .http
        .patch(app.url("/v1/personas/me"))
        .bearer_auth(&token)
        .json(&json!({"is_public": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(published["is_public"], true);
    let unknown_field = app
        .http
        .patch(app.url("/v1/personas/me"))
        .bearer_auth(&token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_field.status(), 400);
}

#[tokio::test]
async fn persona_routes_answer_404_before_any_persona_exists() {
    let app = spawn_app().await;
    let owner = app.dev_sign_in("nobody@example.com", "Nobody").await;
    let token = owner["access_token"].as_str().unwrap();

    let me = app
        .http
        .get(app.url("/v1/personas/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let retry = app
        .http
        .post(app.url("/v1/personas/me/retry"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status: Value = app
        .http
        .get(app.url("/v1/personas/me/status"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(me.status(), 404);
    assert_eq!(retry.status(), 404);
    assert_eq!(status["state"], "awaiting_responses");
}

#[tokio::test]
async fn the_sweeper_re_drives_a_job_whose_message_was_lost() {
    let app = spawn_app().await;
    let (token, _, _) = app.survey_with_answers("stuck@example.com", 3).await;
    // The synthesize message is lost (purged) and the job looks stuck for ten minutes.
    app.aws
        .sqs
        .purge_queue()
        .queue_url(&app.resource("SynthesizeQueue").reference)
        .send()
        .await
        .unwrap();
    app.state
        .db
        .get()
        .await
        .unwrap()
        .batch_execute(
            "UPDATE personas SET updated_at = now() - interval '10 minutes';
             UPDATE outbox SET sent_at = now() - interval '10 minutes'",
        )
        .await
        .unwrap();
    let saga = app.saga(&[]).await;

    let report = saga
        .sweep(saga::sweeper::SweepSettings {
            outbox_after: Duration::from_secs(30),
            stuck_after: Duration::from_secs(300),
        })
        .await
        .unwrap();
    let again = saga
        .sweep(saga::sweeper::SweepSettings {
            outbox_after: Duration::from_secs(30),
            stuck_after: Duration::from_secs(300),
        })
        .await
        .unwrap();

    assert_eq!(report.redriven, 1);
    assert_eq!(
        again.redriven, 0,
        "a re-driven job is not re-driven again at once"
    );
    let _workers = app.start_workers(saga).await;
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
}

#[tokio::test]
async fn a_stale_dead_letter_does_not_fail_a_persona_that_moved_on() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let (token, _, _) = app.survey_with_answers("stale-dlq@example.com", 3).await;
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
    let persona_id: String = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT id::text FROM personas", &[])
        .await
        .unwrap()
        .get(0);
    // An old synthesize message and a render message of a superseded generation reach the DLQs.
    for (queue, body) in [
        (
            "SynthesizeDeadLetterQueue",
            json!({"persona_id": persona_id}),
        ),
        (
            "RenderDeadLetterQueue",
            json!({"persona_id": persona_id, "generation": 0}),
        ),
    ] {
        app.aws
            .sqs
            .send_message()
            .queue_url(&app.resource(queue).reference)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }

    // Whichever sweep gets there first (the workers run one too) handles and deletes them.
    app.saga(&[])
        .await
        .sweep(saga::sweeper::SweepSettings::default())
        .await
        .unwrap();

    for queue in ["SynthesizeDeadLetterQueue", "RenderDeadLetterQueue"] {
        let mut remaining = -1;
        for _ in 0..40 {
            let left = app
                .aws
                .sqs
                .get_queue_attributes()
                .queue_url(&app.resource(queue).reference)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap();
            let count = |name: aws_sdk_sqs::types::QueueAttributeName| {
                left.get(&name)
                    .and_then(|n| n.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            remaining = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                + count(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                );
            if remaining == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(remaining, 0, "{queue} handled and emptied");
    }
    let status: Value = app
        .http
        .get(app.url("/v1/personas/me/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "ready");
    assert_eq!(
        app.count("SELECT count(*) FROM personas WHERE state = 'ready'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_stale_synthesize_dead_letter_does_not_fail_the_retried_run() {
    let app = spawn_app().await;
    let (token, _, _) = app.survey_with_answers("stale-run@example.com", 3).await;
    // Run 1 failed (its message was dead-lettered later); the owner retried: run 2 is queued.
    app.execute(
        "UPDATE personas SET state = 'failed', failed_step = 'synthesize',
                 error_code = 'dead_lettered', state_version = state_version + 1",
        &[],
    )
    .await;
    let retry = app
        .http
        .post(app.url("/v1/personas/me/retry"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 202);
    let persona_id: String = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT id::text FROM personas", &[])
        .await
        .unwrap()
        .get(0);
    app.aws
        .sqs
        .send_message()
        .queue_url(&app.resource("SynthesizeDeadLetterQueue").reference)
        .message_body(json!({"persona_id": persona_id, "generation": 1}).to_string())
        .send()
        .await
        .unwrap();

    let report = app
        .saga(&[])
        .await
        .sweep(saga::sweeper::SweepSettings::default())
        .await
        .unwrap();

    assert_eq!(report.dead_lettered, 1, "handled and deleted");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM personas WHERE state = 'queued' AND synthesize_generation = 2"
        )
        .await,
        1,
        "run 2 is still queued"
    );
    let _workers = app.start_workers(app.saga(&[]).await).await;
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
}

#[tokio::test]
async fn the_sweeper_leaves_jobs_waiting_in_a_backlog_alone_and_re_drives_a_lost_one_once() {
    let app = spawn_app().await;
    let (token, _, _) = app.survey_with_answers("backlog@example.com", 3).await;
    let db = app.state.db.get().await.unwrap();
    // The job looks old: unmoved for an hour, its message sent an hour ago.
    db.execute(
        "UPDATE personas SET updated_at = now() - interval '1 hour'",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE outbox SET sent_at = now() - interval '1 hour', created_at = now() - interval '1 hour'",
        &[],
    )
    .await
    .unwrap();
    let settings = saga::sweeper::SweepSettings {
        outbox_after: Duration::from_secs(30),
        stuck_after: Duration::from_secs(60),
    };
    let saga = app.saga(&[]).await;

    // Its message still waits in the queue (no worker is running): a backlog, not a lost job.
    let waiting = saga.sweep(settings).await.unwrap();
    assert_eq!(waiting.redriven, 0);

    // The message is lost (purged): the job is re-driven once, and not again while its new
    // message waits.
    app.aws
        .sqs
        .purge_queue()
        .queue_url(&app.resource("SynthesizeQueue").reference)
        .send()
        .await
        .unwrap();
    let lost = saga.sweep(settings).await.unwrap();
    assert_eq!(lost.redriven, 1);
    db.execute(
        "UPDATE personas SET updated_at = now() - interval '1 hour'",
        &[],
    )
    .await
    .unwrap();
    let again = saga.sweep(settings).await.unwrap();
    assert_eq!(again.redriven, 0, "its new message was sent just now");

    let _workers = app.start_workers(saga).await;
    app.wait_for_state(&token, "ready", READY_WITHIN).await;
}

#[tokio::test]
async fn after_a_card_design_change_every_newest_persona_is_re_rendered_once_resumably() {
    let app = spawn_app().await;
    let saga = app.saga(&[]).await;
    let _workers = app.start_workers(saga.clone()).await;
    let mira = app.owner_with_ready_persona("design-a@example.com").await;
    let jun = app.owner_with_ready_persona("design-b@example.com").await;
    // Both personas' cards were drawn with an older design.
    app.execute("UPDATE personas SET card_design = 0", &[])
        .await;
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(integration_tests::repo_path(
            "events/sweeper/rerender-cards.json",
        ))
        .unwrap(),
    )
    .unwrap();

    // One persona per invocation: ops invoke again until nothing remains.
    let first = saga
        .sweeper
        .handle(json!({"rerender_cards": {"limit": 1}}))
        .await
        .unwrap();
    assert_eq!(
        (&first["queued"], &first["remaining"]),
        (&json!(1), &json!(1))
    );
    let second = saga.sweeper.handle(event.clone()).await.unwrap();
    assert_eq!(
        (&second["queued"], &second["remaining"]),
        (&json!(1), &json!(0))
    );
    for owner in [&mira, &jun] {
        app.wait_for_state(&owner.token, "ready", READY_WITHIN)
            .await;
    }
    let done = saga.sweeper.handle(event).await.unwrap();

    assert_eq!(
        (&done["queued"], &done["remaining"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(
        app.count("SELECT count(*) FROM personas WHERE card_design = 1 AND render_generation = 2")
            .await,
        2,
        "each re-rendered exactly once, on the current design"
    );
}
