//! Data export (SQS-triggered): builds the account's JSON document and stores it for download.

use account::{ExportConfig, ExportWorker};
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::{aws::AwsClients, clock, FunctionConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    let config = ExportConfig::load(&aws).await?;
    let worker = ExportWorker::new(config, &aws, clock::system())?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, Error>(worker.handle_batch(event.payload).await) }
    }))
    .await
}
