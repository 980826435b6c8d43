//! Rotated database passwords. RDS rotates the password of a managed master secret on its own
//! (every seven days by default); a warm function still holds the one it read at cold start, and
//! the next connection it opens (the proxy closes idle ones after 30 minutes) would be refused.
//! So connections are opened here: when PostgreSQL refuses the password (SQLSTATE 28P01) and the
//! configuration names its secret (`DATABASE_SECRET_ARN`), the secret is read again and the
//! connection retried once with what it holds now, which every later connection then uses.

use std::sync::Mutex;

use deadpool_postgres::Connect;
use tokio::task::JoinHandle;
use tokio_postgres::{
    error::SqlState,
    tls::{MakeTlsConnect, TlsConnect},
    Client, Config, Socket,
};

type Opened = Result<(Client, JoinHandle<()>), tokio_postgres::Error>;

/// Opens connections with the newest credentials it knows.
pub(crate) struct RotatingConnect<T> {
    pub(crate) tls: T,
    /// Where the credentials live, and a client to read them.
    pub(crate) source: Option<(String, aws_sdk_secretsmanager::Client)>,
    /// The configuration with credentials read after a refusal, once there was one.
    pub(crate) renewed: Mutex<Option<Config>>,
}

async fn open<T>(config: &Config, tls: T) -> Opened
where
    T: MakeTlsConnect<Socket> + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    let task = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(target: "deadpool.postgres", error = %error, "connection error");
        }
    });
    Ok((client, task))
}

fn refused_password(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::INVALID_PASSWORD)
}

/// `config` with the credentials the secret holds now: an RDS-managed secret's `username` and
/// `password`, or our own secret's whole `DATABASE_URL`.
async fn reread(
    arn: &str,
    client: &aws_sdk_secretsmanager::Client,
    config: &Config,
) -> anyhow::Result<Config> {
    use anyhow::Context;
    let text = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .context("reading the database secret")?
        .secret_string
        .context("the database secret has no string value")?;
    let values = crate::secrets::parse(&text)?;
    if let Some(url) = values.get("DATABASE_URL") {
        let mut renewed = super::parse_url(url)?;
        renewed.ssl_mode(config.get_ssl_mode());
        return Ok(renewed);
    }
    let (Some(user), Some(password)) = (values.get("username"), values.get("password")) else {
        anyhow::bail!("the database secret holds neither DATABASE_URL nor username and password");
    };
    let mut renewed = config.clone();
    renewed.user(user).password(password.as_bytes());
    Ok(renewed)
}

impl<T> Connect for RotatingConnect<T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    fn connect(
        &self,
        pg_config: &Config,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Opened> + Send + '_>> {
        let config = self
            .renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| pg_config.clone());
        Box::pin(async move {
            let opened = open(&config, self.tls.clone()).await;
            let (Err(error), Some((arn, client))) = (&opened, &self.source) else {
                return opened;
            };
            if !refused_password(error) {
                return opened;
            }
            match reread(arn, client, &config).await {
                Ok(renewed) => {
                    let retried = open(&renewed, self.tls.clone()).await;
                    if retried.is_ok() {
                        tracing::info!("database password rotated: connected with the new one");
                        *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Some(renewed);
                    }
                    retried
                }
                Err(reason) => {
                    tracing::warn!(
                        error = crate::telemetry::describe(&reason),
                        "the database refused the password and its secret could not be read again"
                    );
                    opened
                }
            }
        })
    }
}
