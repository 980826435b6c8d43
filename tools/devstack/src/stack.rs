//! Starting and stopping the local stack.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use anyhow::{bail, Context};
use api::HttpApiConfig;
use platform::{aws::AwsClients, ConfigError, FunctionConfig};
use tokio_util::sync::CancellationToken;

use crate::{
    emulator::Emulator,
    poller::{Poller, SqsHandler},
    postgres::TempPostgres,
    provision::{provision, provision_secrets, LocalResources},
    template::Template,
};

/// PostgreSQL and the AWS endpoint: started by us, or taken from `DATABASE_URL` /
/// `AWS_ENDPOINT_URL`.
pub struct Services {
    postgres: Option<TempPostgres>,
    emulator: Option<Emulator>,
    /// The database the stack uses.
    pub database_url: String,
    pub aws: AwsClients,
}

impl Services {
    /// Starts whatever the environment does not provide. Blocking parts run off the runtime.
    pub async fn start() -> anyhow::Result<Self> {
        let external_database = std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty());
        let external_aws = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty());

        let postgres = match external_database {
            Some(_) => None,
            None => Some(tokio::task::spawn_blocking(TempPostgres::start).await??),
        };
        let emulator = if external_aws {
            None
        } else {
            match tokio::task::spawn_blocking(Emulator::start).await? {
                Ok(emulator) => Some(emulator),
                Err(error) => {
                    if let Some(postgres) = &postgres {
                        postgres.stop();
                    }
                    return Err(error);
                }
            }
        };
        let services = Self {
            database_url: match (&external_database, &postgres) {
                (Some(url), _) => url.clone(),
                (None, Some(postgres)) => postgres.url_of("remirai"),
                (None, None) => unreachable!("a database is either given or started"),
            },
            aws: match &emulator {
                Some(emulator) => AwsClients::new(&AwsClients::emulator_config(&emulator.endpoint)),
                None => AwsClients::from_env().await,
            },
            postgres,
            emulator,
        };
        if let Some(postgres) = &services.postgres {
            if let Err(error) = create_database(&postgres.admin_url, "remirai").await {
                services.stop();
                return Err(error);
            }
        }
        Ok(services)
    }

    /// The emulator's endpoint when we started one.
    pub fn emulator_endpoint(&self) -> Option<&str> {
        self.emulator.as_ref().map(|e| e.endpoint.as_str())
    }

    /// Stops the processes we started.
    pub fn stop(&self) {
        if let Some(emulator) = &self.emulator {
            emulator.stop();
        }
        if let Some(postgres) = &self.postgres {
            postgres.stop();
        }
    }
}

/// `CREATE DATABASE name` on the server of `admin_url`, unless it exists.
pub async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    create_database_from(admin_url, name, None).await
}

/// `CREATE DATABASE name [TEMPLATE template]`, tolerating an existing database.
pub async fn create_database_from(
    admin_url: &str,
    name: &str,
    template: Option<&str>,
) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL as admin")?;
    let driver = tokio::spawn(connection);
    let statement = match template {
        Some(template) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
        None => format!("CREATE DATABASE \"{name}\""),
    };
    let outcome = client.batch_execute(&statement).await;
    drop(client);
    let _ = driver.await;
    match outcome {
        Ok(()) => Ok(()),
        Err(error)
            if error.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) =>
        {
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("creating database {name}")),
    }
}

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
    secrets
}

/// The template's SQS-triggered functions, run by the local pollers exactly as their Lambda
/// mains run them.
pub fn saga_workers(saga: &saga::Saga) -> Workers {
    let mut workers = Workers::new();
    let synthesize = saga.clone();
    workers.insert(
        "SynthesizeFunction".into(),
        Arc::new(move |event| {
            let saga = synthesize.clone();
            Box::pin(async move { saga.synthesize_batch(event).await })
        }),
    );
    let render = saga.clone();
    workers.insert(
        "RenderCardFunction".into(),
        Arc::new(move |event| {
            let saga = render.clone();
            Box::pin(async move { saga.render_batch(event).await })
        }),
    );
    workers
}

/// The chat memory function, run by the local pollers as its Lambda main runs it.
pub fn chat_workers(memory: &chat::memory::MemoryWorker) -> Workers {
    let memory = memory.clone();
    let handler: SqsHandler = Arc::new(move |event| {
        let memory = memory.clone();
        Box::pin(async move { memory.handle_batch(event).await })
    });
    Workers::from([("ChatMemoryFunction".to_owned(), handler)])
}

/// Runs the sweeper every `every` until `shutdown` (the template schedules it every minute; the
/// local stack runs it more often so a lost message is noticed quickly).
pub async fn sweeper_loop(
    saga: saga::Saga,
    settings: saga::sweeper::SweepSettings,
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {
                if let Err(error) = saga.sweep(settings).await {
                    tracing::warn!(error = format!("{error:#}"), "sweep failed");
                }
            }
        }
    }
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

/// The worker handlers the local stack can run, by the function's logical id in the template.
pub type Workers = BTreeMap<String, SqsHandler>;

/// One poller per SQS event source of the template. Every SQS-triggered function must have a
/// handler in `workers`, so a function added to the template cannot silently go unrun locally.
pub fn pollers(
    template: &Template,
    resources: &LocalResources,
    workers: &Workers,
) -> anyhow::Result<Vec<Poller>> {
    template
        .sqs_event_sources()?
        .into_iter()
        .map(|source| {
            let Some(handler) = workers.get(&source.function) else {
                bail!(
                    "template.yaml declares the SQS-triggered function {} but the local stack has no handler for it",
                    source.function
                );
            };
            let queue = resources
                .get(&source.queue)
                .with_context(|| format!("queue {} was not provisioned", source.queue))?;
            Ok(Poller {
                queue_url: queue.reference.clone(),
                queue_arn: queue.arn.clone(),
                handler: Arc::clone(handler),
                source,
            })
        })
        .collect()
}

/// Options of [`run`].
pub struct StackOptions {
    pub address: SocketAddr,
    /// Prefix of queue, table and bucket names.
    pub prefix: String,
    /// Variables that override the template's environment (the process environment).
    pub overrides: BTreeMap<String, String>,
    /// No banner (the demo prints its own).
    pub quiet: bool,
}

/// A started stack: the API on `address`, pollers and the sweeper running.
pub struct RunningStack {
    pub address: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    services: Services,
}

impl RunningStack {
    /// Stops serving and polling, then PostgreSQL and the emulator if we started them.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let outcome = self.task.await;
        self.services.stop();
        outcome?
    }
}

/// `devstack` (and the load benchmark's stack process): the stack configured by the process
/// environment (`PORT`, default 3000; `DEVSTACK_PREFIX`; every configuration variable), until
/// SIGINT, SIGTERM or SIGHUP.
pub async fn run_from_env() -> anyhow::Result<()> {
    // If whoever started us dies, we get SIGTERM and shut down cleanly (and our children with
    // us), instead of lingering as an orphan.
    // SAFETY: prctl on our own process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
    }
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| anyhow::anyhow!("PORT must be a port number"))?,
        Err(_) => 3000,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    run(
        StackOptions {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            prefix: std::env::var("DEVSTACK_PREFIX").unwrap_or_else(|_| "remirai".into()),
            overrides: std::env::vars().collect(),
            quiet: false,
        },
        shutdown,
    )
    .await
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        _ = hangup.recv() => {}
    }
    eprintln!("devstack: stopping");
    shutdown.cancel();
}

/// Runs the stack until `shutdown` fires; stops everything it started before returning.
pub async fn run(options: StackOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let stack = start(options, shutdown.clone()).await?;
    shutdown.cancelled().await;
    stack.stop().await
}

/// Starts the services, migrates, provisions, and serves in the background.
pub async fn start(
    options: StackOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningStack> {
    let services = Services::start().await?;
    match launch(&services, options, shutdown.clone()).await {
        Ok((address, task)) => Ok(RunningStack {
            address,
            shutdown,
            task,
            services,
        }),
        Err(error) => {
            services.stop();
            Err(error)
        }
    }
}

async fn launch(
    services: &Services,
    options: StackOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let template = Template::parse(crate::TEMPLATE)?;
    let applied = platform::db::migrate(&services.database_url).await?;
    tracing::info!(count = applied.len(), "migrations applied");
    let mut resources = provision(&template, &services.aws, &options.prefix).await?;

    let mut overrides = options.overrides;
    overrides.insert("DATABASE_URL".into(), services.database_url.clone());
    let secrets = local_defaults(&mut overrides);
    provision_secrets(&services.aws, &options.prefix, &secrets, &mut resources).await?;
    let http_function = template
        .http_functions()
        .into_iter()
        .next()
        .context("template.yaml declares no HTTP function")?;
    let config: HttpApiConfig = function_config(
        &template,
        &http_function,
        &resources,
        &overrides,
        &services.aws,
    )
    .await?;
    let state = api::AppState::new(config, services.aws.clone())?;
    let saga = local_saga(&template, &resources, &overrides, &services.aws).await?;
    let mut workers = saga_workers(&saga);
    workers.extend(chat_workers(
        &local_chat_memory(&template, &resources, &overrides, &services.aws).await?,
    ));
    let pollers = pollers(&template, &resources, &workers)?;

    let listener = tokio::net::TcpListener::bind(options.address)
        .await
        .with_context(|| format!("binding {}", options.address))?;
    let address = listener.local_addr()?;
    if !options.quiet {
        eprintln!(
            "\nRe:MirAI local stack\n  API        http://{address}/v1  (try /v1/health/ready)\n  database   {}\n  AWS        {}\n  pollers    {}\nCtrl-C stops everything.\n",
            redact_password(&services.database_url),
            services.emulator_endpoint().unwrap_or("AWS_ENDPOINT_URL"),
            pollers.iter().map(|p| p.source.function.clone()).collect::<Vec<_>>().join(", "),
        );
    }
    let router = api::local_router(state, |name| std::env::var(name).ok())?;
    let sqs = services.aws.sqs.clone();
    let task = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for poller in pollers {
            tasks.spawn(poller.run(sqs.clone(), shutdown.clone()));
        }
        // Lambda writes its metrics after each invocation; one long-lived process, every minute.
        let metrics_stop = shutdown.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = metrics_stop.cancelled() => {}
                _ = platform::metrics::flush_every(std::time::Duration::from_secs(60)) => {}
            }
        });
        tasks.spawn(sweeper_loop(
            saga.clone(),
            saga::sweeper::SweepSettings {
                outbox_after: std::time::Duration::from_secs(5),
                stuck_after: std::time::Duration::from_secs(120),
            },
            std::time::Duration::from_secs(10),
            shutdown.clone(),
        ));
        // No Nagle delay: a streamed chat reply's events are small writes that must go out as
        // they come (otherwise each waits for the client's delayed ACK, ~40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        served.map_err(anyhow::Error::from)
    });
    Ok((address, task))
}

fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
