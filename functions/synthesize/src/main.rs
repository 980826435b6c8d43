//! Saga step 1 (SQS-triggered): answers → stats and persona text → `rendering`.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::{aws::AwsClients, FunctionConfig};
use saga::SynthesizeConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    let config = SynthesizeConfig::load(&aws).await?;
    let worker = saga::SynthesizeWorker::new(config, &aws)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, Error>(worker.handle_batch(event.payload).await) }
    }))
    .await
}
