//! Saga step 2 (SQS-triggered): persona → three PNG cards in S3 → `ready`.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::{aws::AwsClients, FunctionConfig};
use saga::RenderConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    let config = RenderConfig::load(&aws).await?;
    let worker = saga::RenderWorker::new(config, &aws)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, Error>(worker.handle_batch(event.payload).await) }
    }))
    .await
}
