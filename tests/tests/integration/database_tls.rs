//! How the functions reach PostgreSQL: over TLS, verified against `DATABASE_CA_PEM` (RDS forces
//! SSL), on a throw-away server of our own with `ssl=on`; and with a password RDS may rotate.

use devstack::postgres::TempPostgres;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA and a server certificate for 127.0.0.1 signed by it: (CA PEM, server cert PEM, key PEM).
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

fn other_ca() -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

async fn ssl_in_use(pool: &deadpool_postgres::Pool) -> anyhow::Result<bool> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn connections_use_tls_verified_against_the_configured_ca_and_refuse_other_cas() {
    let (ca, certificate, key) = certificates();
    let server = tokio::task::spawn_blocking(move || {
        TempPostgres::start_with_tls(Some((&certificate, &key)))
    })
    .await
    .unwrap()
    .unwrap();
    let url = format!("{}?sslmode=require", server.admin_url);

    let verified = platform::db::pool_for(&url, 1, Some(&ca)).unwrap();
    let impostor = platform::db::pool_for(&url, 1, Some(&other_ca())).unwrap();
    let migrated = platform::db::migrate_with(&url, Some(&ca)).await;

    assert!(
        ssl_in_use(&verified).await.unwrap(),
        "the session is encrypted"
    );
    assert!(
        ssl_in_use(&impostor).await.is_err(),
        "a certificate from another CA is refused"
    );
    assert!(migrated.is_ok(), "{migrated:?}");
    assert!(platform::db::pool_for(&url, 1, Some("not a certificate")).is_err());
    server.stop();
}

/// RDS rotates a managed master password on its own. A warm function's pool, refused the old
/// password on its next connection, reads the database secret again and connects with the new
/// one, on a server of its own that checks passwords (SCRAM).
#[tokio::test]
async fn a_rotated_password_is_read_again_from_its_secret_when_the_database_refuses_the_old_one() {
    let server = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let admin = platform::db::pool_for(&server.admin_url, 1, None).unwrap();
    let admin = admin.get().await.unwrap();
    let hba: String = admin.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    std::fs::write(
        &hba,
        "local all all trust\n\
         host all postgres 127.0.0.1/32 trust\n\
         host all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    admin.execute("SELECT pg_reload_conf()", &[]).await.unwrap();
    admin
        .batch_execute("CREATE ROLE rotator LOGIN PASSWORD 'first-password'")
        .await
        .unwrap();

    let aws = integration_tests::aws_clients().await;
    let secret = |password: &str| {
        serde_json::json!({"username": "rotator", "password": password}).to_string()
    };
    let arn = aws
        .secrets
        .create_secret()
        .name(format!("rotation-{}", uuid::Uuid::new_v4()))
        .secret_string(secret("first-password"))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let port = server
        .admin_url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    // As a function reads it at cold start: the secret's fields, the host and name beside them.
    let variables = std::collections::BTreeMap::from([
        ("username", "rotator".to_owned()),
        ("password", "first-password".to_owned()),
        ("DATABASE_HOST", "127.0.0.1".to_owned()),
        ("DATABASE_PORT", port),
        ("DATABASE_NAME", "postgres".to_owned()),
        ("DATABASE_SECRET_ARN", arn.clone()),
        ("DB_POOL_SIZE", "1".to_owned()),
    ]);
    let lookup = |name: &str| variables.get(name).cloned();
    let mut env = platform::env::Env::new(&lookup as platform::env::Lookup);
    let config = platform::db::DatabaseConfig::read(&mut env);
    let pool = platform::db::pool(&config, &aws.secrets).unwrap();
    let user = |pool: deadpool_postgres::Pool| async move {
        let client = pool.get().await?;
        let row = client.query_one("SELECT current_user::text", &[]).await?;
        anyhow::Ok(row.get::<_, String>(0))
    };
    assert_eq!(user(pool.clone()).await.unwrap(), "rotator");

    // Rotation: the database and the secret get a new password; the pooled connection goes (as
    // the proxy closes idle ones).
    admin
        .batch_execute("ALTER ROLE rotator PASSWORD 'second-password'")
        .await
        .unwrap();
    aws.secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(secret("second-password"))
        .send()
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rotator'",
            &[],
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let without_secret = platform::db::pool(
        &platform::db::DatabaseConfig {
            secret_arn: None,
            ..config.clone()
        },
        &aws.secrets,
    )
    .unwrap();

    assert_eq!(
        user(pool.clone()).await.unwrap(),
        "rotator",
        "reconnected with the password the secret holds now"
    );
    assert_eq!(user(pool).await.unwrap(), "rotator", "and keeps it");
    let refused = user(without_secret).await.unwrap_err();
    assert!(
        format!("{refused:?}").contains("28P01") || format!("{refused:?}").contains("password"),
        "without a secret to read, the old password stays refused: {refused:?}"
    );
    server.stop();
}
