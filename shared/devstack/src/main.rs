//! `devstack`: the local stack (default); `devstack demo [folder]` to see the whole product run
//! once; `devstack migrate` to apply migrations to `DATABASE_URL` (how ops migrate RDS).

use std::net::SocketAddr;

use devstack::stack::{run, StackOptions};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The demo prints a progress display; its JSON logs would drown it.
    if std::env::args().nth(1).as_deref() == Some("demo") && std::env::var_os("RUST_LOG").is_none()
    {
        platform::telemetry::init_with_writer(std::io::sink);
    } else {
        platform::telemetry::init();
    }
    match std::env::args().nth(1).as_deref() {
        None | Some("run") => run_stack().await,
        Some("migrate") => migrate().await,
        Some("demo") => devstack::demo::run(std::env::args().nth(2).map(Into::into)).await,
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; use `devstack [run]`, `devstack demo [folder]` or `devstack migrate`")
        }
    }
}

async fn run_stack() -> anyhow::Result<()> {
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

async fn migrate() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("DATABASE_URL must name the database to migrate"))?;
    // RDS forces TLS: verify it against the CA bundle, as the functions do.
    let ca_pem = match std::env::var("DATABASE_CA_FILE")
        .ok()
        .filter(|path| !path.is_empty())
    {
        Some(path) => Some(
            std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("DATABASE_CA_FILE: {e}"))?,
        ),
        None => std::env::var("DATABASE_CA_PEM")
            .ok()
            .filter(|pem| !pem.is_empty()),
    };
    let applied = platform::db::migrate_with(&url, ca_pem.as_deref()).await?;
    if applied.is_empty() {
        eprintln!("devstack: the database is up to date");
    }
    for migration in applied {
        eprintln!("devstack: applied {migration}");
    }
    Ok(())
}
