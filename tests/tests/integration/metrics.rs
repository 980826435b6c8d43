//! CloudWatch metrics in the embedded metric format: a saga run, a chat reply and their API calls
//! emit EMF documents that parse, in the namespace, with bounded dimensions only. (One test: the
//! recorder is process-wide, and a flush takes everything recorded so far.)

use std::collections::BTreeSet;

use integration_tests::spawn_app;
use serde_json::Value;

#[tokio::test]
async fn a_saga_run_emits_embedded_metric_documents_that_parse() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("metrics@example.com").await;
    let exchange = app.chat(&owner, "What do you do on a rainy Sunday?").await;
    let source = exchange["reply"]["source"].as_str().unwrap().to_owned();

    let mut written = Vec::new();
    platform::metrics::flush_into(&mut written).unwrap();
    let documents: Vec<Value> = String::from_utf8(written)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is one JSON document"))
        .collect();

    let mut seen = BTreeSet::new();
    for document in &documents {
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ReMirAI");
        assert!(document["_aws"]["Timestamp"].as_u64().is_some());
        let dimensions: Vec<&str> = directive["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        for dimension in &dimensions {
            let value = document[dimension].as_str().unwrap();
            assert!(
                value.len() <= 24 && uuid::Uuid::parse_str(value).is_err(),
                "a bounded dimension value: {dimension}={value}"
            );
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(!document[name].is_null(), "{name} has a value");
            let mut labels: Vec<String> = dimensions
                .iter()
                .map(|d| format!("{d}={}", document[d].as_str().unwrap()))
                .collect();
            labels.sort();
            seen.insert(format!("{name} {}", labels.join(",")));
        }
    }
    for expected in [
        "step_duration_ms outcome=done,step=synthesize",
        "step_duration_ms outcome=done,step=render_card",
        "step_outcomes outcome=done,step=synthesize",
        "personas_synthesized by=rule_based",
        "api_responses status_class=2xx",
    ] {
        assert!(seen.contains(expected), "{expected} missing from {seen:#?}");
    }
    for expected in [
        format!("chat_replies source={source}"),
        format!("chat_reply_ms source={source}"),
    ] {
        assert!(
            seen.contains(&expected),
            "{expected} missing from {seen:#?}"
        );
    }
}
