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
use tracing::Instrument;

use crate::env::{Env, Lookup};
use secrecy::SecretString;

mod rotation;

refinery::embed_migrations!("migrations");

/// The embedded migrations.
pub fn migration_runner() -> refinery::Runner {
    migrations::runner()
}

/// Every query of the backend goes through these: the statement is prepared once per
/// connection and kept in deadpool's statement cache, so a query costs one round trip. Given a
/// SQL string, tokio-postgres would prepare an unnamed statement on every call first (Parse +
/// Describe, then Bind + Execute: two round trips, and PostgreSQL parses and plans every time).
/// Statements must come from a bounded set of strings (constants, or formatted only from
/// constants), never from values: each distinct string is cached per connection. Each runs in
/// a span that X-Ray shows as a PostgreSQL subsegment with its statement.
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
        .instrument(crate::telemetry::xray::postgres(sql))
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
        .instrument(crate::telemetry::xray::postgres(sql))
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
        .instrument(crate::telemetry::xray::postgres(sql))
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
        .instrument(crate::telemetry::xray::postgres(sql))
    }
}

impl<C: GenericClient + ?Sized> CachedStatements for C {}

/// The roots the database's certificate is verified against when nothing else is configured,
/// compiled into every binary (no Lambda layer, no file): the roots RDS Proxy's ACM certificates
/// chain to, and the Amazon RDS CA bundle for direct connections. Source, version and checksums:
/// `shared/platform/certs/README.md`.
pub const EMBEDDED_ROOTS: [&str; 2] = [
    include_str!("../certs/rds-proxy-roots.pem"),
    include_str!("../certs/rds-ca-bundle.pem"),
];

/// How connections to PostgreSQL are protected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DatabaseTls {
    /// Plaintext: the local stack, or `DATABASE_TLS=disable`.
    #[default]
    Off,
    /// TLS required (never a plaintext fallback), the server's certificate and host name
    /// verified against these PEM roots.
    Verified(String),
}

/// The PostgreSQL source of truth.
#[derive(Debug, Clone, Default)]
pub struct DatabaseConfig {
    /// `DATABASE_URL` (libpq URL or key-value form), or one formed from an RDS-managed secret:
    /// its `username` and `password`, with `DATABASE_HOST`, `DATABASE_PORT` (5432) and
    /// `DATABASE_NAME` (`remirai`) from plain variables.
    pub url: SecretString,
    /// See [`DatabaseConfig::read`].
    pub tls: DatabaseTls,
    /// `DB_POOL_SIZE`: connections per process. One Lambda instance serves one request at a
    /// time, so a small pool keeps RDS connection counts proportional to concurrency.
    pub pool_size: usize,
    /// `DATABASE_SECRET_ARN`: the secret the credentials came from, read again when the database
    /// refuses them (RDS rotated the password; see `rotation`). None: never re-read.
    pub secret_arn: Option<String>,
}

impl DatabaseConfig {
    /// Reads the database settings. TLS:
    ///
    /// - `DATABASE_TLS=disable`: plaintext, whatever else is set;
    /// - `DATABASE_CA_PEM` (PEM text) or `DATABASE_CA_FILE` (a path): TLS verified against them;
    /// - otherwise, inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set), with `DATABASE_TLS=require`,
    ///   or with a URL that asks for TLS (`sslmode=require`): TLS verified against
    ///   [`EMBEDDED_ROOTS`];
    /// - otherwise (the local stack): plaintext.
    ///
    /// Inside Lambda a URL that says `sslmode=disable` is refused unless `DATABASE_TLS=disable`
    /// says plaintext is meant: PostgreSQL in Lambda never runs without TLS by accident.
    pub fn read(env: &mut Env<Lookup>) -> Self {
        let url = database_url(env);
        let in_lambda = env.get("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let mode = env.get("DATABASE_TLS");
        let mode = match mode.as_deref().map(str::trim) {
            None => None,
            Some(mode @ ("disable" | "require")) => Some(mode.to_owned()),
            Some(_) => {
                env.problem(
                    "DATABASE_TLS",
                    "is malformed (expected `disable` or `require`)",
                );
                None
            }
        };
        let explicit = ca_bundle(env);
        let url_mode = url.as_deref().and_then(url_ssl_mode);
        let tls = match (mode.as_deref(), explicit) {
            (Some("disable"), _) => DatabaseTls::Off,
            (_, Some(pem)) => DatabaseTls::Verified(pem),
            (Some("require"), None) => DatabaseTls::Verified(EMBEDDED_ROOTS.concat()),
            _ if in_lambda || url_mode.as_deref() == Some("require") => {
                DatabaseTls::Verified(EMBEDDED_ROOTS.concat())
            }
            _ => DatabaseTls::Off,
        };
        if in_lambda && mode.is_none() && url_mode.as_deref() == Some("disable") {
            env.problem(
                "DATABASE_URL",
                "says sslmode=disable inside Lambda: remove it (TLS is verified against the \
                 embedded roots) or set DATABASE_TLS=disable to allow plaintext",
            );
        }
        Self {
            url: SecretString::from(url.unwrap_or_default()),
            tls,
            pool_size: env.optional("DB_POOL_SIZE", 2),
            secret_arn: env.get("DATABASE_SECRET_ARN").filter(|arn| !arn.is_empty()),
        }
    }
}

/// `DATABASE_URL`, or a connection string formed from an RDS-managed secret (`username`,
/// `password`) and `DATABASE_HOST`, `DATABASE_PORT`, `DATABASE_NAME`.
fn database_url(env: &mut Env<Lookup>) -> Option<String> {
    // Every variable is read whatever is set, so each function's configuration reads the same
    // set (the template gives them all).
    let url = env.get("DATABASE_URL");
    let host = env.get("DATABASE_HOST").filter(|host| !host.is_empty());
    let port: u16 = env.optional("DATABASE_PORT", 5432);
    let name = env.get("DATABASE_NAME").filter(|name| !name.is_empty());
    if url.is_some() {
        return url;
    }
    let (Some(user), Some(password)) = (env.get("username"), env.get("password")) else {
        env.problem(
            "DATABASE_URL",
            "is missing (or an RDS-managed secret's username and password with DATABASE_HOST)",
        );
        return None;
    };
    let Some(host) = host.or_else(|| env.get("host")) else {
        env.problem(
            "DATABASE_HOST",
            "is missing (the database's host, with an RDS-managed secret)",
        );
        return None;
    };
    let name = name
        .or_else(|| env.get("dbname"))
        .unwrap_or_else(|| "remirai".to_owned());
    // The key-value form, every value quoted: a password may hold any character.
    let quote = |value: &str| format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"));
    Some(format!(
        "host={} port={port} dbname={} user={} password={}",
        quote(&host),
        quote(&name),
        quote(&user),
        quote(&password)
    ))
}

/// The last `sslmode` of `url` (URL or key-value form): `require` (libpq's `verify-ca` and
/// `verify-full` count as `require`), `disable`, `prefer`, or `None` when not given.
fn url_ssl_mode(url: &str) -> Option<String> {
    let parameters: Vec<&str> = match url.split_once("://") {
        Some((_, rest)) => rest
            .split_once('?')
            .map(|(_, query)| query.split('&').collect())
            .unwrap_or_default(),
        None => url.split_whitespace().collect(),
    };
    let mode = parameters
        .iter()
        .rev()
        .find_map(|parameter| parameter.trim().strip_prefix("sslmode="))?
        .trim_matches(['\'', '"']);
    Some(match mode {
        "verify-ca" | "verify-full" => "require".to_owned(),
        other => other.to_owned(),
    })
}

fn ca_bundle(env: &mut Env<Lookup>) -> Option<String> {
    if let Some(pem) = env.get("DATABASE_CA_PEM") {
        return Some(pem);
    }
    let path = env
        .get("DATABASE_CA_FILE")
        .filter(|path| !path.is_empty())?;
    match std::fs::read_to_string(&path) {
        Ok(pem) => Some(pem),
        Err(error) => {
            env.problem("DATABASE_CA_FILE", format!("cannot be read ({error})"));
            None
        }
    }
}

/// Builds the pool without connecting: the first query opens the first connection, so a cold
/// start never waits on the database unless the request needs it. A password the database
/// refuses is read again from `config.secret_arn` with `secrets` (see `rotation`).
pub fn pool(
    config: &DatabaseConfig,
    secrets: &aws_sdk_secretsmanager::Client,
) -> anyhow::Result<Pool> {
    let roots = match &config.tls {
        DatabaseTls::Off => None,
        DatabaseTls::Verified(pem) => Some(pem.as_str()),
    };
    let source = config.secret_arn.clone().map(|arn| (arn, secrets.clone()));
    build_pool(config.url.expose_secret(), config.pool_size, roots, source)
}

/// Builds a pool for `url` with at most `size` connections; with `ca_pem`, TLS is required
/// (never a plaintext fallback) and verified against it.
pub fn pool_for(url: &str, size: usize, ca_pem: Option<&str>) -> anyhow::Result<Pool> {
    build_pool(url, size, ca_pem, None)
}

fn build_pool(
    url: &str,
    size: usize,
    ca_pem: Option<&str>,
    source: Option<(String, aws_sdk_secretsmanager::Client)>,
) -> anyhow::Result<Pool> {
    let mut pg_config: tokio_postgres::Config = parse_url(url)?;
    if ca_pem.is_some() {
        pg_config.ssl_mode(tokio_postgres::config::SslMode::Require);
    }
    // `Fast` skips a round trip per checkout; broken connections are still detected by
    // tokio-postgres and discarded.
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match ca_pem {
        Some(pem) => deadpool_postgres::Manager::from_connect(
            pg_config,
            rotation::RotatingConnect {
                tls: tls(pem)?,
                source,
                renewed: Default::default(),
            },
            manager_config,
        ),
        None => deadpool_postgres::Manager::from_connect(
            pg_config,
            rotation::RotatingConnect {
                tls: NoTls,
                source,
                renewed: Default::default(),
            },
            manager_config,
        ),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("building the PostgreSQL pool")
}

/// `url` as tokio-postgres's configuration; libpq's `verify-ca` / `verify-full` (which it does
/// not parse) read as `require`, since with roots configured the certificate and host name are
/// always verified.
fn parse_url(url: &str) -> anyhow::Result<tokio_postgres::Config> {
    let url = url
        .replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require");
    url.parse()
        .context("DATABASE_URL is not a valid PostgreSQL URL")
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

/// [`migrate`] over a database configured as the functions configure theirs.
pub async fn migrate_config(config: &DatabaseConfig) -> anyhow::Result<Vec<String>> {
    let roots = match &config.tls {
        DatabaseTls::Off => None,
        DatabaseTls::Verified(pem) => Some(pem.as_str()),
    };
    migrate_with(config.url.expose_secret(), roots).await
}

/// [`migrate`] with an explicit CA bundle (TLS then required).
pub async fn migrate_with(url: &str, ca_pem: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut config = parse_url(url)?;
    let (mut client, driver) = match ca_pem {
        Some(pem) => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (client, connection) = config
                .connect(tls(pem)?)
                .await
                .context("connecting to PostgreSQL to migrate")?;
            (
                client,
                tokio::spawn(async move { connection.await.map(|_| ()) }),
            )
        }
        None => {
            let (client, connection) = config
                .connect(NoTls)
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
    fn inside_lambda_tls_is_verified_against_the_embedded_roots_unless_configured_otherwise() {
        let default = read(&[LAMBDA, ("DATABASE_URL", PLAIN)]).unwrap();
        assert_eq!(default.tls, DatabaseTls::Verified(EMBEDDED_ROOTS.concat()));
        let with_ca = read(&[LAMBDA, ("DATABASE_URL", PLAIN), ("DATABASE_CA_PEM", CA)]).unwrap();
        assert_eq!(with_ca.tls, DatabaseTls::Verified(CA.to_owned()));
        let empty_file =
            read(&[LAMBDA, ("DATABASE_URL", PLAIN), ("DATABASE_CA_FILE", "")]).unwrap();
        assert_eq!(
            empty_file.tls,
            DatabaseTls::Verified(EMBEDDED_ROOTS.concat())
        );
    }

    #[test]
    fn inside_lambda_plaintext_must_be_asked_for_with_database_tls_disable() {
        let disabled_url = format!("{PLAIN}?sslmode=disable");
        let error = read(&[LAMBDA, ("DATABASE_URL", &disabled_url)]).unwrap_err();
        let shown = error.to_string();
        assert!(shown.contains("DATABASE_TLS=disable"), "{shown}");
        assert!(
            !shown.contains("secret"),
            "the URL is never quoted: {shown}"
        );
        let later_wins = format!("{PLAIN}?sslmode=require&sslmode=disable");
        assert!(read(&[LAMBDA, ("DATABASE_URL", &later_wins)]).is_err());

        let config = read(&[LAMBDA, ("DATABASE_URL", PLAIN), ("DATABASE_TLS", "disable")]).unwrap();
        assert_eq!(config.url.expose_secret(), PLAIN);
        assert_eq!(config.tls, DatabaseTls::Off);
    }

    #[test]
    fn locally_tls_is_off_unless_asked_for() {
        let local = read(&[("DATABASE_URL", PLAIN)]).unwrap();
        assert_eq!(local.tls, DatabaseTls::Off);
        assert_eq!(local.pool_size, 2);
        for asked in [
            read(&[("DATABASE_URL", PLAIN), ("DATABASE_TLS", "require")]).unwrap(),
            read(&[("DATABASE_URL", &format!("{PLAIN}?sslmode=require"))]).unwrap(),
            read(&[("DATABASE_URL", &format!("{PLAIN}?sslmode=verify-full"))]).unwrap(),
        ] {
            assert_eq!(asked.tls, DatabaseTls::Verified(EMBEDDED_ROOTS.concat()));
        }
    }

    #[test]
    fn an_rds_managed_secret_with_plain_host_and_name_forms_the_connection() {
        let config = read(&[
            LAMBDA,
            ("username", "remirai_admin"),
            ("password", "p@ss w'o\\rd"),
            ("DATABASE_HOST", "proxy.example.rds.amazonaws.com"),
            ("DATABASE_NAME", "remirai"),
        ])
        .unwrap();
        let url = config.url.expose_secret();
        let parsed: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(parsed.get_user(), Some("remirai_admin"));
        assert_eq!(parsed.get_password(), Some("p@ss w'o\\rd".as_bytes()));
        assert_eq!(parsed.get_dbname(), Some("remirai"));
        assert_eq!(parsed.get_ports(), [5432]);
        assert_eq!(config.tls, DatabaseTls::Verified(EMBEDDED_ROOTS.concat()));

        let error = read(&[LAMBDA, ("username", "u"), ("password", "p")]).unwrap_err();
        assert!(error.problems.contains_key("DATABASE_HOST"), "{error}");
        let error = read(&[LAMBDA]).unwrap_err();
        assert!(error.problems["DATABASE_URL"].starts_with("is missing"));
    }

    #[test]
    fn a_malformed_database_tls_is_reported() {
        let error = read(&[("DATABASE_URL", PLAIN), ("DATABASE_TLS", "off")]).unwrap_err();
        assert!(error.problems["DATABASE_TLS"].contains("malformed"));
    }

    #[test]
    fn the_embedded_roots_are_the_vendored_files_and_every_certificate_parses() {
        use aws_lc_rs::digest;
        let checksums = [
            "dfaa39c0350288ded35812f7b80f76c4a422b97ecc04c4ac84e325bec528b1b8",
            "fefac91d6800404461cece76724bc0a2383f4f556a1c9beb0813fac6f2e1e49f",
        ];
        for (pem, checksum) in EMBEDDED_ROOTS.iter().zip(checksums) {
            let sum = crate::crypto::hex(digest::digest(&digest::SHA256, pem.as_bytes()).as_ref());
            assert_eq!(sum, checksum, "certs/README.md names the files' checksums");
        }
        let certificates = CertificateDer::pem_slice_iter(EMBEDDED_ROOTS.concat().as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(certificates.len(), 5 + 115);
        assert!(tls(&EMBEDDED_ROOTS.concat()).is_ok());
    }
}
