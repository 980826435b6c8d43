//! Chat memory (SQS-triggered): every tenth exchange, fold the older turns into the owner's
//! memory note.

use aws_lambda_events::sqs::SqsEvent;
use chat::config::ChatMemoryConfig;
use chat::memory::MemoryWorker;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::{aws::AwsClients, FunctionConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    let config = ChatMemoryConfig::load(&aws).await?;
    let worker = MemoryWorker::new(config, &aws)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, Error>(worker.handle_batch(event.payload).await) }
    }))
    .await
}
