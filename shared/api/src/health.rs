//! Liveness and readiness.
//!
//! `GET /v1/health` does no I/O (for load balancers and uptime checks). `GET /v1/health/ready`
//! checks every dependency in parallel, each with a short timeout, and says which one failed;
//! the cause of a failure goes to the log only.

use std::{collections::BTreeMap, future::Future, time::Duration};
use utoipa_axum::{router::OpenApiRouter, routes};

use anyhow::Context;
use axum::{extract::State, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{error::ErrorBody, ApiError, AppState, Problem};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `ok` or `unavailable` for each of postgres, dynamodb, s3 and sqs.
    pub checks: BTreeMap<&'static str, &'static str>,
}

/// Liveness: answers as long as the process can serve.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "operations",
    responses((status = 200, description = "The function is alive", body = Health))
)]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the stores answer and the schema is current.
///
/// PostgreSQL, DynamoDB, S3 and SQS are reachable, and the database's schema is the one this
/// release needs (not behind: the deploy's migration has run).
#[utoipa::path(
    get,
    path = "/v1/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Every dependency answered", body = Readiness),
        (status = 503, description = "At least one dependency failed; `details` names which", body = ErrorBody),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let (postgres, schema, dynamodb, s3, sqs) = tokio::join!(
        check("postgres", check_postgres(&state)),
        check("schema", check_schema(&state)),
        check("dynamodb", check_dynamodb(&state)),
        check("s3", check_s3(&state)),
        check("sqs", check_sqs(&state)),
    );
    let checks = BTreeMap::from([postgres, schema, dynamodb, s3, sqs]);
    if checks.values().all(|status| *status == "ok") {
        Ok(Json(Readiness {
            status: "ready",
            checks,
        }))
    } else {
        Err(ApiError::Unavailable(
            Problem::new("not_ready", "A dependency of the API is unavailable.")
                .with_details(serde_json::json!({ "checks": checks })),
        ))
    }
}

async fn check(
    name: &'static str,
    probe: impl Future<Output = anyhow::Result<()>>,
) -> (&'static str, &'static str) {
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow::anyhow!("timed out after {CHECK_TIMEOUT:?}")),
    };
    match outcome {
        Ok(()) => (name, "ok"),
        Err(error) => {
            tracing::warn!(
                dependency = name,
                error = platform::telemetry::describe(&error),
                "readiness check failed"
            );
            (name, "unavailable")
        }
    }
}

async fn check_postgres(state: &AppState) -> anyhow::Result<()> {
    let client = state.db.get().await.context("checking out a connection")?;
    client.simple_query("SELECT 1").await.context("SELECT 1")?;
    Ok(())
}

/// The schema is not behind this release: every migration it carries is applied.
async fn check_schema(state: &AppState) -> anyhow::Result<()> {
    let client = state.db.get().await.context("checking out a connection")?;
    let applied = platform::schema::applied_version(&client).await?;
    let needed = platform::schema::latest_version();
    anyhow::ensure!(
        applied >= needed,
        "the schema is behind: migration {applied} applied, this release needs {needed}"
    );
    Ok(())
}

async fn check_dynamodb(state: &AppState) -> anyhow::Result<()> {
    for table in [&state.config.table_name, &state.config.anonymity_table_name] {
        state
            .aws
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .context("DescribeTable")?;
    }
    Ok(())
}

async fn check_s3(state: &AppState) -> anyhow::Result<()> {
    state
        .aws
        .s3
        .head_bucket()
        .bucket(&state.config.cards_bucket)
        .send()
        .await
        .context("HeadBucket")?;
    Ok(())
}

async fn check_sqs(state: &AppState) -> anyhow::Result<()> {
    for queue_url in state.config.queues.0.values() {
        state
            .aws
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .context("GetQueueAttributes")?;
    }
    Ok(())
}

/// The health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}
