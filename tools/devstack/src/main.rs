//! `devstack`: the local stack (default); `devstack demo [folder]` to see the whole product run
//! once; `devstack migrate` to apply migrations to `DATABASE_URL` (how ops migrate RDS).

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
        None | Some("run") => devstack::stack::run_from_env().await,
        Some("migrate") => migrate().await,
        Some("demo") => devstack::demo::run(std::env::args().nth(2).map(Into::into)).await,
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; use `devstack [run]`, `devstack demo [folder]` or `devstack migrate`")
        }
    }
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
