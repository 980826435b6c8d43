//! The OpenAPI 3.1 document, generated from the handlers' annotations. Routes are registered
//! through `utoipa_axum::routes!`, which adds a handler to the router and its operation to the
//! document in one step, so the two cannot drift.

use std::sync::{Arc, OnceLock};
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Extension,
};
use utoipa::{
    openapi::{
        path::{Parameter, ParameterBuilder, ParameterIn},
        schema::{ObjectBuilder, Type},
        Required,
    },
    OpenApi,
};

use anyhow::Context;

use crate::error::{ApiError, ErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Re:MirAI API",
        description = "Surveys answered anonymously by friends become an AI persona of their owner. \
            Every error has the body `{\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}`; \
            every response carries `x-request-id`. JSON bodies must be sent with \
            `Content-Type: application/json` (else 415) and at most `MAX_BODY_BYTES` (64 KiB, else 413); \
            unknown JSON fields and unknown query parameters are refused (400). \
            Any route may answer 500 `internal_error` (a generic body; quote its `request_id`).",
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health and API description"),
        (name = "auth", description = "Sign-in, tokens and the profile"),
        (name = "surveys", description = "Surveys and anonymous answers"),
        (name = "personas", description = "The persona saga: synthesis, status, cards"),
        (name = "chat", description = "Chat with the persona, streamed or not, and its history"),
        (name = "quests", description = "Quests, the daily check-in and the crystal ledger"),
        (name = "social", description = "Public personas, the share page and card, shares, compatibility"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme protected operations refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Adds what every operation shares and no handler annotation says: the 500 any route may answer.
pub fn complete(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let unexpected = ResponseBuilder::new()
        .description("Unexpected error: a generic body; the cause is logged under its request id")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation
                .responses
                .responses
                .entry("500".to_owned())
                .or_insert_with(|| unexpected.clone().into());
        }
    }
}

/// A string of at most `max_chars` characters (Unicode code points, as the server counts them)
/// matching `pattern`.
pub(crate) fn text(max_chars: usize, pattern: String) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max_chars))
        .pattern(Some(pattern))
}

/// An optional request header of 1 to `max_chars` characters matching `pattern`.
pub(crate) fn optional_header(
    name: &str,
    max_chars: usize,
    pattern: &str,
    description: &str,
) -> Parameter {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(pattern));
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// A string that is one of `names`.
pub(crate) fn names(names: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
}

/// The document, serialized on its first request rather than at every cold start (the JSON
/// is long and few clients ask for it).
#[derive(Clone)]
pub struct OpenApiJson(Arc<(utoipa::openapi::OpenApi, OnceLock<axum::body::Bytes>)>);

impl OpenApiJson {
    pub fn new(document: utoipa::openapi::OpenApi) -> Self {
        Self(Arc::new((document, OnceLock::new())))
    }

    /// The JSON, shared by every response (cloning `Bytes` copies no text).
    fn json(&self) -> anyhow::Result<axum::body::Bytes> {
        let (document, json) = &*self.0;
        if let Some(json) = json.get() {
            return Ok(json.clone());
        }
        let serialized = document.to_json()?;
        Ok(json.get_or_init(|| serialized.into()).clone())
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
pub async fn serve(Extension(document): Extension<OpenApiJson>) -> Result<Response, ApiError> {
    let json = document
        .json()
        .context("serializing the OpenAPI document")?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response())
}

/// The document's own route.
pub fn router() -> OpenApiRouter<crate::AppState> {
    OpenApiRouter::new().routes(routes!(serve))
}
