//! The HTTP function's real entry point: API Gateway HTTP API events from `events/http_api/`
//! through `lambda_http`'s request conversion into the router.

use integration_tests::{repo_path, spawn_app};
use serde_json::Value;
use tower::ServiceExt;

async fn invoke(event_file: &str) -> (http::StatusCode, http::HeaderMap, Value, Value) {
    let app = spawn_app().await;
    let text =
        std::fs::read_to_string(repo_path(&format!("events/http_api/{event_file}"))).unwrap();
    let event: Value = serde_json::from_str(&text).unwrap();
    let request = lambda_http::request::from_str(&text).expect("a valid API Gateway event");
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));

    let response = api::router(app.state.clone())
        .oneshot(request)
        .await
        .unwrap();

    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, body, event)
}

#[tokio::test]
async fn a_gateway_request_is_answered_with_the_gateway_request_id() {
    let (status, headers, body, event) = invoke("get-health.json").await;

    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(
        headers["x-request-id"].to_str().unwrap(),
        event["requestContext"]["requestId"].as_str().unwrap()
    );
}

#[tokio::test]
async fn a_gateway_request_for_an_unknown_route_gets_the_error_body_with_the_gateway_id() {
    let (status, _, body, event) = invoke("get-unknown-route.json").await;

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        body["error"]["request_id"],
        event["requestContext"]["requestId"]
    );
}

#[tokio::test]
async fn a_gateway_request_with_a_wrong_method_gets_405() {
    let (status, headers, body, _) = invoke("delete-health.json").await;

    assert_eq!(status, 405);
    assert!(headers.contains_key("allow"));
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn the_openapi_document_is_served_through_the_gateway() {
    let (status, headers, body, _) = invoke("get-openapi.json").await;

    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["openapi"], "3.1.0");
}

#[tokio::test]
async fn the_dev_sign_in_route_is_not_routed_inside_lambda() {
    let (status, _, body, _) = invoke("post-auth-dev.json").await;

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}
