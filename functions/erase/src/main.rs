//! Account erasure (SQS-triggered): removes everything an account owns. Ops also invoke it
//! directly after a database restore: `{"reapply_erasures": {"since": "<RFC 3339>"}}`.

use account::{EraseConfig, EraseWorker};
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::{aws::AwsClients, clock, FunctionConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    let config = EraseConfig::load(&aws).await?;
    let worker = EraseWorker::new(config, &aws, clock::system())?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let worker = worker.clone();
        async move {
            if event.payload.get("Records").is_some() {
                let batch: SqsEvent = serde_json::from_value(event.payload)?;
                return Ok::<_, Error>(serde_json::to_value(worker.handle_batch(batch).await)?);
            }
            Ok(worker.handle_command(event.payload).await?)
        }
    }))
    .await
}
