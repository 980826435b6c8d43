//! Reads `template.yaml`, so the local stack and the tests create exactly the queues, table and
//! bucket that SAM deploys, and give functions the environment the template gives them.
//!
//! Only what the local stack needs is understood: resources and their properties, parameter
//! defaults, `Globals.Function.Environment`, SQS event sources, and the intrinsic functions
//! `!Ref`, `!GetAtt`, `!Join` and `!Sub` as they appear in the template.

mod intrinsics;

use std::{collections::BTreeMap, path::Path};

use anyhow::{anyhow, bail, Context};
use serde_yaml_ng::{Mapping, Value};

pub use intrinsics::{referenced_resource, Resolved};

/// The parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

/// An SQS event source mapping declared on a function.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsEventSource {
    /// Logical id of the function.
    pub function: String,
    /// Logical id of the queue.
    pub queue: String,
    /// Records per batch (SAM's default for SQS is 10).
    pub batch_size: i32,
    /// Whether the function reports partial batch failures.
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`, when set.
    pub maximum_concurrency: Option<u32>,
    /// The function's `Timeout` (or the Globals' one; Lambda's default is 3 s).
    pub timeout_seconds: u64,
}

/// What an intrinsic function resolves to for one local resource.
#[derive(Debug, Clone, Default)]
pub struct LocalResource {
    /// What `!Ref` returns (queue URL, table name, bucket name).
    pub reference: String,
    /// `!GetAtt X.Arn`.
    pub arn: String,
    /// `!GetAtt X.QueueName` and the like.
    pub name: String,
}

impl Template {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let root: Value = serde_yaml_ng::from_str(text).context("parsing the SAM template")?;
        if !root.get("Resources").is_some_and(Value::is_mapping) {
            bail!("the template has no Resources section");
        }
        Ok(Self { root })
    }

    /// Logical ids and properties of every resource of `kind`, in the template's order.
    pub fn resources_of(&self, kind: &str) -> Vec<(String, Value)> {
        let Some(resources) = self.root.get("Resources").and_then(Value::as_mapping) else {
            return Vec::new();
        };
        resources
            .iter()
            .filter(|(_, resource)| resource.get("Type").and_then(Value::as_str) == Some(kind))
            .filter_map(|(id, resource)| {
                Some((
                    id.as_str()?.to_owned(),
                    resource.get("Properties").cloned().unwrap_or(Value::Null),
                ))
            })
            .collect()
    }

    /// Every SQS event source of every function.
    pub fn sqs_event_sources(&self) -> anyhow::Result<Vec<SqsEventSource>> {
        let mut sources = Vec::new();
        let global_timeout = self
            .root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Timeout"))
            .and_then(Value::as_u64);
        for (function, properties) in self.resources_of("AWS::Serverless::Function") {
            let timeout_seconds = properties
                .get("Timeout")
                .and_then(Value::as_u64)
                .or(global_timeout)
                .unwrap_or(3);
            let Some(events) = properties.get("Events").and_then(Value::as_mapping) else {
                continue;
            };
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) != Some("SQS") {
                    continue;
                }
                let props = event.get("Properties").cloned().unwrap_or(Value::Null);
                let queue = props
                    .get("Queue")
                    .and_then(referenced_resource)
                    .ok_or_else(|| anyhow!("SQS event of {function} has no !GetAtt Queue.Arn"))?;
                sources.push(SqsEventSource {
                    function: function.clone(),
                    queue,
                    batch_size: props.get("BatchSize").and_then(Value::as_i64).unwrap_or(10) as i32,
                    report_batch_item_failures: props
                        .get("FunctionResponseTypes")
                        .and_then(Value::as_sequence)
                        .is_some_and(|types| {
                            types
                                .iter()
                                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                        }),
                    maximum_concurrency: props
                        .get("ScalingConfig")
                        .and_then(|c| c.get("MaximumConcurrency"))
                        .and_then(Value::as_u64)
                        .map(|n| n as u32),
                    timeout_seconds,
                });
            }
        }
        Ok(sources)
    }

    /// The logical ids of functions that serve the HTTP API.
    pub fn http_functions(&self) -> Vec<String> {
        self.resources_of("AWS::Serverless::Function")
            .into_iter()
            .filter(|(_, properties)| {
                properties
                    .get("Events")
                    .and_then(Value::as_mapping)
                    .is_some_and(|events| {
                        events
                            .values()
                            .any(|e| e.get("Type").and_then(Value::as_str) == Some("HttpApi"))
                    })
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// The raw (unresolved) value of `function`'s own variable `name`.
    pub fn function_variable_value(&self, function: &str, name: &str) -> Option<Value> {
        self.resource_property(function, "Environment")?
            .get("Variables")?
            .get(name)
            .cloned()
    }

    /// The raw value of property `property` of resource `logical_id`.
    pub fn resource_property(&self, logical_id: &str, property: &str) -> Option<Value> {
        self.root
            .get("Resources")?
            .get(logical_id)?
            .get("Properties")?
            .get(property)
            .cloned()
    }

    /// The names of every environment variable `function` is given (the Globals' and its own),
    /// resolvable locally or not.
    pub fn function_variable_names(&self, function: &str) -> std::collections::BTreeSet<String> {
        let variables = |root: Option<&Value>| {
            root.and_then(|f| f.get("Environment"))
                .and_then(|e| e.get("Variables"))
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let globals = self.root.get("Globals").and_then(|g| g.get("Function"));
        let own = self
            .root
            .get("Resources")
            .and_then(|r| r.get(function))
            .and_then(|f| f.get("Properties"));
        variables(globals)
            .into_iter()
            .chain(variables(own))
            .collect()
    }

    /// The environment `function` gets: `Globals.Function.Environment.Variables` overlaid with
    /// its own, resolved against the local resources. Variables that cannot be resolved locally
    /// (a Secrets Manager reference, a parameter without a default) are left out; the local stack
    /// supplies those itself.
    pub fn function_environment(
        &self,
        function: &str,
        resources: &BTreeMap<String, LocalResource>,
    ) -> BTreeMap<String, String> {
        let globals = self
            .root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        let own = self
            .root
            .get("Resources")
            .and_then(|r| r.get(function))
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        let mut environment = BTreeMap::new();
        for (name, value) in globals.iter().chain(own.iter()) {
            let Some(name) = name.as_str() else { continue };
            match self.resolve(value, resources) {
                Some(Resolved::Scalar(value)) => {
                    environment.insert(name.to_owned(), value);
                }
                _ => {
                    environment.remove(name);
                }
            }
        }
        environment
    }

    /// Looks up a plain (non-intrinsic) property as an integer.
    pub fn int_property(properties: &Value, name: &str) -> Option<i64> {
        properties.get(name).and_then(Value::as_i64)
    }

    /// A property mapping, if present.
    pub fn mapping_property<'a>(properties: &'a Value, name: &str) -> Option<&'a Mapping> {
        properties.get(name).and_then(Value::as_mapping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  FrontendUrl: { Type: String, Default: "http://localhost:5173" }
  AllowedOrigins: { Type: CommaDelimitedList, Default: "http://a.test, http://b.test" }
  Secret: { Type: String }
Globals:
  Function:
    Environment:
      Variables:
        QUEUE_URL: !Ref Jobs
        QUEUE_ARN: !GetAtt Jobs.Arn
        FRONTEND_URL: !Ref FrontendUrl
        ORIGINS: !Join [",", !Ref AllowedOrigins]
        DATABASE_URL: !Sub "{{resolve:secretsmanager:${Secret}:SecretString:url}}"
        LINK: !Sub "${FrontendUrl}/p"
        SECRET: !Ref Secret
Resources:
  Jobs:
    Type: AWS::SQS::Queue
    Properties: { VisibilityTimeout: 60 }
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Environment: { Variables: { OWN: plain } }
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Jobs.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: { MaximumConcurrency: 3 }
"#;

    fn resources() -> BTreeMap<String, LocalResource> {
        BTreeMap::from([(
            "Jobs".to_owned(),
            LocalResource {
                reference: "http://sqs/jobs".into(),
                arn: "arn:aws:sqs:us-east-1:123456789012:jobs".into(),
                name: "jobs".into(),
            },
        )])
    }

    #[test]
    fn function_environment_resolves_intrinsics_and_skips_deploy_time_secrets() {
        let template = Template::parse(TEMPLATE).unwrap();
        let env = template.function_environment("Worker", &resources());
        assert_eq!(env["QUEUE_URL"], "http://sqs/jobs");
        assert_eq!(env["QUEUE_ARN"], "arn:aws:sqs:us-east-1:123456789012:jobs");
        assert_eq!(env["FRONTEND_URL"], "http://localhost:5173");
        assert_eq!(env["ORIGINS"], "http://a.test,http://b.test");
        assert_eq!(env["LINK"], "http://localhost:5173/p");
        assert_eq!(env["OWN"], "plain");
        assert!(!env.contains_key("DATABASE_URL"));
        assert!(!env.contains_key("SECRET"));
    }

    #[test]
    fn sqs_event_sources_carry_batch_settings() {
        let template = Template::parse(TEMPLATE).unwrap();
        assert_eq!(
            template.sqs_event_sources().unwrap(),
            [SqsEventSource {
                function: "Worker".into(),
                queue: "Jobs".into(),
                batch_size: 5,
                report_batch_item_failures: true,
                maximum_concurrency: Some(3),
                timeout_seconds: 3,
            }]
        );
    }
}
