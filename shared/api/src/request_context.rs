//! Per-request context: the request id, the request span, the access log line.
//!
//! Inside Lambda the id is API Gateway's request id (so it matches API Gateway's access logs);
//! locally a fresh UUID. It is returned as `x-request-id`, written into every log line of the
//! request through the span, put into error bodies, and carried into SQS messages.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::{header, HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use lambda_http::request::RequestContext;
use tracing::Instrument;

use crate::ApiError;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled by this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The request id of this request: API Gateway's inside Lambda, generated otherwise.
pub fn request_id_of(request: &Request) -> String {
    let from_gateway =
        request
            .extensions()
            .get::<RequestContext>()
            .and_then(|context| match context {
                RequestContext::ApiGatewayV2(context) => context.request_id.clone(),
                #[allow(unreachable_patterns)]
                _ => None,
            });
    from_gateway
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Outermost middleware: assigns the id, runs the request in its span, logs one access line
/// (method, matched route, status, latency: never the raw path, query, headers or address).
pub async fn middleware(request: Request, next: Next) -> Response {
    let request_id = request_id_of(&request);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        route = %route,
    );
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(request_id.clone(), next.run(request))
        .instrument(span.clone())
        .await;
    let latency = started.elapsed();
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = platform::metrics::millis(latency),
            "request finished"
        );
    });
    // Responses by status class (the 5xx rate alarm) and latency; one Lambda invocation is one
    // request, so the metrics are written now.
    let class = match response.status().as_u16() {
        500.. => "5xx",
        400..=499 => "4xx",
        300..=399 => "3xx",
        _ => "2xx",
    };
    platform::metrics::counter!("api_responses", "status_class" => class).increment(1);
    platform::metrics::histogram!("api_latency_ms", "status_class" => class)
        .record(platform::metrics::millis(latency));
    platform::metrics::invocation_done();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Responses axum produces on its own (405 from a method router) carry no body; give them the
/// standard error body, keeping `Allow`. Runs innermost, inside the request id's scope.
pub async fn standardize_bare_errors(response: Response) -> Response {
    let is_bare = response.headers().get(header::CONTENT_TYPE).is_none();
    if is_bare && response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allow = response.headers().get(header::ALLOW).cloned();
        return ApiError::MethodNotAllowed { allow }.into_response();
    }
    response
}
