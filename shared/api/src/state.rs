//! What every handler can reach, built once per cold start.

use std::sync::Arc;

use platform::{
    aws::AwsClients,
    clock::{Clock, SystemClock},
    crypto::AnswerCipher,
    db,
    outbox::Publisher,
    status::StatusStore,
    Config,
};

use crate::{
    auth::{google::GoogleVerifier, tokens::AccessTokens},
    surveys::anonymity::DayKeys,
};

/// Shared handles: cheap to clone (everything inside is reference-counted).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: deadpool_postgres::Pool,
    pub aws: AwsClients,
    pub tokens: Arc<AccessTokens>,
    pub google: Arc<GoogleVerifier>,
    pub clock: Arc<dyn Clock>,
    pub cipher: Arc<AnswerCipher>,
    pub day_keys: Arc<DayKeys>,
    pub publisher: Publisher,
    pub status: StatusStore,
    /// Saga commands (start, retry, re-render) on the same pool.
    pub saga: saga::Saga,
}

impl AppState {
    /// Builds the pool (lazily connecting) and takes the given AWS clients.
    pub fn new(config: Config, aws: AwsClients) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let pool = db::pool(&config)?;
        let saga = saga::Saga::with_pool(config.clone(), pool.clone(), aws.clone())?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        // One cipher, publisher and status store, shared with the saga commands.
        Ok(Self {
            clock: Arc::new(SystemClock),
            cipher: saga.cipher.clone(),
            day_keys: Arc::new(DayKeys::default()),
            publisher: saga.publisher.clone(),
            status: saga.status.clone(),
            db: pool,
            saga,
            tokens: Arc::new(AccessTokens::new(&config)),
            google: Arc::new(GoogleVerifier::new(
                &config.google_client_id,
                &config.google_jwks_url,
                http,
            )),
            config,
            aws,
        })
    }

    /// The same state on another clock (tests move time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The Lambda path: AWS clients from the default chain.
    pub async fn from_env(config: Config) -> anyhow::Result<Self> {
        Self::new(config, AwsClients::from_env().await)
    }
}
