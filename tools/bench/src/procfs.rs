//! CPU time of processes, read from `/proc` (Linux): what the load benchmark charges to the
//! stack, PostgreSQL, the AWS emulator and itself.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn ticks_per_second() -> f64 {
    // SAFETY: plain getter.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// One process's `/proc/<pid>/stat`: its parent and CPU times in ticks.
struct Stat {
    parent: u32,
    /// user + system time of the process (all its threads).
    own: u64,
    /// user + system time of its children that exited and were reaped.
    reaped_children: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses; it ends at the last ')'.
    let close = text.rfind(')')?;
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    // After the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        parent: number(1)? as u32,
        own: number(11)? + number(12)?,
        reaped_children: number(13)? + number(14)?,
    })
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// The CPU time used so far by `pid` and every descendant (live ones, and exited ones it
/// reaped): a server and the workers it forks (PostgreSQL's backends) count as one.
pub fn tree_cpu(pid: u32) -> Duration {
    let stats: Vec<(u32, Stat)> = all_pids()
        .into_iter()
        .filter_map(|p| Some((p, stat(p)?)))
        .collect();
    let mut members = vec![pid];
    let mut ticks = 0;
    let mut index = 0;
    while index < members.len() {
        let member = members[index];
        if let Some((_, s)) = stats.iter().find(|(p, _)| *p == member) {
            ticks += s.own + s.reaped_children;
        }
        members.extend(
            stats
                .iter()
                .filter(|(_, s)| s.parent == member)
                .map(|(p, _)| *p),
        );
        index += 1;
    }
    Duration::from_secs_f64(ticks as f64 / ticks_per_second())
}

/// The CPU time used so far by this process (all threads).
pub fn own_cpu() -> Duration {
    let ticks = stat(std::process::id()).map_or(0, |s| s.own);
    Duration::from_secs_f64(ticks as f64 / ticks_per_second())
}
