//! The SQS batch helper under a local event source mapping, against real queues created from
//! the template: partial batch failures, dead-lettering of permanent failures, and SQS's own
//! redrive after `maxReceiveCount` receives.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_lambda_events::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::MessageAttributeValue;
use devstack::{
    poller::{Poller, SqsHandler},
    template::SqsEventSource,
};
use integration_tests::spawn_app;
use platform::worker::{process_batch, Message, SqsQueueOps, StepError, REQUEST_ID_ATTRIBUTE};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Job {
    kind: String,
}

struct Harness {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_url: String,
    poller: Poller,
    responses: Arc<Mutex<Vec<SqsBatchResponse>>>,
    attempts: Arc<Mutex<Vec<String>>>,
}

async fn harness() -> Harness {
    let app = spawn_app().await;
    let queue = app.resource("SynthesizeQueue").clone();
    let dead_letter = app.resource("SynthesizeDeadLetterQueue").clone();
    let ops = SqsQueueOps {
        step: "test",
        client: app.aws.sqs.clone(),
        queue_url: queue.reference.clone(),
        dead_letter_queue_url: dead_letter.reference.clone(),
    };
    let responses = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let handler: SqsHandler = {
        let responses = responses.clone();
        let attempts = attempts.clone();
        Arc::new(move |event| {
            let ops = ops.clone();
            let responses = responses.clone();
            let attempts = attempts.clone();
            Box::pin(async move {
                let response = process_batch(event, &ops, |message: Message<Job>| {
                    attempts.lock().unwrap().push(message.id.clone());
                    async move {
                        match message.body.kind.as_str() {
                            "ok" => Ok(()),
                            "retry" => Err(StepError::Retryable {
                                error: anyhow::anyhow!("the LLM is busy"),
                                after: Some(Duration::ZERO),
                            }),
                            "permanent" => Err(StepError::permanent("cannot_ever_work")),
                            _ => panic!("a bug in the step"),
                        }
                    }
                })
                .await;
                responses.lock().unwrap().push(response.clone());
                response
            })
        })
    };
    Harness {
        sqs: app.aws.sqs.clone(),
        poller: Poller {
            source: SqsEventSource {
                function: "TestWorker".into(),
                queue: "SynthesizeQueue".into(),
                batch_size: 10,
                report_batch_item_failures: true,
                maximum_concurrency: None,
                timeout_seconds: 60,
            },
            queue_url: queue.reference.clone(),
            queue_arn: queue.arn.clone(),
            handler,
        },
        queue_url: queue.reference,
        dead_letter_url: dead_letter.reference,
        responses,
        attempts,
    }
}

impl Harness {
    async fn send(&self, body: &str, request_id: &str) -> String {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(
                REQUEST_ID_ATTRIBUTE,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(request_id)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap()
            .message_id
            .unwrap()
    }

    /// Everything on `queue_url`, read without deleting (visible again at once).
    async fn peek(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        integration_tests::peek_queue(&self.sqs, queue_url).await
    }
}

fn attribute(message: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    message
        .message_attributes
        .as_ref()?
        .get(name)?
        .string_value
        .clone()
}

/// The (failure reason, request id) of each dead letter, sorted.
fn reasons(parked: &[aws_sdk_sqs::types::Message]) -> Vec<(String, String)> {
    let mut reasons: Vec<(String, String)> = parked
        .iter()
        .map(|m| {
            (
                attribute(m, "failure_reason").unwrap(),
                attribute(m, REQUEST_ID_ATTRIBUTE).unwrap(),
            )
        })
        .collect();
    reasons.sort();
    reasons
}

#[tokio::test]
async fn a_batch_reports_only_the_messages_that_can_succeed_later() {
    let h = harness().await;
    let ok = h.send(r#"{"kind":"ok"}"#, "req-ok").await;
    let retry = h.send(r#"{"kind":"retry"}"#, "req-retry").await;
    let permanent = h.send(r#"{"kind":"permanent"}"#, "req-permanent").await;
    let panics = h.send(r#"{"kind":"panic"}"#, "req-panic").await;
    let undecodable = h.send("not json at all", "req-undecodable").await;

    let received = h.poller.poll_once(&h.sqs).await.unwrap();

    assert_eq!(received, 5);
    let responses = h.responses.lock().unwrap().clone();
    let reported: HashSet<String> = responses[0]
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(reported, HashSet::from([retry.clone(), panics.clone()]));
    assert!(!reported.contains(""));

    // Permanent failures went to the dead-letter queue at once, with the reason and request id.
    assert_eq!(
        reasons(&h.peek(&h.dead_letter_url).await),
        [
            ("cannot_ever_work".to_owned(), "req-permanent".to_owned()),
            ("undecodable_body".to_owned(), "req-undecodable".to_owned()),
        ]
    );
    // The retryable one is back at once (its visibility was set to zero); the panicked one waits
    // out the visibility timeout; the successful and the parked ones are deleted.
    let remaining: HashSet<String> = h
        .peek(&h.queue_url)
        .await
        .into_iter()
        .filter_map(|m| m.message_id)
        .collect();
    assert_eq!(remaining, HashSet::from([retry]));
    let _ = (ok, permanent, undecodable);
}

#[tokio::test]
async fn a_message_that_keeps_failing_reaches_the_dead_letter_queue_after_five_receives() {
    let h = harness().await;
    let id = h.send(r#"{"kind":"retry"}"#, "req-stubborn").await;

    let mut polls = 0;
    while h.peek(&h.dead_letter_url).await.is_empty() {
        polls += 1;
        assert!(polls <= 10, "never dead-lettered");
        h.poller.poll_once(&h.sqs).await.unwrap();
    }

    let attempts = h.attempts.lock().unwrap().clone();
    assert_eq!(attempts, vec![id.clone(); 5], "maxReceiveCount is 5");
    let parked = h.peek(&h.dead_letter_url).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body.as_deref(), Some(r#"{"kind":"retry"}"#));
    assert!(h.peek(&h.queue_url).await.is_empty());
}

#[tokio::test]
async fn a_panicking_record_does_not_fail_the_others_in_its_batch() {
    let h = harness().await;
    let mut ok_ids = Vec::new();
    for _ in 0..4 {
        ok_ids.push(h.send(r#"{"kind":"ok"}"#, "req").await);
    }
    let panics = h.send(r#"{"kind":"panic"}"#, "req").await;

    h.poller.poll_once(&h.sqs).await.unwrap();

    let responses = h.responses.lock().unwrap().clone();
    let reported: Vec<String> = responses
        .iter()
        .flat_map(|r| {
            r.batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
        })
        .collect();
    assert_eq!(reported, [panics]);
    assert!(
        h.peek(&h.queue_url).await.is_empty(),
        "the panicked one waits out its visibility timeout"
    );
}

#[tokio::test]
async fn the_sample_sqs_events_run_through_the_worker_handlers() {
    let app = spawn_app().await;
    let saga = app.saga(&[]).await;
    let load = |name: &str| -> aws_lambda_events::sqs::SqsEvent {
        serde_json::from_str(&std::fs::read_to_string(integration_tests::repo_path(name)).unwrap())
            .unwrap()
    };

    // The samples name a persona this database does not have (as after its account was
    // erased): the message does nothing, is acknowledged, and nothing is re-created.
    let synthesize = saga
        .synthesize_batch(load("events/synthesize/job.json"))
        .await;
    let render = saga.render_batch(load("events/render_card/job.json")).await;

    assert!(synthesize.batch_item_failures.is_empty());
    assert!(render.batch_item_failures.is_empty());
    for dead_letters in ["SynthesizeDeadLetterQueue", "RenderDeadLetterQueue"] {
        assert!(
            app.queue_messages(dead_letters).await.is_empty(),
            "{dead_letters}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM personas").await, 0);
    assert!(
        !app.table_dump().await.contains("persona-status#"),
        "no status re-created"
    );
}

#[tokio::test]
async fn a_batch_that_outlives_the_function_timeout_fails_as_a_whole_like_lambda() {
    let h = harness().await;
    let mut poller = h.poller.clone();
    poller.source.timeout_seconds = 1;
    poller.handler = Arc::new(|_event| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            SqsBatchResponse::default()
        })
    });
    h.send(r#"{"kind":"ok"}"#, "req-slow").await;

    let started = std::time::Instant::now();
    poller.poll_once(&h.sqs).await.unwrap();

    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the poller gave up at the timeout: {:?}",
        started.elapsed()
    );
    let attributes = h
        .sqs
        .get_queue_attributes()
        .queue_url(&h.queue_url)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        attributes[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible],
        "1",
        "not deleted: it comes back after the visibility timeout"
    );
}

#[tokio::test]
async fn a_memory_job_for_an_unknown_owner_does_nothing_and_a_poison_one_stays_in_its_dead_letter_queue(
) {
    let app = spawn_app().await;
    let memory = app.chat_memory(&[]).await;
    let load = |name: &str| -> aws_lambda_events::sqs::SqsEvent {
        serde_json::from_str(&std::fs::read_to_string(integration_tests::repo_path(name)).unwrap())
            .unwrap()
    };

    // A job for an owner this database does not know (erased): done, nothing written; and a
    // body that is not a job: parked.
    let job = memory
        .handle_batch(load("events/chat_memory/job.json"))
        .await;
    let poison = memory
        .handle_batch(load("events/chat_memory/poison.json"))
        .await;
    let swept = app
        .saga(&[])
        .await
        .sweep(saga::sweeper::SweepSettings::default())
        .await
        .unwrap();

    assert!(job.batch_item_failures.is_empty());
    assert!(poison.batch_item_failures.is_empty());
    assert_eq!(
        swept.dead_lettered, 0,
        "the sweeper drains only the saga's dead letters"
    );
    assert_eq!(
        reasons(&app.queue_messages("SummarizeChatDeadLetterQueue").await),
        [("undecodable_body".to_owned(), "Vq1aBcDeIAMEpsn=".to_owned())]
    );
}
