//! Privacy and security hardening: text that hides or reorders itself is refused, PostgreSQL
//! errors reach the logs without the values they quote, what only grows is pruned, unreadable
//! answers fail with a reason, and every command that starts work honours `Idempotency-Key`.

use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use integration_tests::{answers_with_words, captured_logs, spawn_app};
use platform::worker::{process_batch, SqsQueueOps, StepError};
use serde_json::{json, Value};

#[tokio::test]
async fn titles_names_and_answers_with_bidi_or_zero_width_characters_are_refused() {
    let app = spawn_app().await;
    let owner = app.owner("bidi@example.com").await;

    let title = app
        .create_survey(&owner, json!({"title": "Rate me \u{202E}olleh"}))
        .await;
    assert_eq!(title.status(), 422);
    let title: Value = title.json().await.unwrap();
    assert!(title["error"]["details"]["fields"]["title"]
        .as_str()
        .unwrap()
        .contains("bidi"));

    let name = app
        .http
        .post(app.url("/v1/auth/dev"))
        .json(&json!({"email": "x@example.com", "name": "Mi\u{2066}ra"}))
        .send()
        .await
        .unwrap();
    assert_eq!(name.status(), 422);

    let survey = app.survey(&owner).await;
    let answer = app
        .submit(
            &app.client_from(40),
            &survey,
            json!({"answers": answers_with_words("kind\u{200B}, warm")}),
            Some("fp-bidi"),
        )
        .await;
    assert_eq!(answer.status(), 422);
    let answer: Value = answer.json().await.unwrap();
    assert!(answer["error"]["details"]["fields"]["three_words"]
        .as_str()
        .unwrap()
        .contains("zero-width"));
    assert_eq!(
        app.count("SELECT count(*) FROM survey_responses").await,
        0,
        "nothing stored"
    );
}

#[tokio::test]
async fn a_postgres_error_is_logged_without_the_values_its_detail_quotes() {
    let app = spawn_app().await;
    let canary = "detail-canary-0b7e41";
    let db = app.state.db.clone();
    let event: SqsEvent = serde_json::from_value(json!({"Records": [{
        "messageId": "m-1", "receiptHandle": "h-1", "body": "{}",
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs",
    }]}))
    .unwrap();
    let queue = SqsQueueOps {
        step: "test",
        client: app.aws.sqs.clone(),
        queue_url: app.resource("SynthesizeQueue").reference.clone(),
        dead_letter_queue_url: app.resource("SynthesizeDeadLetterQueue").reference.clone(),
    };

    // A unique violation: PostgreSQL's DETAIL reads "Key (subject)=(detail-canary-…) already
    // exists".
    let response = process_batch(event, &queue, |_: platform::worker::Message<Value>| {
        let db = db.clone();
        async move {
            let client = db.get().await.map_err(StepError::retryable)?;
            for _ in 0..2 {
                client
                    .execute(
                        "INSERT INTO users (id, subject, display_name) VALUES (gen_random_uuid(), $1, 'x')",
                        &[&canary],
                    )
                    .await
                    .map_err(StepError::retryable)?;
            }
            Ok(())
        }
    })
    .await;

    assert_eq!(response.batch_item_failures.len(), 1);
    let logs = captured_logs();
    assert!(logs.contains("23505"), "the SQLSTATE is logged");
    assert!(!logs.contains(canary), "the row value is not");
}

#[tokio::test]
async fn the_sweeper_prunes_expired_refresh_tokens_and_old_sent_outbox_rows() {
    let app = spawn_app().await;
    let signed_in = app.dev_sign_in("prune@example.com", "Prune").await;
    let db = app.state.db.get().await.unwrap();
    db.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 minute'",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO outbox (id, queue, body, created_at, sent_at) VALUES
            (gen_random_uuid(), 'render', '{}', now() - interval '9 days', now() - interval '8 days'),
            (gen_random_uuid(), 'render', '{}', now() - interval '2 days', now() - interval '1 day')",
        &[],
    )
    .await
    .unwrap();

    let report = app
        .saga(&[])
        .await
        .sweep(saga::sweeper::SweepSettings::default())
        .await
        .unwrap();

    assert_eq!(
        (report.pruned_refresh_tokens, report.pruned_outbox_rows),
        (1, 1)
    );
    assert_eq!(app.count("SELECT count(*) FROM refresh_tokens").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 1);
    let refresh = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": signed_in["refresh_token"]}),
        )
        .await;
    assert_eq!(refresh.status(), 401);
}

#[tokio::test]
async fn answers_sealed_with_a_key_that_is_gone_fail_the_persona_with_a_reason_at_once() {
    let app = spawn_app().await;
    let (token, _, _) = app.survey_with_answers("rotated@example.com", 3).await;
    // The workers hold only a newer answer key: the old one was removed too early.
    let new_key = "a2027:BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=";
    let _workers = app
        .start_workers(app.saga(&[("ANSWER_KEYS", new_key)]).await)
        .await;

    let failed = app
        .wait_for_state(&token, "failed", Duration::from_secs(30))
        .await;

    assert_eq!(
        failed["error"],
        json!({"code": "answer_key_unknown", "retryable": false})
    );
    assert_eq!(failed["steps"][0]["attempts"], 1, "not retried");
}

#[tokio::test]
async fn retrying_and_re_rendering_honour_idempotency_keys() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("idem-card@example.com").await;
    let render = || {
        app.http
            .post(app.url("/v1/personas/me/card"))
            .bearer_auth(&owner.token)
            .header("idempotency-key", "card-1")
            .json(&json!({"theme": "dark"}))
            .send()
    };

    let first = render().await.unwrap();
    assert_eq!(first.status(), 202);
    app.wait_for_state(&owner.token, "ready", Duration::from_secs(60))
        .await;
    let replay = render().await.unwrap();

    assert_eq!(replay.status(), 202);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        app.count("SELECT render_generation::bigint FROM personas")
            .await,
        2,
        "one re-render, not two"
    );

    let retry = |key: &'static str| {
        app.http
            .post(app.url("/v1/personas/me/retry"))
            .bearer_auth(&owner.token)
            .header("idempotency-key", key)
            .send()
    };
    let refused = retry("retry-1").await.unwrap();
    assert_eq!(refused.status(), 409, "a ready persona cannot be retried");
    let again = retry("retry-1").await.unwrap();
    assert_eq!(
        again.status(),
        409,
        "a refusal is not stored: the key runs again"
    );
}

#[tokio::test]
async fn the_progress_route_reads_personas_through_an_index_on_the_survey() {
    let app = spawn_app().await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM pg_indexes
             WHERE tablename = 'personas' AND indexdef LIKE '%(survey_id%'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn every_function_reads_its_own_secrets_from_secrets_manager_at_cold_start() {
    let app = spawn_app().await;
    let answer_keys = &app.resource("AnswerKeys").arn;
    // Ops rotate the answer key in Secrets Manager; the next cold start reads the new one.
    let rotated = "a2099:BgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgY=";
    app.aws
        .secrets
        .put_secret_value()
        .secret_id(answer_keys)
        .secret_string(json!({ "ANSWER_KEYS": rotated }).to_string())
        .send()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let saga = app.saga(&[]).await;
    let cold_start = started.elapsed();

    assert!(format!("{:?}", saga.synthesize.cipher).contains("a2099"));
    assert!(
        !app.overrides
            .keys()
            .any(|name| platform::secrets::secret_variables().any(|s| s == name)),
        "no secret is handed to a function any other way"
    );
    let arns = vec![
        app.resource("DatabaseSecretArn").arn.clone(),
        answer_keys.clone(),
    ];
    let fetch = std::time::Instant::now();
    let read = platform::secrets::fetch(&app.aws.secrets, &arns)
        .await
        .unwrap();
    eprintln!(
        "secrets: one BatchGetSecretValue of 2 secrets took {:.1} ms against the emulator; \
         three functions configured in {:.1} ms",
        fetch.elapsed().as_secs_f64() * 1000.0,
        cold_start.as_secs_f64() * 1000.0
    );
    assert_eq!(read["ANSWER_KEYS"], rotated);
    assert!(read.contains_key("DATABASE_URL"));
    assert!(!read.contains_key("JWT_SIGNING_KEYS"));
}

#[tokio::test]
async fn no_secret_prompt_or_answer_text_reaches_any_log_line() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let canary = "canary-words-5e1f7a";
    let owner = app.owner("canary-saga@example.com").await;
    let survey = app.survey(&owner).await;
    for friend in 0..3u8 {
        let response = app
            .submit(
                &app.client_from(60 + friend),
                &survey,
                json!({"answers": answers_with_words(&format!("{canary} {friend}"))}),
                Some(&format!("canary-{friend}")),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    app.wait_for_state(&owner.token, "ready", Duration::from_secs(60))
        .await;

    let prompt = chat::context::CHAT_RULES;
    let arns: Vec<String> = ["DatabaseSecretArn", "IdentityKeys", "AnswerKeys"]
        .into_iter()
        .map(|parameter| app.resource(parameter).arn.clone())
        .collect();
    let secrets = platform::secrets::fetch(&app.aws.secrets, &arns)
        .await
        .unwrap();
    let logs = captured_logs();
    assert!(!logs.contains(canary), "an answer reached the logs");
    assert!(
        !logs.contains(&prompt[..60]),
        "the system prompt reached the logs"
    );
    for (name, value) in &secrets {
        let material = value.split_once(':').map_or(value.as_str(), |(_, key)| key);
        assert!(!logs.contains(material), "{name} reached the logs");
    }
    assert!(logs.contains("secrets read"), "the fetch itself is logged");
}
