//! PostgreSQL round trips and the stack's CPU per request, counted one request at a time on a
//! stack whose database connections pass through the counting proxy.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use super::{
    client, pg_proxy,
    routes::{address, requests, Route},
    setup::Fixture,
    USERS,
};
use crate::procfs;

pub(super) struct RoundTrips {
    route: Route,
    per_request: [f64; 3],
    /// The stack's CPU per request (idle rate subtracted), µs: the handler's own cost, with
    /// every dependency answering at once (none is saturated one request at a time).
    stack_cpu_us: f64,
}

/// Requests per route, one at a time, through the counted stack (after a warm-up that opens
/// the pool's connection and fills its statement cache). 1,000 on the PostgreSQL routes, for
/// `/proc`'s 10 ms CPU ticks to resolve a fraction of a millisecond per request; 200 on the
/// emulator-backed ones, which cost milliseconds (and whose `TransactWriteItems` moto answers by
/// deep-copying the whole table, so every call is slower than the last).
fn counted(route: Route) -> u64 {
    match route {
        Route::PublicSurvey | Route::Me | Route::Quests => 1_000,
        Route::AnswerSubmit | Route::StatusPoll | Route::Chat => 200,
    }
}
const COUNT_WARMUP: u64 = 40;

pub(super) async fn count_round_trips(
    fixture: &Arc<Fixture>,
    server: SocketAddr,
    stack_pid: u32,
    counters: &pg_proxy::Counters,
) -> anyhow::Result<Vec<RoundTrips>> {
    // Background traffic and CPU (sweeper, pollers) over an idle spell, subtracted below.
    let idle_start = (
        tokio::time::Instant::now(),
        counters.read(),
        procfs::tree_cpu(stack_pid),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = counters.read().since(idle_start.1);
    let idle_seconds = idle_start.0.elapsed().as_secs_f64();
    let idle_cpu_per_second =
        (procfs::tree_cpu(stack_pid) - idle_start.2).as_secs_f64() / idle_seconds;
    let mut results = Vec::new();
    for (block, route) in (60u8..).zip(Route::ALL) {
        let make = requests(fixture, route, 0..USERS);
        let mut sender = client::connect(address(block, 0), server).await?;
        for n in 0..COUNT_WARMUP {
            client::exchange(&mut sender, make(n as usize, n)).await?;
        }
        let started = (
            tokio::time::Instant::now(),
            counters.read(),
            procfs::tree_cpu(stack_pid),
        );
        let mut statuses = BTreeMap::<u16, u64>::new();
        let count = counted(route);
        for n in COUNT_WARMUP..COUNT_WARMUP + count {
            let (status, _) = client::exchange(&mut sender, make(n as usize, n)).await?;
            *statuses.entry(status).or_default() += 1;
        }
        let counted = counters.read().since(started.1);
        let seconds = started.0.elapsed().as_secs_f64();
        let cpu =
            (procfs::tree_cpu(stack_pid) - started.2).as_secs_f64() - idle_cpu_per_second * seconds;
        let background = |total: u64, idle: u64| {
            (total as f64 - idle as f64 * seconds / idle_seconds).max(0.0) / count as f64
        };
        if statuses.keys().any(|s| !(200..300).contains(s)) {
            eprintln!("  {route:?}: statuses {statuses:?}");
        }
        results.push(RoundTrips {
            route,
            per_request: [
                background(counted.round_trips, idle.round_trips),
                background(counted.parses, idle.parses),
                background(counted.executes, idle.executes),
            ],
            stack_cpu_us: cpu.max(0.0) * 1e6 / count as f64,
        });
    }
    Ok(results)
}

pub(super) fn print_round_trips(all: &[RoundTrips]) {
    println!("\n## PostgreSQL and stack CPU per request (1,000 requests per PostgreSQL route, 200 per emulator-backed one, one at a time; round trips counted by a proxy)\n");
    println!(
        "| route | round trips | statements parsed | statements executed | stack CPU/request |"
    );
    println!("|---|---|---|---|---|");
    for r in all {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} µs |",
            r.route.label(),
            r.per_request[0],
            r.per_request[1],
            r.per_request[2],
            r.stack_cpu_us
        );
    }
}
