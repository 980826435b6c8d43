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
    ///
    /// Inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) a configuration without TLS is refused
    /// (see [`DatabaseConfig::read`]).
    pub ca_pem: Option<String>,
    /// `DB_POOL_SIZE`: connections per process. One Lambda instance serves one request at a
    /// time, so a small pool keeps RDS connection counts proportional to concurrency.
    pub pool_size: usize,
}

impl DatabaseConfig {
    /// Reads the database settings, and refuses a Lambda configuration that would talk to
    /// PostgreSQL in plaintext: inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) TLS is required
    /// — a CA configured (`DATABASE_CA_PEM` / `DATABASE_CA_FILE`) or `sslmode=require` in
    /// `DATABASE_URL` — unless `DATABASE_TLS=disable` says plaintext is meant. `DATABASE_TLS`
    /// (optional) takes `disable` or `require` (TLS required outside Lambda too); unset, TLS is
    /// required only inside Lambda, so the local stack keeps connecting without it.
    pub fn read(env: &mut Env<Lookup>) -> Self {
        let url = env.get("DATABASE_URL");
        let config = Self {
            url: SecretString::from(env.required::<String>("DATABASE_URL")),
            ca_pem: ca_bundle(env),
            pool_size: env.optional("DB_POOL_SIZE", 2),
        };
        let in_lambda = env.get("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let tls_required = match env.get("DATABASE_TLS").as_deref().map(str::trim) {
            None => in_lambda,
            Some("disable") => false,
            Some("require") => true,
            Some(_) => {
                env.problem(
                    "DATABASE_TLS",
                    "is malformed (expected `disable` or `require`)",
                );
                in_lambda
            }
        };
        // Only a URL that is there can be judged (a missing one is already a problem).
        if let Some(url) = url {
            let has_tls = config.ca_pem.is_some() || url_requires_tls(&url);
            if tls_required && !has_tls {
                env.problem(
                    "DATABASE_URL",
                    format!(
                        "connects without TLS{}: set DATABASE_CA_PEM or DATABASE_CA_FILE (with \
                         sslmode=require in the URL), or DATABASE_TLS=disable to allow plaintext",
                        if in_lambda { " inside Lambda" } else { "" }
                    ),
                );
            }
        }
        config
    }
}

/// Whether `url` (URL or key-value form) refuses a session without TLS: its last `sslmode` is
/// `require` (or libpq's `verify-ca` / `verify-full`, which tokio-postgres does not parse).
fn url_requires_tls(url: &str) -> bool {
    if let Ok(config) = url.parse::<tokio_postgres::Config>() {
        return config.get_ssl_mode() == tokio_postgres::config::SslMode::Require;
    }
    let parameters: Vec<&str> = match url.split_once("://") {
        Some((_, rest)) => rest
            .split_once('?')
            .map(|(_, query)| query.split('&').collect())
            .unwrap_or_default(),
        None => url.split_whitespace().collect(),
    };
    parameters
        .iter()
        .rev()
        .find_map(|parameter| parameter.trim().strip_prefix("sslmode="))
        .is_some_and(|mode| {
            matches!(
                mode.trim_matches(['\'', '"']),
                "require" | "verify-ca" | "verify-full"
            )
        })
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::env::ConfigError;

    const PLAIN: &str = "postgres://app:secret@db.example:5432/remirai";
    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn read(variables: &[(&str, &str)]) -> Result<DatabaseConfig, ConfigError> {
        let variables: BTreeMap<String, String> = variables
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        crate::env::read(|name| variables.get(name).cloned(), DatabaseConfig::read)
    }

    const LAMBDA: (&str, &str) = ("AWS_LAMBDA_FUNCTION_NAME", "remirai-HttpApiFunction");

    #[test]
    fn inside_lambda_a_database_without_tls_is_refused_naming_the_variables() {
        let error = read(&[LAMBDA, ("DATABASE_URL", PLAIN)]).unwrap_err();
        let problem = &error.problems["DATABASE_URL"];
        assert!(problem.contains("without TLS"), "{problem}");
        let shown = error.to_string();
        assert!(
            shown.contains("DATABASE_URL") && shown.contains("DATABASE_TLS=disable"),
            "{shown}"
        );
        assert!(
            !shown.contains("secret"),
            "the URL is never quoted: {shown}"
        );
        let preferred = read(&[LAMBDA, ("DATABASE_URL", &format!("{PLAIN}?sslmode=prefer"))]);
        assert!(preferred.is_err(), "`prefer` falls back to plaintext");
    }

    #[test]
    fn inside_lambda_tls_is_a_ca_or_a_url_that_requires_it() {
        let with_ca = read(&[LAMBDA, ("DATABASE_URL", PLAIN), ("DATABASE_CA_PEM", CA)]).unwrap();
        assert_eq!(with_ca.ca_pem.as_deref(), Some(CA));
        for url in [
            format!("{PLAIN}?sslmode=require"),
            format!("{PLAIN}?application_name=x&sslmode=require"),
            "host=db.example user=app sslmode=require".to_owned(),
            format!("{PLAIN}?sslmode=verify-full"),
        ] {
            let config = read(&[LAMBDA, ("DATABASE_URL", &url)]);
            assert!(config.is_ok(), "{url}: {config:?}");
        }
        let later_wins = read(&[
            LAMBDA,
            (
                "DATABASE_URL",
                &format!("{PLAIN}?sslmode=require&sslmode=disable"),
            ),
        ]);
        assert!(later_wins.is_err());
    }

    #[test]
    fn inside_lambda_plaintext_must_be_asked_for_with_database_tls_disable() {
        let config = read(&[LAMBDA, ("DATABASE_URL", PLAIN), ("DATABASE_TLS", "disable")]).unwrap();
        assert_eq!(config.url.expose_secret(), PLAIN);
        assert!(config.ca_pem.is_none());
    }

    #[test]
    fn locally_no_tls_is_required_unless_asked_for() {
        let local = read(&[("DATABASE_URL", PLAIN)]).unwrap();
        assert!(local.ca_pem.is_none());
        assert_eq!(local.pool_size, 2);
        assert!(read(&[("DATABASE_URL", PLAIN), ("DATABASE_TLS", "require")]).is_err());
        assert!(read(&[
            ("DATABASE_URL", &format!("{PLAIN}?sslmode=require")),
            ("DATABASE_TLS", "require")
        ])
        .is_ok());
    }

    #[test]
    fn a_malformed_database_tls_and_a_missing_url_are_reported_as_such() {
        let error = read(&[("DATABASE_URL", PLAIN), ("DATABASE_TLS", "off")]).unwrap_err();
        assert!(error.problems["DATABASE_TLS"].contains("malformed"));
        let error = read(&[LAMBDA]).unwrap_err();
        assert_eq!(error.problems["DATABASE_URL"], "is missing");
    }
}
