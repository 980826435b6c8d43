//! Database migrations (a CloudFormation custom resource, run by every deploy whose code changes
//! the migration set; ops may also invoke it with `{}`): the migrations embedded in this binary,
//! applied in order; a failure fails the deploy.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::{aws::AwsClients, schema::MigrateConfig, FunctionConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    platform::telemetry::init();
    let aws = AwsClients::from_env().await;
    // Not `?`: a configuration problem must still reach CloudFormation as a FAILED answer.
    let config = MigrateConfig::load(&aws)
        .await
        .map_err(|error| platform::telemetry::describe(&error));
    let http = reqwest::Client::new();
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let (config, http) = (config.clone(), http.clone());
        async move {
            let config = config.as_ref().map_err(String::as_str);
            Ok::<_, Error>(platform::schema::handle(config, &http, event.payload).await?)
        }
    }))
    .await
}
