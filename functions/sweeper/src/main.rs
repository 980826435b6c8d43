//! The scheduled sweeper: republish the outbox, re-drive stuck jobs, fail dead-lettered ones.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::{aws::AwsClients, FunctionConfig, SweeperConfig};
use saga::sweeper::SweepSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    let config = SweeperConfig::load(&aws).await?;
    let sweeper = saga::Sweeper::new(config, &aws)?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| {
        let sweeper = sweeper.clone();
        async move {
            let report = sweeper.sweep(SweepSettings::default()).await?;
            Ok::<_, Error>(serde_json::json!({
                "republished": report.republished,
                "redriven": report.redriven,
                "dead_lettered": report.dead_lettered,
                "pruned_refresh_tokens": report.pruned_refresh_tokens,
                "pruned_outbox_rows": report.pruned_outbox_rows,
            }))
        }
    }))
    .await
}
