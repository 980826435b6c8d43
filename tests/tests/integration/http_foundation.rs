//! The HTTP foundation through the local router on a real socket.

use integration_tests::spawn_app;
use serde_json::Value;

fn assert_error_body(body: &Value, code: &str, request_id: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["error"]["request_id"], request_id, "{body}");
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("every response carries x-request-id")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn health_answers_ok_with_request_id_and_security_headers() {
    let app = spawn_app().await;

    let response = app.get("/v1/health").await;

    assert_eq!(response.status(), 200);
    assert!(!request_id(&response).is_empty());
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.contains_key("strict-transport-security"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "status": "ok" }));
}

#[tokio::test]
async fn every_response_gets_its_own_request_id() {
    let app = spawn_app().await;

    let first = request_id(&app.get("/v1/health").await);
    let second = request_id(&app.get("/v1/health").await);

    assert_ne!(first, second);
}

#[tokio::test]
async fn readiness_reports_all_four_dependencies_ok() {
    let app = spawn_app().await;

    let response = app.get("/v1/health/ready").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "status": "ready",
            "checks": { "postgres": "ok", "schema": "ok", "dynamodb": "ok", "s3": "ok", "sqs": "ok" }
        })
    );
}

#[tokio::test]
async fn readiness_names_the_failed_dependency_with_503() {
    let app = spawn_app().await;
    app.aws
        .s3
        .delete_bucket()
        .bucket(&app.config().cards_bucket)
        .send()
        .await
        .unwrap();

    let response = app.get("/v1/health/ready").await;

    assert_eq!(response.status(), 503);
    let id = request_id(&response);
    let body: Value = response.json().await.unwrap();
    assert_error_body(&body, "not_ready", &id);
    assert_eq!(
        body["error"]["details"]["checks"],
        serde_json::json!({ "postgres": "ok", "schema": "ok", "dynamodb": "ok", "s3": "unavailable", "sqs": "ok" })
    );
}

#[tokio::test]
async fn readiness_is_not_ready_on_a_schema_behind_the_release() {
    let app = spawn_app().await;
    let latest = platform::schema::latest_version();
    app.execute(
        "DELETE FROM refinery_schema_history WHERE version = $1",
        &[&latest],
    )
    .await;

    let response = app.get("/v1/health/ready").await;

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"]["checks"]["schema"], "unavailable");
    assert_eq!(body["error"]["details"]["checks"]["postgres"], "ok");
}

#[tokio::test]
async fn readiness_reports_an_unreachable_database() {
    let app = integration_tests::spawn_app_with(integration_tests::TestAppOptions {
        overrides: [(
            "DATABASE_URL".to_owned(),
            // Nothing listens on port 1.
            "postgres://nobody@127.0.0.1:1/none".to_owned(),
        )]
        .into(),
        ..Default::default()
    })
    .await;

    let response = app.get("/v1/health/ready").await;

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["details"]["checks"]["postgres"],
        "unavailable"
    );
    assert_eq!(body["error"]["details"]["checks"]["sqs"], "ok");
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1:1"),
        "a 503 body never carries internals: {text}"
    );
}

#[tokio::test]
async fn an_unknown_route_is_404_with_the_standard_body() {
    let app = spawn_app().await;

    let response = app.get("/v1/no-such-route").await;

    assert_eq!(response.status(), 404);
    let id = request_id(&response);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_error_body(&body, "not_found", &id);
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow_and_the_standard_body() {
    let app = spawn_app().await;

    let response = app.http.delete(app.url("/v1/health")).send().await.unwrap();

    assert_eq!(response.status(), 405);
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let id = request_id(&response);
    let body: Value = response.json().await.unwrap();
    assert_error_body(&body, "method_not_allowed", &id);
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/v1/health"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };

    // The template's default AllowedOrigins parameter.
    let allowed = preflight("http://localhost:5173").await.unwrap();
    let denied = preflight("https://evil.example").await.unwrap();

    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert!(allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn the_access_log_line_carries_the_request_id_and_route_but_not_the_raw_path() {
    let app = spawn_app().await;

    let response = app.get("/v1/health?token=secret-in-query").await;

    let id = request_id(&response);
    let logs = integration_tests::captured_logs();
    let line = logs
        .lines()
        .find(|line| line.contains(&id))
        .expect("a log line with the request id");
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["message"], "request finished");
    assert_eq!(line["status"], 200);
    assert_eq!(line["spans"][0]["route"], "/v1/health");
    assert!(!logs.contains("secret-in-query"));
}

/// The local stack serves every route from one process; past `LOCAL_MAX_IN_FLIGHT` requests in
/// flight it answers 429 at once (in AWS, API Gateway's throttle does).
#[tokio::test]
async fn the_local_stack_sheds_requests_beyond_its_in_flight_limit_with_429() {
    use tokio::io::AsyncWriteExt;

    let app = integration_tests::spawn_app_with(integration_tests::TestAppOptions {
        router: Some(|state| {
            api::local_router(state, |name| {
                (name == "LOCAL_MAX_IN_FLIGHT").then(|| "1".to_owned())
            })
            .expect("building the local router")
        }),
        ..Default::default()
    })
    .await;
    // A request whose body never finishes arriving holds the one place.
    let mut held = tokio::net::TcpStream::connect(app.address).await.unwrap();
    held.write_all(
        b"POST /v1/auth/dev HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut shed = None;
    for _ in 0..100 {
        let response = app.get("/v1/health").await;
        if response.status() == 429 {
            shed = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let shed = shed.expect("a second request while the first is in flight is shed");
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(shed.headers()["x-content-type-options"], "nosniff");
    let id = request_id(&shed);
    let body: Value = shed.json().await.unwrap();
    assert_error_body(&body, "rate_limited", &id);

    // Once the held request ends, the place is free again.
    drop(held);
    let mut status = 0;
    for _ in 0..100 {
        status = app.get("/v1/health").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_local_router_refuses_a_bad_in_flight_limit() {
    let app = spawn_app().await;
    for bad in ["0", "-3", "many"] {
        let outcome = api::local_router(app.state.clone(), |name| {
            (name == "LOCAL_MAX_IN_FLIGHT").then(|| bad.to_owned())
        });
        let error = outcome.expect_err("a bad limit is refused");
        assert!(error.to_string().contains("LOCAL_MAX_IN_FLIGHT"), "{error}");
    }
}
