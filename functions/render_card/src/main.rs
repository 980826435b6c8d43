//! Saga step 2 (SQS-triggered): persona → three PNG cards in S3 → `ready`.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let config = platform::Config::from_env()?;
    let saga = saga::Saga::new(config, platform::aws::AwsClients::from_env().await)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let saga = saga.clone();
        async move { Ok::<_, Error>(saga.render_batch(event.payload).await) }
    }))
    .await
}
