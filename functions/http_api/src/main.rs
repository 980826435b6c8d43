//! The HTTP Lambda: every command and query route of the API, behind API Gateway's HTTP API.

use api::HttpApiConfig;
use lambda_http::Error;
use platform::{aws::AwsClients, FunctionConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    let config = HttpApiConfig::load(&aws).await?;
    let state = api::AppState::new(config, aws)?;
    lambda_http::run(api::router(state)).await
}
