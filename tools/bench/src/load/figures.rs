//! What a run measured: the CPU of each party, latencies and statuses summed up into one run's
//! figures, and their table.

use std::{collections::BTreeMap, time::Duration};

use super::{
    client::{self, Recorded},
    routes::Route,
};
use crate::procfs;

/// CPU used so far by each party.
#[derive(Clone, Copy)]
pub(super) struct Cpu {
    pub(super) stack: Duration,
    pub(super) postgres: Duration,
    pub(super) emulator: Duration,
    pub(super) generator: Duration,
}

pub(super) struct Processes {
    pub(super) stack: u32,
    pub(super) postgres: u32,
    pub(super) emulator: u32,
}

impl Processes {
    pub(super) fn cpu(&self) -> Cpu {
        Cpu {
            stack: procfs::tree_cpu(self.stack),
            postgres: procfs::tree_cpu(self.postgres),
            emulator: procfs::tree_cpu(self.emulator),
            generator: procfs::own_cpu(),
        }
    }
}

/// One run's figures.
pub(super) struct Figures {
    route: Route,
    load: String,
    requests_per_second: f64,
    /// Responses per second that served the request (2xx and 3xx): not the shed ones.
    served_per_second: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    /// p95 of the requests served (2xx and 3xx): what a shed request's 429 leaves out.
    p95_served_ms: f64,
    ok: u64,
    limited: u64,
    errors: BTreeMap<u16, u64>,
    /// CPU per request, µs: stack (background subtracted), PostgreSQL, emulator, generator.
    cpu_us: [f64; 4],
}

pub(super) fn figures(
    route: Route,
    load: String,
    mut recorded: Recorded,
    window: Duration,
    before: Cpu,
    after: Cpu,
    stack_idle_per_second: f64,
) -> Figures {
    let count = recorded.latencies_us.len().max(1) as f64;
    recorded.latencies_us.sort_unstable();
    recorded.served_us.sort_unstable();
    let percentile = |samples: &[u32], p: f64| {
        if samples.is_empty() {
            return f64::NAN;
        }
        samples[((samples.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
    };
    let at = |p: f64| percentile(&recorded.latencies_us, p);
    let per_request = |a: Duration, b: Duration| (b - a).as_secs_f64() * 1e6 / count;
    let stack =
        (after.stack - before.stack).as_secs_f64() - stack_idle_per_second * window.as_secs_f64();
    let mut errors = BTreeMap::new();
    let (mut ok, mut limited) = (0, 0);
    for (status, n) in &recorded.statuses {
        match status {
            200..=399 => ok += n,
            429 => limited += n,
            _ => {
                errors.insert(*status, *n);
            }
        }
    }
    Figures {
        route,
        load,
        requests_per_second: recorded.latencies_us.len() as f64 / window.as_secs_f64(),
        served_per_second: recorded.served_us.len() as f64 / window.as_secs_f64(),
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
        p95_served_ms: percentile(&recorded.served_us, 0.95),
        ok,
        limited,
        errors,
        cpu_us: [
            stack.max(0.0) * 1e6 / count,
            per_request(before.postgres, after.postgres),
            per_request(before.emulator, after.emulator),
            per_request(before.generator, after.generator),
        ],
    }
}

/// A latency for the table; "—" when there was none to measure.
fn milliseconds(ms: f64) -> String {
    if ms.is_nan() {
        "—".to_owned()
    } else {
        format!("{ms:.1} ms")
    }
}

pub(super) fn print_figures(all: &[Figures], stack_idle_per_second: f64) {
    let max_in_flight = std::env::var("LOCAL_MAX_IN_FLIGHT")
        .unwrap_or_else(|_| api::LOCAL_MAX_IN_FLIGHT.to_string());
    println!("\n## Load (local stack; stack, PostgreSQL and the emulator are separate processes; 2 cores shared with the generator)\n");
    println!("The stack sheds (429, `Retry-After: 1`) beyond {max_in_flight} requests in flight (`LOCAL_MAX_IN_FLIGHT`); a closed-loop connection waits out a 429's `Retry-After`. p95 and CPU per request count every response; \"served\" columns only 2xx/3xx.\n");
    println!("| route | backed by | load | responses/s | served/s | p50 | p95 | p99 | p95 served | 2xx/3xx | 429 | errors | CPU/req: stack | PostgreSQL | emulator | generator |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in all {
        let errors = if f.errors.is_empty() {
            "0".to_owned()
        } else {
            f.errors
                .iter()
                .map(|(status, n)| {
                    let status = if *status == client::TRANSPORT_ERROR {
                        "transport".to_owned()
                    } else {
                        status.to_string()
                    };
                    format!("{n}× {status}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs |",
            f.route.label(),
            f.route.backing(),
            f.load,
            f.requests_per_second,
            f.served_per_second,
            milliseconds(f.p50_ms),
            milliseconds(f.p95_ms),
            milliseconds(f.p99_ms),
            milliseconds(f.p95_served_ms),
            f.ok,
            f.limited,
            errors,
            f.cpu_us[0],
            f.cpu_us[1],
            f.cpu_us[2],
            f.cpu_us[3],
        );
    }
    println!(
        "\nStack CPU is the stack process's user + system time over the window, less its idle rate ({:.1} ms/s: pollers, sweeper), per request; PostgreSQL's includes its backends.",
        stack_idle_per_second * 1000.0
    );
}
