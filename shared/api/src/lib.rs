//! The HTTP API: one axum router, served by `lambda_http` inside Lambda and by `axum::serve` in
//! the local stack, so both run the same routes, middleware and error mapping.

pub mod error;
pub mod health;
pub mod json;
pub mod openapi;
pub mod request_context;
mod router;
pub mod state;

pub use error::{ApiError, Problem};
pub use router::{openapi_document, router};
pub use state::AppState;
