//! Typed configuration, read once per cold start: one struct per function, each reading only
//! the variables that function uses (`template.yaml` gives each function exactly those). The
//! structs live with their features (`api::HttpApiConfig`, `saga::SynthesizeConfig`, ...); this
//! module holds what every one of them shares: the [`FunctionConfig`] trait that reads them from
//! the environment and Secrets Manager, and the sections several functions read.
//!
//! | function | configuration |
//! |---|---|
//! | `HttpApiFunction` | `api::HttpApiConfig` |
//! | `SynthesizeFunction`, `RenderCardFunction`, `SweeperFunction` | `saga::{SynthesizeConfig, RenderConfig, SweeperConfig}` |
//! | `ChatFunction`, `ChatMemoryFunction` | `chat::{ChatConfig, ChatMemoryConfig}` |

use crate::env::{self, ConfigError, Env, Lookup};

/// `TABLE_NAME`: the single DynamoDB table (status read model, idempotency, markers, limits).
pub fn table_name(env: &mut Env<Lookup>) -> String {
    env.required("TABLE_NAME")
}

/// `FRONTEND_URL`: base of share links, without a trailing slash.
pub fn frontend_url(env: &mut Env<Lookup>) -> String {
    env.required_url("FRONTEND_URL")
        .trim_end_matches('/')
        .to_owned()
}

/// `CARDS_BUCKET`: the private bucket cards are written to and read (presigned) from.
pub fn cards_bucket(env: &mut Env<Lookup>) -> String {
    env.required("CARDS_BUCKET")
}

/// What only the HTTP side needs: CORS, body limits, links.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// `FRONTEND_URL`.
    pub frontend_url: String,
    /// `ALLOWED_ORIGINS`: comma-separated CORS origins; empty means no cross-origin access.
    pub allowed_origins: Vec<String>,
    /// `MAX_BODY_BYTES`: largest accepted request body.
    pub max_body_bytes: usize,
}

impl WebConfig {
    pub fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            frontend_url: frontend_url(env),
            ..Self::read_cors(env)
        }
    }

    /// CORS and the body limit only, for a function that builds no links (the chat stream).
    pub fn read_cors(env: &mut Env<Lookup>) -> Self {
        Self {
            frontend_url: String::new(),
            allowed_origins: env.list("ALLOWED_ORIGINS"),
            max_body_bytes: env.optional("MAX_BODY_BYTES", 64 * 1024),
        }
    }
}

/// Reading a function's configuration from the process environment or any lookup (the local
/// stack and tests supply values without touching the process environment).
pub trait FunctionConfig: Sized {
    fn read(env: &mut Env<Lookup>) -> Self;

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        env::read(lookup, Self::read)
    }

    fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The Lambda path: the process environment overlaid with the secrets its `SECRET_ARNS`
    /// names, fetched from Secrets Manager in one round trip.
    fn load(
        aws: &crate::aws::AwsClients,
    ) -> impl std::future::Future<Output = anyhow::Result<Self>> + Send {
        async move {
            let arns = env::read(
                |name| std::env::var(name).ok(),
                |env| env.list(crate::secrets::ARNS_VARIABLE),
            )?;
            let secrets = crate::secrets::fetch(&aws.secrets, &arns).await?;
            Ok(Self::from_lookup(|name| {
                secrets
                    .get(name)
                    .cloned()
                    .or_else(|| std::env::var(name).ok())
            })?)
        }
    }
}
