//! A throw-away PostgreSQL server: `initdb` into a temporary folder, `postgres` on a free
//! loopback port, removed on stop. As root it runs as the `postgres` user, since the server
//! refuses to run as root.

use std::{
    ffi::CString,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context};

use crate::children::{free_port, wait_for_port, Child};

const DIR_PREFIX: &str = "remirai-pg-";

pub struct TempPostgres {
    child: Child,
    dir: PathBuf,
    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub admin_url: String,
    pub port: u16,
}

impl TempPostgres {
    /// Starts a fresh server; takes about a second.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_tls(None)
    }

    /// Starts a server that also accepts TLS with `(certificate PEM, private key PEM)`.
    pub fn start_with_tls(tls: Option<(&str, &str)>) -> anyhow::Result<Self> {
        remove_stale_dirs();
        let user = server_user()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir_in("/tmp")
            .context("creating the PostgreSQL folder")?
            .keep();
        let data = dir.join("data");
        std::fs::create_dir(&data)?;
        if let Some((uid, gid)) = user {
            for path in [&dir, &data] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .context("handing the data folder to the postgres user")?;
            }
        }
        set_private(&data)?;

        let mut initdb = Command::new(binary("initdb")?);
        initdb
            .args(["--no-sync", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"])
            .args(["-U", "postgres", "-D"])
            .arg(&data)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut initdb, user);
        let output = initdb.output().context("running initdb")?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }

        let mut tls_settings = Vec::new();
        if let Some((certificate, key)) = tls {
            for (name, contents) in [("server.crt", certificate), ("server.key", key)] {
                let path = dir.join(name);
                std::fs::write(&path, contents)?;
                if let Some((uid, gid)) = user {
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
                }
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            tls_settings = vec![
                "-c".to_owned(),
                "ssl=on".to_owned(),
                "-c".to_owned(),
                format!("ssl_cert_file={}", dir.join("server.crt").display()),
                "-c".to_owned(),
                format!("ssl_key_file={}", dir.join("server.key").display()),
            ];
        }
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("postgres.log"))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid))?;
        }
        let mut server = Command::new(binary("postgres")?);
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ])
            .args(&tls_settings)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        as_user(&mut server, user);
        // SIGINT is PostgreSQL's "fast shutdown": clients are disconnected, then it exits.
        let child = Child::spawn("postgres", server, libc::SIGINT).context("starting postgres")?;
        wait_for_port(&child, port, Duration::from_secs(30))?;
        // The port opens before the server accepts sessions ("the database system is starting
        // up"); wait for the real thing.
        let ready = binary("pg_isready")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let accepting = Command::new(&ready)
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if accepting {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("PostgreSQL did not accept connections within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            dir,
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
        })
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's (postmaster's) process id; its backends are its children.
    pub fn pid(&self) -> u32 {
        self.child.pid
    }

    pub fn stop(&self) {
        self.child.stop(libc::SIGINT, Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

fn as_user(command: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
}

/// `Some((uid, gid))` of the `postgres` user when we are root, `None` otherwise.
fn server_user() -> anyhow::Result<Option<(u32, u32)>> {
    // SAFETY: plain getters.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres")?;
    // SAFETY: getpwnam returns a pointer into static storage or null; read it at once.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        bail!("running as root needs a `postgres` user to run the server as (install postgresql)");
    }
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some((uid, gid)))
}

/// A PostgreSQL program (`initdb`, `postgres`, `pg_dump`...): on PATH, or from the newest
/// version under /usr/lib/postgresql.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join(name).is_file() {
                return Ok(dir.join(name));
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let program = entry.path().join("bin").join(name);
            program.is_file().then_some((version, program))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, program)| program).with_context(|| {
        format!("no PostgreSQL `{name}` on PATH or under /usr/lib/postgresql (install postgresql)")
    })
}

/// Removes folders left by processes that were killed before they could clean up.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
