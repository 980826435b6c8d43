//! The functions' configuration for a local run: made-up deploy-time values and secrets, and
//! each function configured from the template as its Lambda main configures itself.

use std::collections::BTreeMap;

use platform::{aws::AwsClients, ConfigError, FunctionConfig};

use crate::{provision::LocalResources, template::Template};

/// Values the template takes from Secrets Manager or required parameters at deploy time, made up
/// for a local run. Secret variables (`platform::secrets::CONTRACT`) move out of `overrides` into
/// the returned map — fresh random keys on every start where none is given (so local tokens die
/// with the stack) — for the emulator's Secrets Manager, from which the functions read them as in
/// AWS. `overrides` keeps the rest, plus a placeholder Google client id and a pool sized for one
/// process serving every route (a Lambda instance serves one request at a time; the local stack
/// serves them all). Anything already given wins.
pub fn local_defaults(overrides: &mut BTreeMap<String, String>) -> BTreeMap<String, String> {
    use base64::Engine;
    let random_key = || {
        let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|id| *id.as_bytes())
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let mut secrets: BTreeMap<String, String> = platform::secrets::secret_variables()
        .filter_map(|name| Some((name.to_owned(), overrides.remove(name)?)))
        .collect();
    secrets
        .entry("JWT_SIGNING_KEYS".into())
        .or_insert_with(|| format!("local:{}", random_key()));
    secrets
        .entry("ADDRESS_HASH_KEY".into())
        .or_insert_with(random_key);
    secrets
        .entry("ANSWER_KEYS".into())
        .or_insert_with(|| format!("local:{}", random_key()));
    secrets
        .entry("MESSAGE_KEYS".into())
        .or_insert_with(|| format!("local:{}", random_key()));
    overrides
        .entry("GOOGLE_CLIENT_ID".into())
        .or_insert_with(|| "local-dev.apps.googleusercontent.com".into());
    overrides
        .entry("DB_POOL_SIZE".into())
        .or_insert_with(|| "32".into());
    // A frontend in development runs on Vite's port; the template's defaults are for AWS.
    overrides
        .entry("FRONTEND_URL".into())
        .or_insert_with(|| "http://localhost:5173".into());
    overrides
        .entry("ALLOWED_ORIGINS".into())
        .or_insert_with(|| "http://localhost:5173".into());
    secrets
}

/// The configuration `function` gets from the template — its variables, and the secrets its
/// `SECRET_ARNS` names, read from Secrets Manager like the Lambda main does — with `overrides`
/// taking precedence.
pub async fn function_config<C: FunctionConfig>(
    template: &Template,
    function: &str,
    resources: &LocalResources,
    overrides: &BTreeMap<String, String>,
    aws: &AwsClients,
) -> anyhow::Result<C> {
    let environment = template.function_environment(function, resources);
    let arns: Vec<String> = environment
        .get(platform::secrets::ARNS_VARIABLE)
        .map(|arns| {
            arns.split(',')
                .map(str::trim)
                .filter(|arn| !arn.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let secrets = platform::secrets::fetch(&aws.secrets, &arns).await?;
    let config = C::from_lookup(|name| {
        overrides
            .get(name)
            .or_else(|| secrets.get(name))
            .or_else(|| environment.get(name))
            .cloned()
    })
    .map_err(|error: ConfigError| anyhow::anyhow!("{function}: {error}"))?;
    Ok(config)
}

/// The three saga functions, each configured as the template configures it.
pub async fn local_saga(
    template: &Template,
    resources: &LocalResources,
    overrides: &BTreeMap<String, String>,
    aws: &AwsClients,
) -> anyhow::Result<saga::Saga> {
    saga::Saga::new(
        function_config(template, "SynthesizeFunction", resources, overrides, aws).await?,
        function_config(template, "RenderCardFunction", resources, overrides, aws).await?,
        function_config(template, "SweeperFunction", resources, overrides, aws).await?,
        aws,
    )
}

/// The chat memory function, configured as the template configures it.
pub async fn local_chat_memory(
    template: &Template,
    resources: &LocalResources,
    overrides: &BTreeMap<String, String>,
    aws: &AwsClients,
) -> anyhow::Result<chat::memory::MemoryWorker> {
    chat::memory::MemoryWorker::new(
        function_config(template, "ChatMemoryFunction", resources, overrides, aws).await?,
        aws,
    )
}

/// The export and erase functions, configured as the template configures them.
pub async fn local_account(
    template: &Template,
    resources: &LocalResources,
    overrides: &BTreeMap<String, String>,
    aws: &AwsClients,
) -> anyhow::Result<(account::ExportWorker, account::EraseWorker)> {
    let clock = platform::clock::system();
    Ok((
        account::ExportWorker::new(
            function_config(template, "ExportFunction", resources, overrides, aws).await?,
            aws,
            clock.clone(),
        )?,
        account::EraseWorker::new(
            function_config(template, "EraseFunction", resources, overrides, aws).await?,
            aws,
            clock,
        )?,
    ))
}

/// Every queue worker besides the saga's (chat memory, export, erase), configured as the
/// template configures them, as the local pollers run them.
pub async fn local_other_workers(
    template: &Template,
    resources: &LocalResources,
    overrides: &BTreeMap<String, String>,
    aws: &AwsClients,
) -> anyhow::Result<super::Workers> {
    let mut workers =
        super::chat_workers(&local_chat_memory(template, resources, overrides, aws).await?);
    let (export, erase) = local_account(template, resources, overrides, aws).await?;
    workers.extend(super::account_workers(&export, &erase));
    Ok(workers)
}
