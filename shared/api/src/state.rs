//! What every handler can reach, built once per cold start: the configuration, the feature
//! services (surveys, personas, social, quests, chat) and the guards' handles.

use std::sync::Arc;

use platform::{
    aws::{AwsClients, Table},
    clock::{self, Clock},
    crypto::Sealer,
    db,
    outbox::Publisher,
    rate_limit::RateLimiter,
};

use ::auth::Auth;

use crate::{auth::Authenticator, idempotency::Idempotency, HttpApiConfig};

/// Shared handles: cheap to clone (everything inside is reference-counted).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<HttpApiConfig>,
    pub db: deadpool_postgres::Pool,
    pub aws: AwsClients,
    pub clock: Arc<dyn Clock>,
    pub auth: Auth,
    pub authenticator: Authenticator,
    pub exports: ::account::Exports,
    pub erasures: ::account::Erasures,
    pub limits: RateLimiter,
    pub idempotency: Idempotency,
    pub surveys: surveys::Surveys,
    pub personas: personas::Personas,
    pub quests: quests::Quests,
    pub cards: personas::cards::CardLinks,
    pub social: social::Social,
    pub chat: chat::Chat,
}

impl axum::extract::FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}

impl AppState {
    /// Builds the pool (lazily connecting) and takes the given AWS clients, on the real clock.
    pub fn new(config: HttpApiConfig, aws: AwsClients) -> anyhow::Result<Self> {
        Self::with_clock(config, aws, clock::system())
    }

    /// The same state on another clock (tests move time).
    pub fn with_clock(
        config: HttpApiConfig,
        aws: AwsClients,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let pool = db::pool(&config.database, &aws.secrets)?;
        let table = Table::new(&aws.dynamodb, &config.table_name);
        let publisher = Publisher::new(aws.sqs.clone(), config.queues.clone());
        let limits = RateLimiter {
            table: table.clone(),
            clock: clock.clone(),
        };
        let cards = personas::cards::CardLinks {
            s3: aws.s3.clone(),
            bucket: config.cards_bucket.clone(),
        };
        let personas = personas::Personas {
            db: pool.clone(),
            status: personas::StatusStore {
                table: table.clone(),
            },
            publisher: publisher.clone(),
        };
        let auth = Auth::new(&config.identity, pool.clone(), clock.clone());
        let marks = ::account::ErasureMarks {
            table: table.clone(),
        };
        Ok(Self {
            authenticator: Authenticator {
                tokens: auth.tokens.clone(),
                marks: marks.clone(),
                clock: clock.clone(),
            },
            exports: ::account::Exports {
                db: pool.clone(),
                s3: aws.s3.clone(),
                bucket: config.cards_bucket.clone(),
                clock: clock.clone(),
                publisher: publisher.clone(),
            },
            erasures: ::account::Erasures {
                db: pool.clone(),
                marks,
                address_hash_key: Arc::new(config.identity.address_hash_key.clone()),
                clock: clock.clone(),
                publisher: publisher.clone(),
            },
            surveys: surveys::Surveys {
                db: pool.clone(),
                cipher: Arc::new(Sealer::new(&config.answer_keys)?),
                day_keys: Arc::new(surveys::anonymity::DayKeys::new(Table::new(
                    &aws.dynamodb,
                    &config.anonymity_table_name,
                ))),
                limits: limits.clone(),
                clock: clock.clone(),
                personas: personas.clone(),
            },
            personas,
            quests: quests::Quests {
                db: pool.clone(),
                clock: clock.clone(),
                zone: config.quest_time_zone,
            },
            chat: chat::Chat::new(
                &config.chat,
                pool.clone(),
                table.clone(),
                publisher.clone(),
                clock.clone(),
            )?,
            cards: cards.clone(),
            social: social::Social {
                db: pool.clone(),
                clock: clock.clone(),
                limits: limits.clone(),
                cards,
                reports: social::reports::ReportSettings {
                    key: Arc::new(config.identity.address_hash_key.clone()),
                    hide_threshold: config.report_hide_threshold,
                },
            },
            auth,
            idempotency: Idempotency {
                table,
                clock: clock.clone(),
            },
            limits,
            db: pool,
            clock,
            config: Arc::new(config),
            aws,
        })
    }

    /// The Lambda path: AWS clients from the default chain.
    pub async fn from_env(config: HttpApiConfig) -> anyhow::Result<Self> {
        Self::new(config, AwsClients::from_env().await)
    }
}
