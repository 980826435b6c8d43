//! `bench load`: the local stack under load, route by route.
//!
//! The benchmark starts PostgreSQL and the AWS emulator itself and runs the stack in a child
//! process (this binary in `stack` mode), so `/proc` separates the stack's CPU from
//! PostgreSQL's, the emulator's and the load generator's. Setup signs in 1,600 users (each from
//! a loopback address of its own), gives each a survey, and writes each a ready persona straight
//! into the database (the saga is measured by `bench saga`). Then, per route: a closed loop at
//! 100 and at 1,500 connections (3 s warm-up, 10 s measured); an open loop of 1,500 users
//! polling every 2 s; and PostgreSQL round trips and the stack's CPU per request, counted on a
//! second stack process whose database connections pass through a counting proxy
//! ([`pg_proxy`]), 200–1,000 requests per route one at a time.

pub mod client;
mod figures;
pub mod pg_proxy;
mod round_trips;
mod routes;
mod setup;
pub mod stack_process;

use std::{sync::Arc, time::Duration};

use client::Mode;
use figures::{figures, print_figures, Figures, Processes};
use round_trips::{count_round_trips, print_round_trips};
use routes::{address, requests, Route};
use setup::Fixture;

/// Users set up (each with a survey and a ready persona).
pub const USERS: usize = 1_600;
/// Users of the 100-connection chat run (the 1,500-connection run takes the others), so no
/// user sends more than the 30-a-minute chat limit in either.
const SMALL_CHAT_USERS: std::ops::Range<usize> = 1_500..1_600;

/// Timings of a benchmark run (shortened with `bench load <seconds>`).
#[derive(Clone, Copy)]
struct Timing {
    warmup: Duration,
    measure: Duration,
    open_measure: Duration,
}

/// Drives `route` and measures it.
async fn run(
    target: &Target,
    route: Route,
    connections: usize,
    mode: Mode,
    timing: Timing,
    block: u8,
) -> anyhow::Result<Figures> {
    let users = match (route, connections) {
        (Route::Chat, c) if c <= SMALL_CHAT_USERS.len() => SMALL_CHAT_USERS,
        _ => 0..connections.min(USERS),
    };
    let measure = match mode {
        Mode::Closed => timing.measure,
        Mode::Open { .. } => timing.open_measure,
    };
    let running = client::start(
        target.fixture.address,
        connections,
        |i| address(block, i),
        requests(&target.fixture, route, users),
        mode,
        timing.warmup,
        measure,
    )
    .await?;
    tokio::time::sleep_until(running.window_start).await;
    let before = target.processes.cpu();
    tokio::time::sleep_until(running.window_end).await;
    let after = target.processes.cpu();
    let recorded = running.finish().await;
    let load = match mode {
        Mode::Closed => format!("closed, {connections} conn."),
        Mode::Open { interval } => format!(
            "open, {connections} users every {} s ({:.0}/s)",
            interval.as_secs_f64(),
            connections as f64 / interval.as_secs_f64()
        ),
    };
    // Let closed connections and queued work settle before the next run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(figures(
        route,
        load,
        recorded,
        measure,
        before,
        after,
        target.stack_idle_per_second,
    ))
}

/// The stack under test and what the runs need.
struct Target {
    fixture: Arc<Fixture>,
    processes: Processes,
    /// The stack's CPU seconds per second at rest (pollers' long polls, the sweeper).
    stack_idle_per_second: f64,
}

pub async fn run_all(seconds: Option<u64>) -> anyhow::Result<()> {
    let timing = match seconds {
        Some(s) => Timing {
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(s),
            open_measure: Duration::from_secs(s.max(4)),
        },
        None => Timing {
            warmup: Duration::from_secs(3),
            measure: Duration::from_secs(10),
            open_measure: Duration::from_secs(20),
        },
    };
    let services = stack_process::Services::start().await?;
    let outcome = measure_all(&services, timing).await;
    services.stop();
    outcome
}

async fn measure_all(services: &stack_process::Services, timing: Timing) -> anyhow::Result<()> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "load: starting the stack (load average before: {})",
        loadavg.trim()
    );
    let stack = services.spawn_stack(&services.database_url).await?;
    eprintln!("load: setting up {USERS} users");
    let fixture = setup::prepare(stack.address, &services.database_url).await;
    stack.stop();
    let fixture = fixture?;

    // Round trips first, while the emulator is fresh: the closed loops on emulator-backed
    // routes leave it with a backlog that would time these out.
    eprintln!("load: counting PostgreSQL round trips");
    let (proxy, counters) = pg_proxy::start(services.postgres_address).await?;
    let counted = services
        .spawn_stack(&services.database_url_via(proxy))
        .await?;
    let round_trips = count_round_trips(
        &Arc::new(fixture.at(counted.address)),
        counted.address,
        counted.pid(),
        &counters,
    )
    .await;
    counted.stop();
    let round_trips = round_trips?;

    let stack = services.spawn_stack(&services.database_url).await?;
    // The load goes to this stack (the fixture was made on the first one).
    let fixture = Arc::new(fixture.at(stack.address));
    let outcome = async {
        let processes = Processes {
            stack: stack.pid(),
            postgres: services.postgres_pid,
            emulator: services.emulator_pid,
        };
        let rest = processes.cpu();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let stack_idle_per_second = (processes.cpu().stack - rest.stack).as_secs_f64() / 4.0;
        let target = Target {
            fixture,
            processes,
            stack_idle_per_second,
        };
        let mut all = Vec::new();
        let mut block = 10u8;
        // PostgreSQL-only routes first: the emulator-backed ones can saturate the emulator.
        let order = [
            Route::PublicSurvey,
            Route::Me,
            Route::Quests,
            Route::StatusPoll,
            Route::AnswerSubmit,
            Route::Chat,
        ];
        let open = Mode::Open {
            interval: Duration::from_secs(2),
        };
        eprintln!("load: Me, open loop, 1,500 users every 2 s");
        all.push(run(&target, Route::Me, 1_500, open, timing, block).await?);
        block += 1;
        for route in order {
            for connections in [100, 1_500] {
                eprintln!("load: {route:?}, closed loop, {connections} connections");
                all.push(run(&target, route, connections, Mode::Closed, timing, block).await?);
                block += 1;
            }
        }
        eprintln!("load: StatusPoll, open loop, 1,500 users every 2 s");
        all.push(run(&target, Route::StatusPoll, 1_500, open, timing, block).await?);
        print_figures(&all, stack_idle_per_second);
        anyhow::Ok(())
    }
    .await;
    stack.stop();
    outcome?;
    print_round_trips(&round_trips);
    Ok(())
}
