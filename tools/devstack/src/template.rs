//! Reads `template.yaml`, so the local stack and the tests create exactly the queues, table and
//! bucket that SAM deploys, and give functions the environment the template gives them.
//!
//! Only what the local stack needs is understood: resources and their properties, parameter
//! defaults, `Globals.Function.Environment`, SQS event sources, and the intrinsic functions
//! `!Ref`, `!GetAtt`, `!Join` and `!Sub` as they appear in the template.

use std::{collections::BTreeMap, path::Path};

use anyhow::{anyhow, bail, Context};
use serde_yaml_ng::{value::TaggedValue, Mapping, Value};

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

    /// Resolves a property value (plain or intrinsic) to a string or a list of strings.
    pub fn resolve(
        &self,
        value: &Value,
        resources: &BTreeMap<String, LocalResource>,
    ) -> Option<Resolved> {
        match value {
            Value::String(s) => Some(Resolved::Scalar(s.clone())),
            Value::Number(n) => Some(Resolved::Scalar(n.to_string())),
            Value::Bool(b) => Some(Resolved::Scalar(b.to_string())),
            Value::Sequence(items) => items
                .iter()
                .map(|item| match self.resolve(item, resources)? {
                    Resolved::Scalar(s) => Some(s),
                    Resolved::List(_) => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(Resolved::List),
            Value::Tagged(tagged) => self.resolve_intrinsic(tagged, resources),
            Value::Mapping(map) if map.len() == 1 => {
                // The long forms: {"Ref": X}, {"Fn::GetAtt": ...}.
                let (key, inner) = map.iter().next()?;
                let tag = match key.as_str()? {
                    "Ref" => "Ref",
                    "Fn::GetAtt" => "GetAtt",
                    "Fn::Join" => "Join",
                    "Fn::Sub" => "Sub",
                    _ => return None,
                };
                self.resolve_intrinsic(
                    &TaggedValue {
                        tag: serde_yaml_ng::value::Tag::new(tag),
                        value: inner.clone(),
                    },
                    resources,
                )
            }
            _ => None,
        }
    }

    fn resolve_intrinsic(
        &self,
        tagged: &TaggedValue,
        resources: &BTreeMap<String, LocalResource>,
    ) -> Option<Resolved> {
        let tag = tagged.tag.to_string();
        match tag.trim_start_matches('!') {
            "Ref" => self.resolve_ref(tagged.value.as_str()?, resources),
            "If" => {
                let branches = tagged.value.as_sequence()?;
                let chosen = if self.condition(branches.first()?.as_str()?, resources)? {
                    branches.get(1)?
                } else {
                    branches.get(2)?
                };
                self.resolve(chosen, resources)
            }
            "GetAtt" => {
                let (id, attribute) = match &tagged.value {
                    Value::String(s) => s.split_once('.')?,
                    Value::Sequence(parts) if parts.len() == 2 => {
                        (parts[0].as_str()?, parts[1].as_str()?)
                    }
                    _ => return None,
                };
                let resource = resources.get(id)?;
                let value = match attribute {
                    "Arn" => &resource.arn,
                    "QueueName" | "Name" => &resource.name,
                    "QueueUrl" => &resource.reference,
                    _ => return None,
                };
                Some(Resolved::Scalar(value.clone()))
            }
            "Join" => {
                let parts = tagged.value.as_sequence()?;
                let separator = parts.first()?.as_str()?;
                let items = match self.resolve(parts.get(1)?, resources)? {
                    Resolved::List(items) => items,
                    Resolved::Scalar(item) => vec![item],
                };
                Some(Resolved::Scalar(items.join(separator)))
            }
            "Sub" => {
                let text = tagged.value.as_str()?;
                // Dynamic references are resolved by CloudFormation at deploy time only.
                if text.contains("{{resolve:") {
                    return None;
                }
                let mut out = String::new();
                let mut rest = text;
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..].find('}')? + start;
                    let name = &rest[start + 2..end];
                    let value = match name.split_once('.') {
                        Some((id, attribute)) => self.resolve_intrinsic(
                            &TaggedValue {
                                tag: serde_yaml_ng::value::Tag::new("GetAtt"),
                                value: Value::Sequence(vec![id.into(), attribute.into()]),
                            },
                            resources,
                        )?,
                        None => self.resolve_ref(name, resources)?,
                    };
                    match value {
                        Resolved::Scalar(v) => out.push_str(&v),
                        Resolved::List(_) => return None,
                    }
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                Some(Resolved::Scalar(out))
            }
            _ => None,
        }
    }

    /// The value of condition `name` of the template's `Conditions`, as the local stack sees it.
    pub fn condition(
        &self,
        name: &str,
        resources: &BTreeMap<String, LocalResource>,
    ) -> Option<bool> {
        let definition = self.root.get("Conditions")?.get(name)?;
        self.evaluate(definition, resources)
    }

    /// `Fn::Not`, `Fn::Equals`, `Fn::And`, `Fn::Or` and `Condition`, as the template uses them.
    fn evaluate(&self, value: &Value, resources: &BTreeMap<String, LocalResource>) -> Option<bool> {
        let Value::Tagged(tagged) = value else {
            return None;
        };
        let tag = tagged.tag.to_string();
        let operands = tagged.value.as_sequence();
        match tag.trim_start_matches('!') {
            "Not" => Some(!self.evaluate(operands?.first()?, resources)?),
            "And" => operands?
                .iter()
                .map(|v| self.evaluate(v, resources))
                .collect::<Option<Vec<_>>>()
                .map(|all| all.into_iter().all(|b| b)),
            "Or" => operands?
                .iter()
                .map(|v| self.evaluate(v, resources))
                .collect::<Option<Vec<_>>>()
                .map(|all| all.into_iter().any(|b| b)),
            "Equals" => {
                let operands = operands?;
                let text = |v: &Value| match self.resolve(v, resources)? {
                    Resolved::Scalar(s) => Some(s),
                    Resolved::List(items) => Some(items.join(",")),
                };
                Some(text(operands.first()?)? == text(operands.get(1)?)?)
            }
            "Condition" => self.condition(tagged.value.as_str()?, resources),
            _ => None,
        }
    }

    fn resolve_ref(
        &self,
        name: &str,
        resources: &BTreeMap<String, LocalResource>,
    ) -> Option<Resolved> {
        if let Some(resource) = resources.get(name) {
            return Some(Resolved::Scalar(resource.reference.clone()));
        }
        match name {
            "AWS::Region" => return Some(Resolved::Scalar("us-east-1".into())),
            "AWS::AccountId" => return Some(Resolved::Scalar("123456789012".into())),
            "AWS::StackName" => return Some(Resolved::Scalar("remirai-local".into())),
            _ => {}
        }
        let parameter = self.root.get("Parameters")?.get(name)?;
        let default = parameter.get("Default")?;
        let text = match default {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        if parameter.get("Type").and_then(Value::as_str) == Some("CommaDelimitedList") {
            Some(Resolved::List(
                text.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ))
        } else {
            Some(Resolved::Scalar(text))
        }
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

/// A resolved intrinsic.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Scalar(String),
    List(Vec<String>),
}

/// The logical id named by `!GetAtt X.Arn` / `!Ref X`.
pub fn referenced_resource(value: &Value) -> Option<String> {
    let tagged = match value {
        Value::Tagged(tagged) => tagged,
        _ => return None,
    };
    let text = match &tagged.value {
        Value::String(s) => s.clone(),
        Value::Sequence(parts) => parts.first()?.as_str()?.to_owned(),
        _ => return None,
    };
    Some(text.split('.').next()?.to_owned())
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
