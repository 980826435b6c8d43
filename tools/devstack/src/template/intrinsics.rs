//! The intrinsic functions of the template as the local stack resolves them — `!Ref`,
//! `!GetAtt`, `!Join`, `!Sub`, `!If` and the conditions — against the local resources.

use std::collections::BTreeMap;

use serde_yaml_ng::{value::TaggedValue, Value};

use super::{LocalResource, Template};

impl Template {
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
