//! Secrets, read by each function at cold start from Secrets Manager — never from its
//! configuration, where `lambda:GetFunctionConfiguration` would show them.
//!
//! A function's `SECRET_ARNS` variable lists the ARNs of the secrets it may read (its IAM role
//! may read exactly those); one `BatchGetSecretValue` call fetches them all. Each secret is a JSON
//! object whose keys are the variable names it provides (see [`CONTRACT`]), for example
//! `{"ANSWER_KEYS": "a2026a:…"}`. The database secret may instead have the shape RDS gives a
//! managed secret (`username`, `password`, `host`, `port`, `dbname`), from which `DATABASE_URL`
//! is built.

use std::{collections::BTreeMap, time::Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// The variable listing a function's secret ARNs.
pub const ARNS_VARIABLE: &str = "SECRET_ARNS";

/// Which secret (by its `template.yaml` logical id: a parameter or a resource) provides which
/// variables. No function's configuration may hold these variables; a test checks the template.
///
/// The database secret is either `{"DATABASE_URL": …}` or an RDS-managed secret (`username`,
/// `password`, with `DATABASE_HOST` and `DATABASE_NAME` as plain variables). The key secrets
/// are made by the stack with a generated seed (`IDENTITY_SEED`, …) from which the keys are
/// derived; an explicit key list next to the seed takes over for sealing (rotation).
pub const CONTRACT: &[(&str, &[&str])] = &[
    (
        "DatabaseSecretArn",
        &["DATABASE_URL", "username", "password"],
    ),
    (
        "IdentityKeys",
        &["JWT_SIGNING_KEYS", "ADDRESS_HASH_KEY", "IDENTITY_SEED"],
    ),
    ("AnswerKeys", &["ANSWER_KEYS", "ANSWER_SEED"]),
    ("MessageKeys", &["MESSAGE_KEYS", "MESSAGE_SEED"]),
    ("LlmApiKeySecretArn", &["LLM_API_KEY"]),
    ("OpenAiApiKeySecretArn", &["OPENAI_API_KEY"]),
];

/// Every variable some secret provides.
pub fn secret_variables() -> impl Iterator<Item = &'static str> {
    CONTRACT
        .iter()
        .flat_map(|(_, variables)| variables.iter().copied())
}

/// The variables in the secrets `arns` names, fetched in one round trip. Fails naming the
/// secret (never a value) when one cannot be read or parsed.
pub async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    arns: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut variables = BTreeMap::new();
    if arns.is_empty() {
        return Ok(variables);
    }
    let started = Instant::now();
    let output = client
        .batch_get_secret_value()
        .set_secret_id_list(Some(arns.to_vec()))
        .send()
        .await
        .context("reading this function's secrets")?;
    if let Some(error) = output.errors().first() {
        bail!(
            "secret {} could not be read ({})",
            error.secret_id().unwrap_or("?"),
            error.error_code().unwrap_or("unknown error")
        );
    }
    let values = output.secret_values();
    if values.len() != arns.len() {
        bail!("asked for {} secrets, got {}", arns.len(), values.len());
    }
    for entry in values {
        let name = entry.arn().or(entry.name()).unwrap_or("?");
        let text = entry
            .secret_string()
            .with_context(|| format!("secret {name} has no string value"))?;
        variables.extend(parse(text).with_context(|| format!("secret {name}"))?);
    }
    tracing::info!(
        secrets = arns.len(),
        fetch_ms = started.elapsed().as_secs_f64() * 1000.0,
        "secrets read"
    );
    Ok(variables)
}

/// The variables of one secret string (see the module docs).
pub fn parse(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        bail!("is not a JSON object");
    };
    let string = |key: &str| object.get(key).and_then(Value::as_str);
    if let (Some(user), Some(password), Some(host), Some(database)) = (
        string("username"),
        string("password"),
        string("host"),
        string("dbname"),
    ) {
        let port = object
            .get("port")
            .map(|p| p.to_string().trim_matches('"').to_owned())
            .unwrap_or_else(|| "5432".into());
        let url = format!(
            "postgres://{}:{}@{host}:{port}/{}?sslmode=require",
            encode(user),
            encode(password),
            encode(database)
        );
        return Ok(BTreeMap::from([("DATABASE_URL".to_owned(), url)]));
    }
    object
        .iter()
        .map(|(key, value)| match value {
            Value::String(value) => Ok((key.clone(), value.clone())),
            _ => bail!("key {key} is not a string"),
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL user info).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_an_object_of_variables_or_an_rds_managed_database_secret() {
        let keys = parse(r#"{"JWT_SIGNING_KEYS": "k:AAAA", "ADDRESS_HASH_KEY": "BBBB"}"#).unwrap();
        assert_eq!(keys["JWT_SIGNING_KEYS"], "k:AAAA");
        let rds = parse(
            r#"{"engine": "postgres", "username": "app", "password": "p@ss:w/rd", "host": "db.example", "port": 5432, "dbname": "remirai"}"#,
        )
        .unwrap();
        assert_eq!(
            rds["DATABASE_URL"],
            "postgres://app:p%40ss%3Aw%2Frd@db.example:5432/remirai?sslmode=require"
        );
        assert!(parse("plain text").is_err());
        assert!(parse(r#"{"ANSWER_KEYS": 7}"#).is_err());
    }
}
