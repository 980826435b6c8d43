//! Migrations are applied to every test database (cloned from the migrated template).

use integration_tests::fresh_database;

#[tokio::test]
async fn a_fresh_database_has_every_migration_applied() {
    let url = fresh_database().await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);

    let applied: Vec<String> = client
        .query(
            "SELECT name FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let outbox_columns: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'outbox'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    assert_eq!(applied.first().map(String::as_str), Some("outbox"));
    assert_eq!(outbox_columns, 7);
}

#[tokio::test]
async fn migrating_twice_applies_nothing_the_second_time() {
    let url = fresh_database().await;

    let applied = platform::db::migrate(&url).await.unwrap();

    assert!(applied.is_empty(), "{applied:?}");
}
