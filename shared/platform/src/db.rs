//! The PostgreSQL pool (built once per cold start) and the versioned migrations.
//!
//! Migrations live in `shared/platform/migrations/` as `V<n>__<name>.sql` and are embedded into
//! the binary by refinery, so the `devstack migrate` command, the local stack and the test harness
//! all apply exactly the files that were compiled.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::ExposeSecret;
use tokio_postgres::NoTls;

use crate::Config;

refinery::embed_migrations!("migrations");

/// Builds the pool without connecting: the first query opens the first connection, so a cold
/// start never waits on the database unless the request needs it.
pub fn pool(config: &Config) -> anyhow::Result<Pool> {
    pool_for(config.database_url.expose_secret(), config.db_pool_size)
}

/// Builds a pool for `url` with at most `size` connections.
pub fn pool_for(url: &str, size: usize) -> anyhow::Result<Pool> {
    let pg_config: tokio_postgres::Config = url
        .parse()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let manager = deadpool_postgres::Manager::from_config(
        pg_config,
        NoTls,
        ManagerConfig {
            // `Fast` skips a round trip per checkout; broken connections are still detected by
            // tokio-postgres and discarded.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("building the PostgreSQL pool")
}

/// Applies every embedded migration not yet applied; returns the names of those it applied.
pub async fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to PostgreSQL to migrate")?;
    let driver = tokio::spawn(connection);
    let report = migrations::runner()
        .run_async(&mut client)
        .await
        .context("applying migrations")?;
    drop(client);
    let _ = driver.await;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}
