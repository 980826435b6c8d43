//! Builds the router every entry point serves: routes, fallback, and the middleware stack.

use std::sync::Arc;

use axum::{
    extract::DefaultBodyLimit,
    http::{header, HeaderName, HeaderValue, Method},
    middleware,
    response::{IntoResponse, Response},
    Extension, Router,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    health,
    openapi::{self, ApiDoc, OpenApiJson},
    request_context, ApiError, AppState,
};

/// Every route with its handler and its OpenAPI operation.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(openapi::serve))
}

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The application: the same value runs in Lambda and in the local stack.
pub fn router(state: AppState) -> Router {
    let (routes, document) = routes().split_for_parts();
    let document = document
        .to_json()
        .expect("the OpenAPI document always serializes");
    let max_body_bytes = state.config.max_body_bytes;
    let cors = cors(&state.config.allowed_origins);

    // Layers added later wrap the ones added earlier: the request context is outermost, so the
    // request id is known to everything inside, including the panic handler.
    routes
        .fallback(|| async { ApiError::not_found("There is no such route.") })
        .with_state(state)
        .layer(Extension(OpenApiJson(Arc::new(document))))
        .layer(middleware::map_response(
            request_context::standardize_bare_errors,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(|_panic| {
            // The panic hook has logged the panic with its location.
            ApiError::Unexpected(anyhow::anyhow!("a handler panicked")).into_response()
        }))
        .layer(cors)
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
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        ])
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
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
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
