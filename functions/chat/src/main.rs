//! The chat stream Lambda: the chat routes behind a Function URL in `RESPONSE_STREAM` mode, so
//! replies stream as Server-Sent Events (API Gateway's HTTP API cannot stream). Callers
//! authenticate with our access token, like on every route.

use chat::config::ChatConfig;
use lambda_http::Error;
use platform::{aws::AwsClients, FunctionConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    let config = ChatConfig::load(&aws).await?;
    let chat = api::chat::ChatApi::new(&config, &aws)?;
    lambda_http::run_with_streaming_response(api::chat_router(chat, &config.web)).await
}
