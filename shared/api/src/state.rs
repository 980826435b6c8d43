//! What every handler can reach, built once per cold start.

use std::sync::Arc;

use platform::{aws::AwsClients, db, Config};

use crate::auth::{google::GoogleVerifier, tokens::AccessTokens};

/// Shared handles: cheap to clone (everything inside is reference-counted).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: deadpool_postgres::Pool,
    pub aws: AwsClients,
    pub tokens: Arc<AccessTokens>,
    pub google: Arc<GoogleVerifier>,
}

impl AppState {
    /// Builds the pool (lazily connecting) and takes the given AWS clients.
    pub fn new(config: Config, aws: AwsClients) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            db: db::pool(&config)?,
            tokens: Arc::new(AccessTokens::new(&config)),
            google: Arc::new(GoogleVerifier::new(
                &config.google_client_id,
                &config.google_jwks_url,
                http,
            )),
            config: Arc::new(config),
            aws,
        })
    }

    /// The Lambda path: AWS clients from the default chain.
    pub async fn from_env(config: Config) -> anyhow::Result<Self> {
        Self::new(config, AwsClients::from_env().await)
    }
}
