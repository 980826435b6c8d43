//! The stack under load runs in a child process (this binary in `stack` mode), against a
//! PostgreSQL and an emulator this process starts, so each one's CPU can be read apart and a
//! second stack can share their data (with the same keys, so tokens stay valid).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use devstack::{
    children::{free_port, wait_for_port, Child},
    emulator::Emulator,
    postgres::TempPostgres,
};

/// The resource prefix both stacks share.
const PREFIX: &str = "loadbench";

/// PostgreSQL and the emulator, and the keys every stack gets.
pub struct Services {
    postgres: TempPostgres,
    emulator: Emulator,
    pub database_url: String,
    pub postgres_address: SocketAddr,
    pub postgres_pid: u32,
    pub emulator_pid: u32,
    secrets: BTreeMap<String, String>,
}

impl Services {
    pub async fn start() -> anyhow::Result<Self> {
        let postgres = tokio::task::spawn_blocking(TempPostgres::start).await??;
        let emulator = match tokio::task::spawn_blocking(Emulator::start).await? {
            Ok(emulator) => emulator,
            Err(error) => {
                postgres.stop();
                return Err(error);
            }
        };
        let services = Self {
            database_url: postgres.url_of("remirai"),
            postgres_address: SocketAddr::from(([127, 0, 0, 1], postgres.port)),
            postgres_pid: postgres.pid(),
            emulator_pid: emulator.pid(),
            secrets: devstack::stack::local_defaults(&mut BTreeMap::new()),
            postgres,
            emulator,
        };
        if let Err(error) =
            devstack::stack::create_database(&services.postgres.admin_url, "remirai").await
        {
            services.stop();
            return Err(error);
        }
        Ok(services)
    }

    /// The database's URL through a proxy listening on `proxy`.
    pub fn database_url_via(&self, proxy: SocketAddr) -> String {
        format!("postgres://postgres@{proxy}/remirai")
    }

    /// Starts a stack process on a free port with `database_url`; returns once it is ready.
    pub async fn spawn_stack(&self, database_url: &str) -> anyhow::Result<StackProcess> {
        let port = free_port()?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("stack")
            .envs(&self.secrets)
            .env("PORT", port.to_string())
            .env("DEVSTACK_PREFIX", PREFIX)
            .env("DATABASE_URL", database_url)
            .env("AWS_ENDPOINT_URL", &self.emulator.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            // Logs are written as in production (JSON lines), and dropped.
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = Child::spawn("stack", command, libc::SIGTERM).context("starting the stack")?;
        let stack = StackProcess {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let waited = tokio::task::spawn_blocking(move || wait_for_port_owned(stack, port)).await?;
        waited
    }

    pub fn stop(&self) {
        self.emulator.stop();
        self.postgres.stop();
    }
}

fn wait_for_port_owned(stack: StackProcess, port: u16) -> anyhow::Result<StackProcess> {
    // Migrating and provisioning take a few seconds before the port opens.
    wait_for_port(&stack.child, port, Duration::from_secs(120))?;
    Ok(stack)
}

/// A running stack process.
pub struct StackProcess {
    child: Child,
    pub address: SocketAddr,
}

impl StackProcess {
    pub fn pid(&self) -> u32 {
        self.child.pid
    }

    pub fn stop(&self) {
        self.child.stop(libc::SIGTERM, Duration::from_secs(20));
    }
}
