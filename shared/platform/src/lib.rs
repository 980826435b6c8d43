//! Platform pieces every Lambda and the local stack share: typed configuration, JSON logs,
//! the PostgreSQL pool and migrations, AWS clients, and the SQS batch helper workers run on.

pub mod aws;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod outbox;
pub mod status;
pub mod telemetry;
pub mod worker;

pub use config::{Config, ConfigError};
