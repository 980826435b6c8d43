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
    // The database settings the functions read (TLS as they have it), from the environment.
    let database = platform::env::read(
        |name| std::env::var(name).ok(),
        platform::db::DatabaseConfig::read,
    )?;
    let applied = platform::db::migrate_config(&database).await?;
    if applied.is_empty() {
        eprintln!("devstack: the database is up to date");
    }
    for migration in applied {
        eprintln!("devstack: applied {migration}");
    }
    Ok(())
}
