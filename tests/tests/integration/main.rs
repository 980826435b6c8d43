//! Integration tests: one binary, so the test services start once per run.

mod auth_google;
mod auth_tokens;
mod chat;
mod database_tls;
mod docs;
mod guards;
mod http_foundation;
mod lambda_entry;
mod lifecycle;
mod llm;
mod log_privacy;
mod metrics;
mod migrations;
mod openapi;
mod privacy;
mod quests;
mod reports;
mod saga;
mod soak;
mod social;
mod surveys;
mod template;
mod traces;
mod worker_batches;
mod your_data;
