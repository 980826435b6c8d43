//! Migrations are applied to every test database (cloned from the migrated template).

use integration_tests::{empty_database, fresh_database, repo_path};
use platform::{schema::MigrateConfig, FunctionConfig};
use serde_json::Value;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

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

/// The deploy's migration: the migrate function, given CloudFormation's custom resource request,
/// migrates an empty database and answers SUCCESS at the presigned URL; a database it cannot
/// migrate answers FAILED with the reason (which fails the deploy, and rolls it back).
#[tokio::test]
async fn the_migrate_function_migrates_at_deploy_and_answers_cloudformation() {
    let cloudformation = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/response"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&cloudformation)
        .await;
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("events/migrate/create.json")).unwrap(),
    )
    .unwrap();
    event["ResponseURL"] = format!("{}/response", cloudformation.uri()).into();
    let http = reqwest::Client::new();
    let config = |url: String| {
        MigrateConfig::from_lookup(move |name| (name == "DATABASE_URL").then(|| url.clone()))
            .unwrap()
    };

    let url = empty_database().await;
    let answered = platform::schema::handle(Ok(&config(url.clone())), &http, event.clone())
        .await
        .unwrap();
    let failed = platform::schema::handle(
        Ok(&config("postgres://nobody@127.0.0.1:1/none".into())),
        &http,
        event.clone(),
    )
    .await
    .unwrap();

    assert_eq!(answered["Status"], "SUCCESS");
    assert_eq!(
        answered["Data"]["Version"],
        platform::schema::latest_version()
    );
    assert_eq!(failed["Status"], "FAILED");
    assert!(failed["Reason"]
        .as_str()
        .unwrap()
        .starts_with("migration failed"));
    assert!(
        !failed["Reason"].as_str().unwrap().contains("nobody"),
        "no URL in the reason"
    );
    let bodies: Vec<Value> = cloudformation
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| serde_json::from_slice(&request.body).unwrap())
        .collect();
    let statuses: Vec<&str> = bodies
        .iter()
        .map(|b| b["Status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["SUCCESS", "FAILED"]);
    assert_eq!(bodies[0]["LogicalResourceId"], "SchemaMigration");
    let pool = platform::db::pool_for(&url, 1, None).unwrap();
    assert_eq!(
        platform::schema::applied_version(&pool.get().await.unwrap())
            .await
            .unwrap(),
        platform::schema::latest_version()
    );

    // A stack delete never touches the schema; a direct invocation says what it applied.
    event["RequestType"] = "Delete".into();
    let deleted = platform::schema::handle(Ok(&config(url.clone())), &http, event.clone())
        .await
        .unwrap();
    assert_eq!(deleted["Status"], "SUCCESS");
    let by_hand = platform::schema::handle(Ok(&config(url)), &http, serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(by_hand["applied"], serde_json::json!([]));

    // A function whose configuration could not load (a wrong secret, no host) still answers:
    // FAILED with the reason on a deploy, SUCCESS on a delete, never an hour of silence.
    let unconfigured = Err("DATABASE_HOST is missing");
    let deleted = platform::schema::handle(unconfigured, &http, event.clone())
        .await
        .unwrap();
    event["RequestType"] = "Update".into();
    let updated = platform::schema::handle(unconfigured, &http, event)
        .await
        .unwrap();
    assert_eq!(deleted["Status"], "SUCCESS");
    assert_eq!(updated["Status"], "FAILED");
    assert_eq!(
        updated["Reason"],
        "migration failed: configuration: DATABASE_HOST is missing"
    );
    assert_eq!(cloudformation.received_requests().await.unwrap().len(), 5);
}
