//! Platform pieces every Lambda and the local stack share: typed configuration, the clock, JSON
//! logs, the PostgreSQL pool and migrations, AWS clients, the outbox (the one way work is
//! queued), rate limits, cursors, and the SQS batch helper workers run on.

pub mod aws;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod cursor;
pub mod db;
pub mod env;
pub mod events;
pub mod metrics;
pub mod outbox;
pub mod ownership;
pub mod rate_limit;
pub mod schema;
pub mod secrets;
pub mod telemetry;
pub mod worker;

pub use config::FunctionConfig;
pub use env::ConfigError;
