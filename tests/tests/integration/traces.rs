//! X-Ray traces: a saga step run inside a sampled Lambda invocation sends one subsegment per
//! call (PostgreSQL, the LLM, DynamoDB, SQS, S3) to the X-Ray daemon's UDP port, every one in
//! the invocation's trace under its segment; an unsampled invocation sends nothing.

use std::{net::UdpSocket, time::Duration};

use integration_tests::{repo_path, spawn_app};
use platform::telemetry::xray;
use serde_json::{json, Value};
use tracing::Instrument;
use tracing_subscriber::prelude::*;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

const ROOT: &str = "1-6750a1b2-0123456789abcdef01234567";
const FUNCTION_SEGMENT: &str = "53995c3f42cd8ad8";

/// What the daemon received: one JSON document per datagram after the format header.
fn received(daemon: &UdpSocket) -> Vec<Value> {
    let mut documents = Vec::new();
    let mut buffer = vec![0u8; 65_536];
    while let Ok(n) = daemon.recv(&mut buffer) {
        let datagram = std::str::from_utf8(&buffer[..n]).expect("utf-8");
        let (header, body) = datagram.split_once('\n').expect("header line");
        assert_eq!(header, r#"{"format": "json", "version": 1}"#);
        documents.push(serde_json::from_str(body).expect("a JSON document"));
    }
    documents
}

/// An SQS event of one message with `body`, shaped like the sample events.
fn sqs_event(sample: &str, body: &str) -> aws_lambda_events::sqs::SqsEvent {
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path(sample)).unwrap()).unwrap();
    event["Records"][0]["body"] = json!(body);
    serde_json::from_value(event).unwrap()
}

fn invocation(sampled: bool) -> tracing::Span {
    let header = format!(
        "Root={ROOT};Parent={FUNCTION_SEGMENT};Sampled={}",
        u8::from(sampled)
    );
    tracing::info_span!(
        "Lambda runtime invoke",
        requestId = "8f0e8b5c-0000-4000-8000-000000000001",
        xrayTraceId = header.as_str()
    )
}

fn names(documents: &[Value]) -> Vec<&str> {
    let mut names: Vec<&str> = documents
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[tokio::test]
async fn a_sampled_invocation_sends_a_subsegment_for_every_call_under_its_segment() {
    let app = spawn_app().await;
    let llm = MockServer::start().await;
    let persona = json!({
        "name": "Sunny Spark", "archetype": "genki",
        "traits": ["Bright", "Loyal", "Funny"],
        "greeting": "Hey! Ready for today?",
    });
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": persona.to_string()}}],
        })))
        .mount(&llm)
        .await;
    let saga = app
        .saga(&[
            ("LLM_BASE_URL", &llm.uri()),
            ("LLM_MODELS", "model-a"),
            ("LLM_API_KEY", "secret-llm-key"),
        ])
        .await;
    let [persona_id] = app.seed_queued_personas(1).await[..] else {
        unreachable!()
    };

    let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let sink = xray::Sink::daemon(daemon.local_addr().unwrap()).unwrap();
    let _traced =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(xray::layer(sink)));

    // The synthesize step, then the render step it queued, each in a sampled invocation.
    let job = json!({"persona_id": persona_id, "generation": 1}).to_string();
    let synthesized = saga
        .synthesize_batch(sqs_event("events/synthesize/job.json", &job))
        .instrument(invocation(true))
        .await;
    assert!(synthesized.batch_item_failures.is_empty());
    let synthesis = received(&daemon);
    let queued = app.queue_messages("RenderQueue").await;
    let render_job = queued[0].body().unwrap();
    let rendered = saga
        .render_batch(sqs_event("events/render_card/job.json", render_job))
        .instrument(invocation(true))
        .await;
    assert!(rendered.batch_item_failures.is_empty());
    let render = received(&daemon);

    assert_eq!(
        names(&synthesis),
        ["DynamoDB", "LLM", "PostgreSQL", "SQS"],
        "{synthesis:#?}"
    );
    assert!(names(&render).contains(&"S3"), "{render:#?}");
    for document in synthesis.iter().chain(&render) {
        assert_eq!(document["type"], "subsegment");
        assert_eq!(document["trace_id"], ROOT, "{document}");
        assert_eq!(document["parent_id"], FUNCTION_SEGMENT, "{document}");
        assert_eq!(document["id"].as_str().unwrap().len(), 16);
        assert!(document["start_time"].as_f64() <= document["end_time"].as_f64());
    }
    let by_name = |documents: &[Value], name: &str| -> Vec<Value> {
        documents
            .iter()
            .filter(|d| d["name"] == name)
            .cloned()
            .collect()
    };
    let llm_call = &by_name(&synthesis, "LLM")[0];
    assert_eq!(llm_call["namespace"], "remote");
    assert_eq!(llm_call["http"]["request"]["method"], "POST");
    assert_eq!(
        llm_call["http"]["request"]["url"],
        format!("{}/chat/completions", llm.uri())
    );
    assert_eq!(llm_call["http"]["response"]["status"], 200);
    let statements: Vec<String> = by_name(&synthesis, "PostgreSQL")
        .iter()
        .map(|d| {
            assert_eq!(d["namespace"], "remote");
            assert_eq!(d["sql"]["database_type"], "PostgreSQL");
            d["sql"]["sanitized_query"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        statements.iter().any(|s| s.contains("personas")),
        "{statements:?}"
    );
    let operations = |documents: &[Value], service: &str| -> Vec<String> {
        by_name(documents, service)
            .iter()
            .map(|d| {
                assert_eq!(d["namespace"], "aws");
                d["aws"]["operation"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert!(operations(&synthesis, "DynamoDB").contains(&"UpdateItem".to_owned()));
    assert!(operations(&synthesis, "SQS")
        .iter()
        .any(|op| op.starts_with("SendMessage")));
    assert_eq!(
        operations(&render, "S3"),
        ["PutObject", "PutObject", "PutObject"],
        "three cards"
    );

    // Nothing secret or personal rides along: no key, no answer, no persona text.
    let all = serde_json::to_string(&[&synthesis, &render]).unwrap();
    for secret in ["secret-llm-key", "Sunny Spark", "Bearer"] {
        assert!(!all.contains(secret), "{secret} in a trace document");
    }

    // An invocation X-Ray did not sample sends nothing.
    let status = saga
        .render_batch(sqs_event("events/render_card/job.json", render_job))
        .instrument(invocation(false))
        .await;
    assert!(status.batch_item_failures.is_empty());
    assert_eq!(received(&daemon), Vec::<Value>::new());
}
