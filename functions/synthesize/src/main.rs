//! Saga step 1 (SQS-triggered): answers → stats and persona text → `rendering`.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let config = platform::Config::from_env()?;
    let saga = saga::Saga::new(config, platform::aws::AwsClients::from_env().await)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let saga = saga.clone();
        async move { Ok::<_, Error>(saga.synthesize_batch(event.payload).await) }
    }))
    .await
}
