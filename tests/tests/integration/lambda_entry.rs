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

/// The chat stream function's entry: a Function URL event through `lambda_http`'s request
/// conversion into the chat router, the body read as Lambda streams it.
async fn invoke_chat_stream(
    app: &integration_tests::TestApp,
    token: &str,
) -> (http::StatusCode, http::HeaderMap, String) {
    let text = std::fs::read_to_string(repo_path("events/chat/post-message-stream.json")).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["headers"]["authorization"] = Value::from(format!("Bearer {token}"));
    let request = lambda_http::request::from_str(&event.to_string()).expect("a Function URL event");
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    let chat = <api::chat::ChatApi as axum::extract::FromRef<api::AppState>>::from_ref(&app.state);

    let response = api::chat_router(chat, &app.config().web)
        .oneshot(request)
        .await
        .unwrap();

    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn a_function_url_request_streams_the_reply_as_server_sent_events() {
    let app = spawn_app().await;
    let owner = app
        .owner_with_persona(
            "function-url@example.com",
            domain::archetypes::Archetype::Genki,
        )
        .await;

    let (status, headers, body) = invoke_chat_stream(&app, &owner.token).await;

    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(
        headers["x-request-id"],
        "c0ffee00-1a2b-4c3d-9e8f-7a6b5c4d3e2f"
    );
    let events = integration_tests::server_sent_events(&body);
    assert_eq!(events.first().unwrap().0, "token");
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done");
    assert_eq!(done["message"]["content"], "Hi! How was your day?");
    assert_eq!(done["reply"]["source"], "llm");
}

#[tokio::test]
async fn a_function_url_request_without_a_valid_token_is_401_with_the_error_body() {
    let app = spawn_app().await;

    let (status, headers, body) = invoke_chat_stream(&app, "not-a-valid-access-token").await;

    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "invalid_token");
    assert_eq!(
        body["error"]["request_id"],
        "c0ffee00-1a2b-4c3d-9e8f-7a6b5c4d3e2f"
    );
}

#[tokio::test]
async fn the_http_api_route_answers_json_even_when_a_stream_is_asked_for() {
    let app = spawn_app().await;
    let owner = app
        .owner_with_persona(
            "gateway@example.com",
            domain::archetypes::Archetype::Kuudere,
        )
        .await;
    let request = http::Request::post("/v1/personas/me/messages")
        .header("authorization", format!("Bearer {}", owner.token))
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"content":"Hello"}"#))
        .unwrap();

    let response = api::router(app.state.clone())
        .oneshot(request)
        .await
        .unwrap();

    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "application/json");
}
