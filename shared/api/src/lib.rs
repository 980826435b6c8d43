//! The HTTP API: one axum router, served by `lambda_http` inside Lambda and by `axum::serve` in
//! the local stack, so both run the same routes, middleware and error mapping.

pub mod account;
pub mod auth;
pub mod chat;
pub mod client_address;
pub mod config;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod json;
pub mod openapi;
pub mod personas;
pub mod quests;
pub mod request_context;
mod router;
pub mod social;
pub mod state;
pub mod surveys;

pub use config::HttpApiConfig;
pub use error::{ApiError, Problem};
pub use router::{
    chat_router, local_router, openapi_document, router, with_middleware, LOCAL_MAX_IN_FLIGHT,
};
pub use state::AppState;
