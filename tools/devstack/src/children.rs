//! Child processes (PostgreSQL, the AWS emulator) that never outlive us.
//!
//! Each child gets `PR_SET_PDEATHSIG`, so the kernel signals it when we die, even by SIGKILL.
//! The signal is tied to the *thread* that forked the child, not the process, so all children
//! are forked by one thread that lives as long as the process; test threads come and go.

use std::{
    io,
    os::unix::process::CommandExt,
    process::Command,
    sync::{mpsc, Mutex, OnceLock},
    time::{Duration, Instant},
};

type SpawnRequest = (Command, libc::c_int, mpsc::Sender<io::Result<u32>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for (mut command, signal, reply) in receiver {
                    let parent = std::process::id() as libc::pid_t;
                    // SAFETY: runs in the forked child before exec; prctl and getppid are
                    // async-signal-safe.
                    unsafe {
                        command.pre_exec(move || {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                            // We may have died between fork and prctl.
                            if libc::getppid() != parent {
                                libc::_exit(1);
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(command.spawn().map(|child| child.id()));
                }
                // The sender lives in a static, so this loop only ends with the process.
            })
            .expect("spawning the child-spawner thread");
        Mutex::new(sender)
    })
}

/// A running child process, stopped with [`Child::stop`] or by our death.
#[derive(Debug)]
pub struct Child {
    pub pid: u32,
    name: &'static str,
}

impl Child {
    /// Spawns `command`; the child receives `death_signal` when this process dies.
    pub fn spawn(
        name: &'static str,
        command: Command,
        death_signal: libc::c_int,
    ) -> io::Result<Self> {
        let (reply, answer) = mpsc::channel();
        spawner()
            .lock()
            .map_err(|_| io::Error::other("child spawner poisoned"))?
            .send((command, death_signal, reply))
            .map_err(|_| io::Error::other("child spawner gone"))?;
        let pid = answer
            .recv()
            .map_err(|_| io::Error::other("child spawner gone"))??;
        Ok(Self { pid, name })
    }

    /// `false` once the child has exited (and reaps it).
    pub fn is_running(&self) -> bool {
        let mut status = 0;
        // SAFETY: plain syscall on our own child's pid.
        unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG) == 0 }
    }

    /// Sends `signal`, waits up to `grace` for the exit, then kills.
    pub fn stop(&self, signal: libc::c_int, grace: Duration) {
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(self.pid as libc::pid_t, signal);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(child = self.name, "did not stop in time; killing");
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid as libc::pid_t, &mut status, 0);
        }
    }
}

/// A free TCP port on 127.0.0.1 (the OS picks; we release it for the child to bind).
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something accepts TCP connections on `port`, or `child` exits.
pub fn wait_for_port(child: &Child, port: u16, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if !child.is_running() {
            return Err(io::Error::other(format!(
                "{} exited before listening on port {port}",
                child.name
            )));
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{} did not listen on port {port} within {timeout:?}",
                child.name
            )));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
