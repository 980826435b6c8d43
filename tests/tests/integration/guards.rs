//! Rate limits and idempotency keys, against DynamoDB in the emulator.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use api::{
    idempotency::{IdempotencyKey, Replayable},
    ApiError, AppState, Problem,
};
use axum::{extract::State, routing::post, Router};
use integration_tests::{spawn_app, TestApp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Limits count per fixed minute; starting right before a boundary would split the burst.
async fn wait_for_a_fresh_window() {
    let into_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if into_minute >= 55 {
        tokio::time::sleep(Duration::from_secs(61 - into_minute)).await;
    }
}

#[tokio::test]
async fn auth_routes_answer_429_past_ten_a_minute_per_address() {
    let app = spawn_app().await;
    wait_for_a_fresh_window().await;
    let client = app.client_from(201);
    let neighbour = app.client_from(202);

    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response = client
            .post(app.url("/v1/auth/refresh"))
            .json(&json!({"refresh_token": "not-a-token"}))
            .send()
            .await
            .unwrap();
        statuses.push((
            response.status().as_u16(),
            response.headers().get("retry-after").cloned(),
        ));
    }
    let neighbour_status = neighbour
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": "not-a-token"}))
        .send()
        .await
        .unwrap()
        .status();

    let (under, over) = statuses.split_at(10);
    assert!(under.iter().all(|(status, _)| *status == 401), "{under:?}");
    assert!(over.iter().all(|(status, _)| *status == 429), "{over:?}");
    let retry_after: u64 = over[0]
        .1
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(neighbour_status, 401, "another address has its own budget");
}

#[tokio::test]
async fn a_rate_limited_response_has_the_standard_body_and_no_address_is_stored() {
    let app = spawn_app().await;
    wait_for_a_fresh_window().await;
    let client = app.client_from(203);
    let mut last = None;
    for _ in 0..11 {
        last = Some(
            client
                .post(app.url("/v1/auth/logout"))
                .json(&json!({"refresh_token": "x"}))
                .send()
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status(), 429);
    let body: Value = last.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    let table = app.table_dump().await;
    assert!(table.contains("rate#"));
    assert!(!table.contains("127.0.0.203"));
}

// --- idempotency, on a route that counts its effects --------------------------------------

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NewThing {
    name: String,
    #[serde(default)]
    delay_ms: u64,
}

#[derive(Clone, Default)]
struct Effects {
    count: Arc<AtomicUsize>,
    fail_next: Arc<AtomicBool>,
    panic_next: Arc<AtomicBool>,
}

fn things_router(state: AppState, effects: Effects) -> Router {
    let handler = move |State(state): State<AppState>,
                        key: IdempotencyKey,
                        api::json::ApiJson(body): api::json::ApiJson<NewThing>| {
        let effects = effects.clone();
        async move {
            key.run(
                &state.idempotency,
                uuid::Uuid::nil(),
                "things.create",
                &body,
                || async {
                    tokio::time::sleep(Duration::from_millis(body.delay_ms)).await;
                    if effects.panic_next.swap(false, Ordering::SeqCst) {
                        panic!("the function crashed mid-request");
                    }
                    if effects.fail_next.swap(false, Ordering::SeqCst) {
                        return Err(ApiError::Unprocessable(Problem::new(
                            "flaky",
                            "failed once",
                        )));
                    }
                    let n = effects.count.fetch_add(1, Ordering::SeqCst) + 1;
                    Replayable::created(
                        json!({"id": n, "name": body.name}),
                        Some(format!("/things/{n}")),
                    )
                },
            )
            .await
        }
    };
    let config = state.config.clone();
    api::with_middleware(
        Router::new()
            .route("/things", post(handler))
            .with_state(state),
        &config.web,
    )
}

struct Things {
    /// Owns the database and resources the router uses.
    _app: TestApp,
    router: Router,
    effects: Effects,
}

async fn things() -> Things {
    let app = spawn_app().await;
    let effects = Effects::default();
    let router = things_router(app.state.clone(), effects.clone());
    Things {
        _app: app,
        router,
        effects,
    }
}

impl Things {
    /// POSTs through the router, as the Lambda handler would, with the invocation's deadline.
    async fn post(
        &self,
        key: Option<&str>,
        body: Value,
        deadline_ms: Option<u64>,
    ) -> (u16, axum::http::HeaderMap, Value) {
        let mut request =
            axum::http::Request::post("/things").header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let mut request = request
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        if let Some(deadline) = deadline_ms {
            let mut context = lambda_http::Context::default();
            context.deadline = deadline;
            request.extensions_mut().insert(context);
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status.as_u16(),
            parts.headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn effects(&self) -> usize {
        self.effects.count.load(Ordering::SeqCst)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn a_repeated_key_replays_the_stored_status_body_and_location() {
    let t = things().await;

    let (first_status, first_headers, first) =
        t.post(Some("key-1"), json!({"name": "a"}), None).await;
    let (second_status, second_headers, second) =
        t.post(Some("key-1"), json!({"name": "a"}), None).await;

    assert_eq!((first_status, second_status), (201, 201));
    assert_eq!(first, second);
    assert_eq!(first_headers["location"], second_headers["location"]);
    assert_eq!(second_headers["idempotent-replayed"], "true");
    assert_eq!(t.effects(), 1);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422() {
    let t = things().await;
    t.post(Some("key-2"), json!({"name": "a"}), None).await;

    let (status, _, body) = t.post(Some("key-2"), json!({"name": "b"}), None).await;

    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(t.effects(), 1);
}

#[tokio::test]
async fn a_duplicate_while_the_first_is_in_progress_is_409() {
    let t = things().await;

    let slow = t.post(Some("key-3"), json!({"name": "a", "delay_ms": 600}), None);
    let duplicate = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        t.post(Some("key-3"), json!({"name": "a", "delay_ms": 600}), None)
            .await
    };
    let ((first, _, _), (second, _, body)) = tokio::join!(slow, duplicate);

    assert_eq!(first, 201);
    assert_eq!(second, 409);
    assert_eq!(body["error"]["code"], "request_in_progress");
    assert_eq!(t.effects(), 1);
}

#[tokio::test]
async fn a_failed_request_releases_its_key_so_a_retry_runs() {
    let t = things().await;
    t.effects.fail_next.store(true, Ordering::SeqCst);

    let (failed, _, _) = t.post(Some("key-4"), json!({"name": "a"}), None).await;
    let (retried, headers, _) = t.post(Some("key-4"), json!({"name": "a"}), None).await;

    assert_eq!(failed, 422);
    assert_eq!(retried, 201);
    assert!(!headers.contains_key("idempotent-replayed"));
    assert_eq!(t.effects(), 1);
}

#[tokio::test]
async fn a_lock_left_by_a_crash_expires_with_the_invocation_and_a_retry_proceeds() {
    let t = things().await;
    t.effects.panic_next.store(true, Ordering::SeqCst);
    let deadline = now_ms() + 700;

    let (crashed, _, _) = t
        .post(Some("key-5"), json!({"name": "a"}), Some(deadline))
        .await;
    let (too_soon, _, _) = t
        .post(Some("key-5"), json!({"name": "a"}), Some(now_ms() + 10_000))
        .await;
    tokio::time::sleep(Duration::from_millis(
        deadline.saturating_sub(now_ms()) + 100,
    ))
    .await;
    let (after_expiry, _, _) = t
        .post(Some("key-5"), json!({"name": "a"}), Some(now_ms() + 10_000))
        .await;

    assert_eq!(crashed, 500);
    assert_eq!(too_soon, 409);
    assert_eq!(after_expiry, 201);
    assert_eq!(t.effects(), 1);
}

#[tokio::test]
async fn without_a_key_every_request_takes_effect() {
    let t = things().await;

    t.post(None, json!({"name": "a"}), None).await;
    t.post(None, json!({"name": "a"}), None).await;

    assert_eq!(t.effects(), 2);
}

#[tokio::test]
async fn a_malformed_key_is_400() {
    let t = things().await;

    let (status, _, body) = t
        .post(Some(&"k".repeat(300)), json!({"name": "a"}), None)
        .await;

    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_idempotency_key");
}

#[tokio::test]
async fn a_hundred_parallel_identical_posts_with_one_key_have_exactly_one_effect() {
    let t = things().await;

    let outcomes = futures_util::future::join_all(
        (0..100).map(|_| t.post(Some("key-100"), json!({"name": "a", "delay_ms": 50}), None)),
    )
    .await;

    assert_eq!(t.effects(), 1);
    let created: Vec<&Value> = outcomes
        .iter()
        .filter(|(s, _, _)| *s == 201)
        .map(|(_, _, b)| b)
        .collect();
    assert!(!created.is_empty());
    assert!(created
        .iter()
        .all(|body| **body == json!({"id": 1, "name": "a"})));
    assert!(outcomes.iter().all(|(s, _, _)| *s == 201 || *s == 409));
}
