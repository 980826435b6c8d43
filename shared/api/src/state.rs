//! What every handler can reach, built once per cold start.

use std::sync::Arc;

use platform::{aws::AwsClients, db, Config};

/// Shared handles: cheap to clone (everything inside is reference-counted).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: deadpool_postgres::Pool,
    pub aws: AwsClients,
}

impl AppState {
    /// Builds the pool (lazily connecting) and takes the given AWS clients.
    pub fn new(config: Config, aws: AwsClients) -> anyhow::Result<Self> {
        Ok(Self {
            db: db::pool(&config)?,
            config: Arc::new(config),
            aws,
        })
    }

    /// The Lambda path: AWS clients from the default chain.
    pub async fn from_env(config: Config) -> anyhow::Result<Self> {
        Self::new(config, AwsClients::from_env().await)
    }
}
