//! The services under the local stack: PostgreSQL and the AWS endpoint, started here or taken
//! from the environment, and the database the stack uses.

use anyhow::Context;
use platform::aws::AwsClients;

use crate::{emulator::Emulator, postgres::TempPostgres};

/// PostgreSQL and the AWS endpoint: started by us, or taken from `DATABASE_URL` /
/// `AWS_ENDPOINT_URL`.
pub struct Services {
    postgres: Option<TempPostgres>,
    emulator: Option<Emulator>,
    /// The database the stack uses.
    pub database_url: String,
    pub aws: AwsClients,
}

impl Services {
    /// Starts whatever the environment does not provide. Blocking parts run off the runtime.
    pub async fn start() -> anyhow::Result<Self> {
        let external_database = std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty());
        let external_aws = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty());

        let postgres = match external_database {
            Some(_) => None,
            None => Some(tokio::task::spawn_blocking(TempPostgres::start).await??),
        };
        let emulator = if external_aws {
            None
        } else {
            match tokio::task::spawn_blocking(Emulator::start).await? {
                Ok(emulator) => Some(emulator),
                Err(error) => {
                    if let Some(postgres) = &postgres {
                        postgres.stop();
                    }
                    return Err(error);
                }
            }
        };
        let services = Self {
            database_url: match (&external_database, &postgres) {
                (Some(url), _) => url.clone(),
                (None, Some(postgres)) => postgres.url_of("remirai"),
                (None, None) => unreachable!("a database is either given or started"),
            },
            aws: match &emulator {
                Some(emulator) => AwsClients::new(&AwsClients::emulator_config(&emulator.endpoint)),
                None => AwsClients::from_env().await,
            },
            postgres,
            emulator,
        };
        if let Some(postgres) = &services.postgres {
            if let Err(error) = create_database(&postgres.admin_url, "remirai").await {
                services.stop();
                return Err(error);
            }
        }
        Ok(services)
    }

    /// The emulator's endpoint when we started one.
    pub fn emulator_endpoint(&self) -> Option<&str> {
        self.emulator.as_ref().map(|e| e.endpoint.as_str())
    }

    /// Stops the processes we started.
    pub fn stop(&self) {
        if let Some(emulator) = &self.emulator {
            emulator.stop();
        }
        if let Some(postgres) = &self.postgres {
            postgres.stop();
        }
    }
}

/// `CREATE DATABASE name` on the server of `admin_url`, unless it exists.
pub async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    create_database_from(admin_url, name, None).await
}

/// `CREATE DATABASE name [TEMPLATE template]`, tolerating an existing database.
pub async fn create_database_from(
    admin_url: &str,
    name: &str,
    template: Option<&str>,
) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL as admin")?;
    let driver = tokio::spawn(connection);
    let statement = match template {
        Some(template) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
        None => format!("CREATE DATABASE \"{name}\""),
    };
    let outcome = client.batch_execute(&statement).await;
    drop(client);
    let _ = driver.await;
    match outcome {
        Ok(()) => Ok(()),
        Err(error)
            if error.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) =>
        {
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("creating database {name}")),
    }
}
