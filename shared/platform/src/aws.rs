//! AWS clients, built once per cold start from the standard configuration chain.
//!
//! `AWS_ENDPOINT_URL` (honoured by the chain itself) points every client at the emulator; S3 then
//! needs path-style addressing because `bucket.localhost` does not resolve.

use aws_config::{BehaviorVersion, SdkConfig};

/// The AWS services the backend uses.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Read once per cold start: each function's own secrets.
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    /// Loads the default chain (environment, then the Lambda role) and builds the clients.
    pub async fn from_env() -> Self {
        let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Self::new(&sdk)
    }

    /// Builds the clients from an explicit SDK configuration (tests, the local stack).
    pub fn new(sdk: &SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
        }
    }

    /// A configuration for an emulator at `endpoint` with fixed dummy credentials.
    pub fn emulator_config(endpoint: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
                aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "emulator"),
            ))
            .build()
    }
}

/// The one DynamoDB table and a client for it: the handle every DynamoDB user takes.
#[derive(Clone, Debug)]
pub struct Table {
    pub client: aws_sdk_dynamodb::Client,
    pub name: String,
}

impl Table {
    pub fn new(client: &aws_sdk_dynamodb::Client, name: &str) -> Self {
        Self {
            client: client.clone(),
            name: name.to_owned(),
        }
    }
}
