//! The scheduled sweeper: republish the outbox, re-drive stuck jobs, fail dead-lettered ones,
//! prune; and, when ops invoke it so, re-render cards after a design change.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::{aws::AwsClients, FunctionConfig};
use saga::SweeperConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    let config = SweeperConfig::load(&aws).await?;
    let sweeper = saga::Sweeper::new(config, &aws)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let sweeper = sweeper.clone();
        async move { Ok::<_, Error>(sweeper.handle(event.payload).await?) }
    }))
    .await
}
