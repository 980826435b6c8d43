//! Creates the template's queues, table and bucket in the emulator (or any AWS endpoint), under
//! names that start with a prefix, so parallel tests each get their own.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use platform::aws::AwsClients;
use serde_yaml_ng::Value;

use crate::template::{referenced_resource, LocalResource, Template};

/// Every resource of the template that exists locally, by logical id.
pub type LocalResources = BTreeMap<String, LocalResource>;

/// The local name of resource `logical_id`: lower case, as bucket names require.
pub fn local_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}-{logical_id}").to_lowercase()
}

/// Creates (or finds) every queue, table and bucket of `template`.
pub async fn provision(
    template: &Template,
    aws: &AwsClients,
    prefix: &str,
) -> anyhow::Result<LocalResources> {
    let mut resources = LocalResources::new();
    create_queues(template, aws, prefix, &mut resources).await?;
    for (id, properties) in template.resources_of("AWS::DynamoDB::Table") {
        let name = local_name(prefix, &id);
        create_table(aws, &name, &properties)
            .await
            .with_context(|| format!("creating table {id}"))?;
        resources.insert(
            id,
            LocalResource {
                arn: format!("arn:aws:dynamodb:us-east-1:123456789012:table/{name}"),
                reference: name.clone(),
                name,
            },
        );
    }
    for (id, _) in template.resources_of("AWS::S3::Bucket") {
        let name = local_name(prefix, &id);
        create_bucket(aws, &name)
            .await
            .with_context(|| format!("creating bucket {id}"))?;
        resources.insert(
            id,
            LocalResource {
                arn: format!("arn:aws:s3:::{name}"),
                reference: name.clone(),
                name,
            },
        );
    }
    Ok(resources)
}

/// Queues in dependency order: a dead-letter queue before the queue that redrives to it.
async fn create_queues(
    template: &Template,
    aws: &AwsClients,
    prefix: &str,
    resources: &mut LocalResources,
) -> anyhow::Result<()> {
    let mut pending = template.resources_of("AWS::SQS::Queue");
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        for (id, properties) in pending {
            let dead_letter = properties
                .get("RedrivePolicy")
                .and_then(|p| p.get("deadLetterTargetArn"))
                .and_then(referenced_resource);
            if let Some(target) = &dead_letter {
                if !resources.contains_key(target) {
                    waiting.push((id, properties));
                    continue;
                }
            }
            let resource = create_queue(aws, prefix, &id, &properties, resources)
                .await
                .with_context(|| format!("creating queue {id}"))?;
            resources.insert(id, resource);
        }
        if waiting.len() == before {
            return Err(anyhow!("queues redrive to each other or to missing queues"));
        }
        pending = waiting;
    }
    Ok(())
}

async fn create_queue(
    aws: &AwsClients,
    prefix: &str,
    id: &str,
    properties: &Value,
    resources: &LocalResources,
) -> anyhow::Result<LocalResource> {
    let name = local_name(prefix, id);
    let mut request = aws.sqs.create_queue().queue_name(&name);
    for (property, attribute) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        (
            "MessageRetentionPeriod",
            QueueAttributeName::MessageRetentionPeriod,
        ),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        (
            "ReceiveMessageWaitTimeSeconds",
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
        ),
    ] {
        if let Some(value) = Template::int_property(properties, property) {
            request = request.attributes(attribute, value.to_string());
        }
    }
    if let Some(policy) = properties.get("RedrivePolicy") {
        let target = policy
            .get("deadLetterTargetArn")
            .and_then(referenced_resource)
            .and_then(|target| resources.get(&target))
            .context("RedrivePolicy names no known queue")?;
        let max_receive_count = policy
            .get("maxReceiveCount")
            .and_then(Value::as_i64)
            .context("RedrivePolicy has no maxReceiveCount")?;
        request = request.attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({
                "deadLetterTargetArn": target.arn,
                "maxReceiveCount": max_receive_count,
            })
            .to_string(),
        );
    }
    let url = request
        .send()
        .await?
        .queue_url
        .context("CreateQueue returned no URL")?;
    let arn = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .context("GetQueueAttributes returned no ARN")?;
    Ok(LocalResource {
        reference: url,
        arn,
        name,
    })
}

async fn create_table(aws: &AwsClients, name: &str, properties: &Value) -> anyhow::Result<()> {
    let mut request = aws
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for definition in sequence(properties, "AttributeDefinitions") {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(string(definition, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(string(
                    definition,
                    "AttributeType",
                )?))
                .build()?,
        );
    }
    for key in sequence(properties, "KeySchema") {
        request = request.key_schema(
            KeySchemaElement::builder()
                .attribute_name(string(key, "AttributeName")?)
                .key_type(KeyType::from(string(key, "KeyType")?))
                .build()?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(error) => return Err(error.into()),
    }
    if let Some(ttl) = properties.get("TimeToLiveSpecification") {
        if ttl.get("Enabled").and_then(Value::as_bool) == Some(true) {
            let outcome = aws
                .dynamodb
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(string(ttl, "AttributeName")?)
                        .enabled(true)
                        .build()?,
                )
                .send()
                .await;
            // A table that survived from an earlier run already has TTL enabled.
            if let Err(error) = outcome {
                if !format!("{error:?}").contains("already enabled") {
                    return Err(error.into());
                }
            }
        }
    }
    Ok(())
}

async fn create_bucket(aws: &AwsClients, name: &str) -> anyhow::Result<()> {
    match aws.s3.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you()) =>
        {
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

fn sequence<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
}

fn string<'a>(value: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("missing {key}"))
}

/// Stores the local stack's secrets in the emulator's Secrets Manager, one secret per template
/// parameter of `platform::secrets::CONTRACT` that has values in `secrets`, so the functions read
/// them exactly as in AWS (their `SECRET_ARNS`, one `BatchGetSecretValue`). The parameter then
/// resolves to the secret's ARN.
pub async fn provision_secrets(
    aws: &AwsClients,
    prefix: &str,
    secrets: &BTreeMap<String, String>,
    resources: &mut LocalResources,
) -> anyhow::Result<()> {
    for (parameter, variables) in platform::secrets::CONTRACT {
        let values: serde_json::Map<String, serde_json::Value> = variables
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), secrets.get(*name)?.clone().into())))
            .collect();
        if values.is_empty() {
            continue;
        }
        let name = local_name(prefix, parameter);
        let body = serde_json::Value::Object(values).to_string();
        let created = aws
            .secrets
            .create_secret()
            .name(&name)
            .secret_string(&body)
            .send()
            .await;
        let arn = match created {
            Ok(output) => output.arn().map(str::to_owned),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_exists_exception()) =>
            {
                aws.secrets
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(&body)
                    .send()
                    .await
                    .with_context(|| format!("updating secret {parameter}"))?
                    .arn()
                    .map(str::to_owned)
            }
            Err(error) => {
                return Err(
                    anyhow::Error::from(error).context(format!("creating secret {parameter}"))
                )
            }
        };
        let arn = arn.ok_or_else(|| anyhow!("secret {parameter} has no ARN"))?;
        resources.insert(
            (*parameter).to_owned(),
            LocalResource {
                reference: arn.clone(),
                arn,
                name,
            },
        );
    }
    // The local stack's database is the one it started, given by its secret: the template's
    // `existing` database mode (no VPC, Aurora or proxy to resolve).
    resources.insert(
        "DatabaseMode".to_owned(),
        LocalResource {
            reference: "existing".to_owned(),
            arn: String::new(),
            name: "DatabaseMode".to_owned(),
        },
    );
    Ok(())
}
