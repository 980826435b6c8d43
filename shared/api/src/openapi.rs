//! The OpenAPI 3.1 document, generated from the handlers' annotations. Routes are registered
//! through `utoipa_axum::routes!`, which adds a handler to the router and its operation to the
//! document in one step, so the two cannot drift.

use std::sync::{Arc, OnceLock};

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Extension,
};
use utoipa::OpenApi;

use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Re:MirAI API",
        description = "Surveys answered anonymously by friends become an AI persona of their owner. \
            Every error has the body `{\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}`.",
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health and API description"),
        (name = "auth", description = "Sign-in, tokens and the profile"),
        (name = "surveys", description = "Surveys and anonymous answers"),
        (name = "personas", description = "The persona saga: synthesis, status, cards"),
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

/// The document, serialized on its first request rather than at every cold start (the JSON
/// is long and few clients ask for it).
#[derive(Clone)]
pub struct OpenApiJson(Arc<(utoipa::openapi::OpenApi, OnceLock<String>)>);

impl OpenApiJson {
    pub fn new(document: utoipa::openapi::OpenApi) -> Self {
        Self(Arc::new((document, OnceLock::new())))
    }

    fn json(&self) -> &str {
        self.0 .1.get_or_init(|| {
            self.0
                 .0
                .to_json()
                .expect("the OpenAPI document always serializes")
        })
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
pub async fn serve(Extension(document): Extension<OpenApiJson>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document.json().to_owned(),
    )
        .into_response()
}
