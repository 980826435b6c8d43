//! Integration tests: one binary, so the test services start once per run.

mod auth_google;
mod auth_tokens;
mod chat;
mod database_tls;
mod guards;
mod http_foundation;
mod lambda_entry;
mod llm;
mod log_privacy;
mod migrations;
mod openapi;
mod saga;
mod surveys;
mod template;
mod worker_batches;
