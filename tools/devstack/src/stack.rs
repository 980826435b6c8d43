//! Starting and stopping the local stack.

mod configuration;
mod services;
mod workers;

use std::{collections::BTreeMap, net::SocketAddr};

use anyhow::Context;
use api::HttpApiConfig;
use tokio_util::sync::CancellationToken;

use crate::{
    provision::{provision, provision_secrets},
    template::Template,
};

pub use configuration::{
    function_config, local_account, local_chat_memory, local_defaults, local_other_workers,
    local_saga,
};
pub use services::{create_database, create_database_from, Services};
pub use workers::{account_workers, chat_workers, pollers, saga_workers, sweeper_loop, Workers};

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
    workers.extend(local_other_workers(&template, &resources, &overrides, &services.aws).await?);
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
