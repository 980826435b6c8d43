//! The HTTP Lambda: every command and query route of the API, behind API Gateway's HTTP API.

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let config = platform::Config::from_env()?;
    let state = api::AppState::from_env(config).await?;
    lambda_http::run(api::router(state)).await
}
