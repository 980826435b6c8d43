//! The persona lifecycle has one owner: the answer function (its database-side twin for the
//! third answer) makes exactly the version the Rust rule prepares, and the documented
//! transition table is the code's.

use domain::personas::{PersonaState, SynthesizeJob};
use integration_tests::{repo_path, spawn_app};
use personas::lifecycle::{self, Event};
use platform::outbox::{OutboxMessage, Queue};
use serde_json::{json, Value};
use uuid::Uuid;

/// The newest version's (id, state, state_version) and its newest outbox row's (queue, body).
async fn newest_version_and_message(
    app: &integration_tests::TestApp,
) -> ((Uuid, String, i32), (String, Value)) {
    let client = app.state.db.get().await.unwrap();
    let version = client
        .query_one(
            "SELECT id, state, state_version FROM personas ORDER BY version DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let message = client
        .query_one(
            "SELECT queue, body FROM outbox ORDER BY created_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    (
        (version.get(0), version.get(1), version.get(2)),
        (message.get(0), message.get(1)),
    )
}

#[tokio::test]
async fn the_answer_function_makes_the_version_the_rust_rule_prepares() {
    let app = spawn_app().await;
    let owner = app.owner("twin@example.com").await;
    let survey = app.survey(&owner).await;
    for friend in 0..3 {
        app.answer(&survey, friend).await;
    }

    let ((id, state, state_version), (queue, body)) = newest_version_and_message(&app).await;
    let born = lifecycle::next(PersonaState::AwaitingResponses, Event::ThresholdReached).unwrap();
    assert_eq!(state, born.as_str());
    assert_eq!(state_version, 1);
    assert_eq!(
        id.get_version_num(),
        4,
        "a random id: nothing public dates the third answer"
    );
    let expected = OutboxMessage::new(
        Queue::Synthesize,
        &SynthesizeJob {
            persona_id: id,
            generation: Some(1),
        },
    )
    .unwrap();
    assert_eq!(queue, expected.queue.name());
    assert_eq!(body, expected.body);

    // The Rust path to a version (the owner asks for a new one) makes the same birth.
    app.execute("UPDATE personas SET state = 'failed'", &[])
        .await;
    for friend in 3..6 {
        app.answer(&survey, friend).await;
    }
    let response = app
        .post_as(&owner, "/v1/personas/me/synthesize", json!({}))
        .await;
    assert_eq!(response.status(), 202);
    let ((new_id, new_state, new_state_version), (new_queue, new_body)) =
        newest_version_and_message(&app).await;
    assert_ne!(new_id, id);
    assert_eq!(new_id.get_version_num(), 4);
    assert_eq!(
        (new_state.as_str(), new_state_version, new_queue.as_str()),
        (state.as_str(), state_version, queue.as_str())
    );
    assert_eq!(new_body, json!({"persona_id": new_id, "generation": 1}));
    assert_eq!(
        lifecycle::next(PersonaState::AwaitingResponses, Event::Refreshed),
        Ok(born)
    );
}

#[test]
fn the_documented_transition_table_is_the_code_s() {
    let architecture = std::fs::read_to_string(repo_path("docs/architecture.md")).unwrap();
    let table = lifecycle::markdown_table();
    assert!(
        architecture.contains(&table),
        "docs/architecture.md must show the lifecycle table as the code has it:\n\n{table}"
    );
}
