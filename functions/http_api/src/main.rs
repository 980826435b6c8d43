//! The HTTP Lambda: every command and query route of the API, behind API Gateway's HTTP API.

use lambda_http::Error;
use platform::{FunctionConfig, HttpApiConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let config = HttpApiConfig::from_env()?;
    let state = api::AppState::from_env(config).await?;
    lambda_http::run(api::router(state)).await
}
