//! PostgreSQL over TLS, verified against `DATABASE_CA_PEM` (how the functions reach RDS, which
//! forces SSL), on a throw-away server of our own with `ssl=on`.

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
