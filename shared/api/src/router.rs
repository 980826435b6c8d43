//! Builds the router every entry point serves: routes, fallback, and the middleware stack.

use axum::{
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    http::{header, HeaderName, HeaderValue, Method},
    middleware,
    response::{IntoResponse, Response},
    Extension, Router,
};
use tower::{limit::GlobalConcurrencyLimitLayer, load_shed::LoadShedLayer};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    account, auth,
    chat::{self, ChatApi},
    health,
    openapi::{self, ApiDoc, OpenApiJson},
    personas, quests, request_context, social, surveys, ApiError, AppState,
};

/// Where the router runs; decides whether the dev sign-in route exists and whether the router
/// sheds load itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deployment {
    Lambda,
    Local { max_in_flight: usize },
}

/// Requests the local stack serves at once by default (`LOCAL_MAX_IN_FLIGHT`).
///
/// In AWS each Lambda instance serves one request and API Gateway's stage throttle
/// (`ThrottlingBurstLimit`/`ThrottlingRateLimit`) answers 429 beyond what the deployment is sized
/// for. The local stack serves every route from one process, so it sheds instead: past this many
/// requests in flight a request is answered at once with 429 `rate_limited` and `Retry-After: 1`
/// rather than queued behind the others (on 2 cores, ~4,500 requests/s: 256 in flight is ~60 ms
/// of queue). `bench load` measures it at 1,500 connections.
pub const LOCAL_MAX_IN_FLIGHT: usize = 256;

/// Every route with its handler and its OpenAPI operation: one router per feature module,
/// merged here.
fn routes(deployment: Deployment) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(openapi::router())
        .merge(auth::router())
        .merge(account::router())
        .merge(surveys::router())
        .merge(personas::router())
        .merge(quests::router())
        .merge(social::router())
        .routes(routes!(chat::send_message, chat::history));
    match deployment {
        Deployment::Lambda => routes,
        Deployment::Local { .. } => routes.merge(auth::local_router()),
    }
}

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    split(routes(Deployment::Lambda)).1
}

/// The router and its finished document.
fn split(routes: OpenApiRouter<AppState>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut document) = routes.split_for_parts();
    openapi::complete(&mut document);
    (routes, document)
}

/// The application as deployed: what the HTTP Lambda serves.
pub fn router(state: AppState) -> Router {
    build(state, Deployment::Lambda)
}

/// The application plus the local-only dev sign-in, for the local stack. Refuses to build inside
/// Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set there), so the route can never be deployed.
pub fn local_router(
    state: AppState,
    environment: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Router> {
    if environment("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        anyhow::bail!("the local router (with dev sign-in) cannot run inside AWS Lambda");
    }
    let max_in_flight = platform::env::read(&environment, |env| {
        let limit = env.optional("LOCAL_MAX_IN_FLIGHT", LOCAL_MAX_IN_FLIGHT);
        if limit == 0 {
            env.problem("LOCAL_MAX_IN_FLIGHT", "must be at least 1");
        }
        limit
    })?;
    Ok(build(state, Deployment::Local { max_in_flight }))
}

fn build(state: AppState, deployment: Deployment) -> Router {
    let (routes, document) = split(routes(deployment));
    let config = state.config.clone();
    let mut routes = routes
        .with_state(state)
        .layer(Extension(OpenApiJson::new(document)));
    // API Gateway's HTTP API buffers responses, so in Lambda the chat route answers JSON; the
    // chat stream function ([`chat_router`]) streams it there.
    if let Deployment::Local { max_in_flight } = deployment {
        // One count across every route (not the 404 fallback for unknown paths, which does no
        // work), inside the middleware stack (the 429 carries the request id and the standard
        // headers).
        routes = routes.layer(Extension(chat::Streaming)).layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(shed))
                .layer(LoadShedLayer::new())
                .layer(GlobalConcurrencyLimitLayer::new(max_in_flight)),
        );
    }
    with_middleware(routes, &config.web)
}

/// The answer to a request shed while [`LOCAL_MAX_IN_FLIGHT`] others are being served.
async fn shed(_overloaded: tower::BoxError) -> ApiError {
    ApiError::TooManyRequests {
        retry_after_secs: 1,
    }
}

/// The chat stream function's application: the chat routes alone, streaming, behind a Function
/// URL in `RESPONSE_STREAM` mode, with the same middleware as every route.
pub fn chat_router(api: ChatApi, web: &platform::config::WebConfig) -> Router {
    let (routes, _) = OpenApiRouter::new()
        .routes(routes!(chat::send_message, chat::history))
        .split_for_parts();
    let routes = routes.with_state(api).layer(Extension(chat::Streaming));
    with_middleware(routes, web)
}

/// The fallback and the middleware stack every route runs behind.
pub fn with_middleware(routes: Router, config: &platform::config::WebConfig) -> Router {
    layered(routes, config.max_body_bytes, &config.allowed_origins)
}

fn layered(routes: Router, max_body_bytes: usize, allowed_origins: &[String]) -> Router {
    // Layers added later wrap the ones added earlier: the request context is outermost, so the
    // request id is known to everything inside, including the panic handler.
    routes
        .fallback(|| async { ApiError::not_found("There is no such route.") })
        .layer(middleware::map_response(
            request_context::standardize_bare_errors,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(|_panic| {
            // The panic hook has logged the panic with its location.
            ApiError::Unexpected(anyhow::anyhow!("a handler panicked")).into_response()
        }))
        .layer(cors(allowed_origins))
        .layer(middleware::map_response(security_headers))
        .layer(middleware::from_fn(request_context::middleware))
}

fn cors(allowed_origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = allowed_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-fingerprint"),
        ])
        .expose_headers([
            request_context::REQUEST_ID_HEADER,
            header::LOCATION,
            header::RETRY_AFTER,
            header::ETAG,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Headers every API response carries unless a handler set its own.
async fn security_headers(mut response: Response) -> Response {
    const HEADERS: [(&str, &str); 6] = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "strict-transport-security",
            "max-age=63072000; includeSubDomains",
        ),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("cache-control", "no-store"),
    ];
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers
            .entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        http::{Request, StatusCode},
        routing::{get, post},
    };
    use serde::Deserialize;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::json::ApiJson;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Greeting {
        name: String,
    }

    fn app() -> Router {
        let routes = Router::new()
            .route(
                "/echo",
                post(|ApiJson(greeting): ApiJson<Greeting>| async move {
                    ApiJson(serde_json::json!({ "hello": greeting.name }))
                }),
            )
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("internal detail: password=hunter2");
                    }
                    "unreachable"
                }),
            );
        layered(routes, 64, &[])
    }

    async fn send(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = app().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn post_json(body: &'static str, content_type: Option<&str>) -> Request<Body> {
        let mut request = Request::post("/echo");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(Body::from(body)).unwrap()
    }

    fn assert_standard_error(headers: &axum::http::HeaderMap, body: &Value, code: &str) {
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(
            body["error"]["request_id"].as_str().unwrap(),
            headers["x-request-id"].to_str().unwrap()
        );
    }

    #[tokio::test]
    async fn a_valid_body_reaches_the_handler() {
        let (status, _, body) =
            send(post_json(r#"{"name":"Mira"}"#, Some("application/json"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["hello"], "Mira");
    }

    #[tokio::test]
    async fn malformed_json_is_400() {
        let (status, headers, body) =
            send(post_json(r#"{"name":"#, Some("application/json"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_standard_error(&headers, &body, "malformed_json");
    }

    #[tokio::test]
    async fn an_unknown_field_is_400_and_named() {
        let (status, headers, body) = send(post_json(
            r#"{"name":"Mira","admin":true}"#,
            Some("application/json"),
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_standard_error(&headers, &body, "invalid_body");
        assert!(body["error"]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("admin"));
    }

    #[tokio::test]
    async fn a_wrong_type_is_400() {
        let (status, headers, body) =
            send(post_json(r#"{"name":7}"#, Some("application/json"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_standard_error(&headers, &body, "invalid_body");
    }

    #[tokio::test]
    async fn a_missing_or_wrong_content_type_is_415() {
        for content_type in [None, Some("text/plain")] {
            let (status, headers, body) = send(post_json(r#"{"name":"Mira"}"#, content_type)).await;
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            assert_standard_error(&headers, &body, "unsupported_media_type");
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413() {
        let big: &'static str =
            Box::leak(format!(r#"{{"name":"{}"}}"#, "x".repeat(100)).into_boxed_str());
        let (status, headers, body) = send(post_json(big, Some("application/json"))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_standard_error(&headers, &body, "payload_too_large");
    }

    #[tokio::test]
    async fn a_panic_is_an_opaque_500() {
        let (status, headers, body) =
            send(Request::get("/panic").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_standard_error(&headers, &body, "internal_error");
        assert!(!body.to_string().contains("hunter2"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }

    #[tokio::test]
    async fn the_document_of_the_real_routes_is_openapi_3_1() {
        let document = serde_json::to_value(openapi_document()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
    }
}
