//! The database schema at deploy time: the migrate function applies the migrations embedded in
//! its binary when CloudFormation asks (a custom resource, whenever the function's code changes),
//! and readiness compares the applied version with the binary's.
//!
//! The custom resource protocol: CloudFormation invokes the function with the request and a
//! presigned `ResponseURL`; the function answers by `PUT`ting `SUCCESS` or `FAILED` there. A
//! failed migration answers `FAILED` with the reason, which fails the deploy and rolls it back.
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html>

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    config::FunctionConfig,
    db::{self, CachedStatements, DatabaseConfig},
    env::{Env, Lookup},
};

/// The migrate function's configuration: the database, as every function reads it.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    pub database: DatabaseConfig,
}

impl FunctionConfig for MigrateConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
        }
    }
}

/// The newest migration this binary carries.
pub fn latest_version() -> i32 {
    db::migration_runner()
        .get_migrations()
        .iter()
        .map(|migration| i32::try_from(migration.version()).unwrap_or(i32::MAX))
        .max()
        .unwrap_or(0)
}

/// The newest migration applied to the database (0 before any).
pub async fn applied_version(
    client: &impl deadpool_postgres::GenericClient,
) -> anyhow::Result<i32> {
    let row = client
        .query_opt_cached(
            "SELECT max(version) FROM refinery_schema_history WHERE to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await;
    match row {
        Ok(row) => Ok(row
            .and_then(|row| row.get::<_, Option<i32>>(0))
            .unwrap_or(0)),
        // No history table yet: nothing applied.
        Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            Ok(0)
        }
        Err(error) => Err(error).context("reading the applied schema version"),
    }
}

/// A CloudFormation custom resource request (the fields the migration uses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CustomResourceRequest {
    request_type: String,
    #[serde(rename = "ResponseURL")]
    response_url: String,
    stack_id: String,
    request_id: String,
    logical_resource_id: String,
}

/// The migrate function's handler. A custom resource request: migrate on `Create` and `Update`
/// (never anything on `Delete`: a schema is not rolled back), then answer CloudFormation. Any
/// other event (ops invoking it by hand): migrate and say what was applied.
///
/// `config` is what the cold start could load: an error there (a wrong secret ARN, an empty
/// `DATABASE_HOST`) still answers CloudFormation, `FAILED` with the reason on `Create` and
/// `Update`, `SUCCESS` on `Delete`, so a stack never waits an hour for a reply that cannot come.
pub async fn handle(
    config: Result<&MigrateConfig, &str>,
    http: &reqwest::Client,
    event: Value,
) -> anyhow::Result<Value> {
    let migrate = || async {
        match config {
            Ok(config) => db::migrate_config(&config.database).await,
            Err(problem) => Err(anyhow::anyhow!("configuration: {problem}")),
        }
    };
    let Ok(request) = serde_json::from_value::<CustomResourceRequest>(event.clone()) else {
        let applied = migrate().await?;
        return Ok(json!({ "applied": applied, "version": latest_version() }));
    };
    let outcome = match request.request_type.as_str() {
        "Delete" => Ok(Vec::new()),
        _ => migrate().await,
    };
    let (status, reason, applied) = match &outcome {
        Ok(applied) => (
            "SUCCESS",
            format!("schema at version {}", latest_version()),
            applied.clone(),
        ),
        Err(error) => {
            tracing::error!(
                error = crate::telemetry::describe(error),
                "migration failed"
            );
            // The reason is shown in the stack's events: the cause chain, never a secret (the
            // database URL is not part of any error).
            (
                "FAILED",
                format!("migration failed: {}", crate::telemetry::describe(error)),
                Vec::new(),
            )
        }
    };
    let response = json!({
        "Status": status,
        "Reason": reason.chars().take(1000).collect::<String>(),
        "PhysicalResourceId": "schema-migration",
        "StackId": request.stack_id,
        "RequestId": request.request_id,
        "LogicalResourceId": request.logical_resource_id,
        "Data": { "Version": latest_version(), "Applied": applied.len() },
    });
    // The presigned URL accepts the body with no content type.
    http.put(&request.response_url)
        .header("content-type", "")
        .timeout(Duration::from_secs(30))
        .body(response.to_string())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .context("answering CloudFormation")?;
    tracing::info!(status, applied = applied.len(), "migration answered");
    Ok(response)
}
