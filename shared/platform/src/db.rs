//! The PostgreSQL pool (built once per cold start) and the versioned migrations.
//!
//! Migrations live in `shared/platform/migrations/` as `V<n>__<name>.sql` and are embedded into
//! the binary by refinery, so the `devstack migrate` command, the local stack and the test harness
//! all apply exactly the files that were compiled.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use deadpool_postgres::{GenericClient, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use secrecy::ExposeSecret;
use tokio_postgres::{types::ToSql, NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::env::{Env, Lookup};
use secrecy::SecretString;

refinery::embed_migrations!("migrations");

/// Every query of the backend goes through these: the statement is prepared once per
/// connection and kept in deadpool's statement cache, so a query costs one round trip. Given a
/// SQL string, tokio-postgres would prepare an unnamed statement on every call first (Parse +
/// Describe, then Bind + Execute: two round trips, and PostgreSQL parses and plans every time).
/// Statements must come from a bounded set of strings (constants, or formatted only from
/// constants), never from values: each distinct string is cached per connection.
pub trait CachedStatements: GenericClient {
    /// `query` with the statement cached.
    fn query_cached<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query(&statement, params).await
        }
    }

    /// `query_one` with the statement cached.
    fn query_one_cached<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_one(&statement, params).await
        }
    }

    /// `query_opt` with the statement cached.
    fn query_opt_cached<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_opt(&statement, params).await
        }
    }

    /// `execute` with the statement cached.
    fn execute_cached<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.execute(&statement, params).await
        }
    }
}

impl<C: GenericClient + ?Sized> CachedStatements for C {}

/// The PostgreSQL source of truth.
#[derive(Debug, Clone, Default)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: libpq-style URL.
    pub url: SecretString,
    /// `DATABASE_CA_PEM` (PEM text) or `DATABASE_CA_FILE` (a path, e.g. a bundle in a Lambda
    /// layer: Lambda's environment is limited to 4 KB): the CA certificates that signed the
    /// database's certificate (for RDS, the region's bundle). When set, connections use TLS
    /// verified against them; add `?sslmode=require` to `DATABASE_URL` to refuse plaintext.
    /// Unset: no TLS (the local stack).
    pub ca_pem: Option<String>,
    /// `DB_POOL_SIZE`: connections per process. One Lambda instance serves one request at a
    /// time, so a small pool keeps RDS connection counts proportional to concurrency.
    pub pool_size: usize,
}

impl DatabaseConfig {
    pub fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            url: SecretString::from(env.required::<String>("DATABASE_URL")),
            ca_pem: ca_bundle(env),
            pool_size: env.optional("DB_POOL_SIZE", 2),
        }
    }
}

fn ca_bundle(env: &mut Env<Lookup>) -> Option<String> {
    if let Some(pem) = env.get("DATABASE_CA_PEM") {
        return Some(pem);
    }
    let path = env.get("DATABASE_CA_FILE")?;
    match std::fs::read_to_string(&path) {
        Ok(pem) => Some(pem),
        Err(error) => {
            env.problem("DATABASE_CA_FILE", format!("cannot be read ({error})"));
            None
        }
    }
}

/// Builds the pool without connecting: the first query opens the first connection, so a cold
/// start never waits on the database unless the request needs it.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<Pool> {
    pool_for(
        config.url.expose_secret(),
        config.pool_size,
        config.ca_pem.as_deref(),
    )
}

/// Builds a pool for `url` with at most `size` connections; TLS verified against `ca_pem` when
/// given.
pub fn pool_for(url: &str, size: usize, ca_pem: Option<&str>) -> anyhow::Result<Pool> {
    let pg_config: tokio_postgres::Config = url
        .parse()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    // `Fast` skips a round trip per checkout; broken connections are still detected by
    // tokio-postgres and discarded.
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match ca_pem {
        Some(pem) => deadpool_postgres::Manager::from_config(pg_config, tls(pem)?, manager_config),
        None => deadpool_postgres::Manager::from_config(pg_config, NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("building the PostgreSQL pool")
}

/// A TLS connector that trusts only the CAs in `pem` (RDS certificates are not signed by a
/// public CA, so the system store would not do).
pub fn tls(pem: &str) -> anyhow::Result<MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots
            .add(certificate.context("DATABASE_CA_PEM holds a malformed certificate")?)
            .context("DATABASE_CA_PEM holds an unusable certificate")?;
    }
    if roots.is_empty() {
        anyhow::bail!("DATABASE_CA_PEM holds no certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("configuring TLS")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Applies every embedded migration not yet applied; returns the names of those it applied.
pub async fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
    migrate_with(url, None).await
}

/// [`migrate`] with an explicit CA bundle.
pub async fn migrate_with(url: &str, ca_pem: Option<&str>) -> anyhow::Result<Vec<String>> {
    let (mut client, driver) = match ca_pem {
        Some(pem) => {
            let (client, connection) = tokio_postgres::connect(url, tls(pem)?)
                .await
                .context("connecting to PostgreSQL to migrate")?;
            (
                client,
                tokio::spawn(async move { connection.await.map(|_| ()) }),
            )
        }
        None => {
            let (client, connection) = tokio_postgres::connect(url, NoTls)
                .await
                .context("connecting to PostgreSQL to migrate")?;
            (
                client,
                tokio::spawn(async move { connection.await.map(|_| ()) }),
            )
        }
    };
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
