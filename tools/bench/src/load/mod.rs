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
pub mod pg_proxy;
mod setup;
pub mod stack_process;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use hyper::{header, Method, Request};

use crate::procfs;
use client::{Body, MakeRequest, Mode, Recorded};
use setup::Fixture;

/// Users set up (each with a survey and a ready persona).
pub const USERS: usize = 1_600;
/// Users of the 100-connection chat run (the 1,500-connection run takes the others), so no
/// user sends more than the 30-a-minute chat limit in either.
const SMALL_CHAT_USERS: std::ops::Range<usize> = 1_500..1_600;

/// The routes measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    PublicSurvey,
    AnswerSubmit,
    StatusPoll,
    Me,
    Quests,
    Chat,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::PublicSurvey,
        Route::AnswerSubmit,
        Route::StatusPoll,
        Route::Me,
        Route::Quests,
        Route::Chat,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Route::PublicSurvey => "public survey `GET /v1/surveys/{id}/public`",
            Route::AnswerSubmit => "answer submit `POST /v1/surveys/{id}/responses`",
            Route::StatusPoll => "status poll `GET /v1/personas/me/status`",
            Route::Me => "`GET /v1/me`",
            Route::Quests => "quests `GET /v1/quests`",
            Route::Chat => "chat `POST /v1/personas/me/messages` (offline)",
        }
    }

    /// What backs the route besides the stack itself.
    fn backing(self) -> &'static str {
        match self {
            Route::PublicSurvey | Route::Me | Route::Quests => "PostgreSQL",
            Route::StatusPoll => "DynamoDB (emulator)",
            Route::AnswerSubmit | Route::Chat => "PostgreSQL + DynamoDB (emulator)",
        }
    }
}

/// Timings of a benchmark run (shortened with `bench load <seconds>`).
#[derive(Clone, Copy)]
struct Timing {
    warmup: Duration,
    measure: Duration,
    open_measure: Duration,
}

/// Builds the requests of `route` for connection `i`, request `n`. `block` keeps each run's
/// addresses apart from the others' (rate-limit windows are per minute).
fn requests(fixture: &Arc<Fixture>, route: Route, users: std::ops::Range<usize>) -> MakeRequest {
    let fixture = fixture.clone();
    Arc::new(move |i: usize, n: u64| {
        let user = &fixture.users[users.start + i % users.len()];
        let builder = Request::builder().header(header::HOST, &fixture.host);
        let request = match route {
            Route::PublicSurvey => builder
                .uri(format!("/v1/surveys/{}/public", user.survey_id))
                .body(Body::default()),
            Route::AnswerSubmit => {
                // Every request to another survey (at most 5 a minute per survey and address),
                // with a fingerprint of its own (no duplicate marker is hit).
                let survey = &fixture.users[(i * 37 + n as usize) % fixture.users.len()];
                builder
                    .method(Method::POST)
                    .uri(format!("/v1/surveys/{}/responses", survey.survey_id))
                    .header(header::CONTENT_TYPE, "application/json")
                    .header("x-fingerprint", format!("load-{}-{i}-{n}", fixture.run_id))
                    .body(Body::new(
                        fixture.answers[n as usize % fixture.answers.len()].clone(),
                    ))
            }
            Route::StatusPoll => builder
                .uri("/v1/personas/me/status")
                .header(header::AUTHORIZATION, &user.authorization)
                .body(Body::default()),
            Route::Me => builder
                .uri("/v1/me")
                .header(header::AUTHORIZATION, &user.authorization)
                .body(Body::default()),
            Route::Quests => builder
                .uri("/v1/quests")
                .header(header::AUTHORIZATION, &user.authorization)
                .body(Body::default()),
            Route::Chat => builder
                .method(Method::POST)
                .uri("/v1/personas/me/messages")
                .header(header::AUTHORIZATION, &user.authorization)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::new(Bytes::from(format!(
                    r#"{{"content":"Message {n}: I went hiking in the mountains today"}}"#
                )))),
        };
        request.expect("a valid request")
    })
}

/// The loopback address of connection `i` in address block `block` (127.block.x.y).
fn address(block: u8, i: usize) -> IpAddr {
    IpAddr::from([127, block, (i / 250) as u8, (i % 250) as u8 + 1])
}

/// CPU used so far by each party.
#[derive(Clone, Copy)]
struct Cpu {
    stack: Duration,
    postgres: Duration,
    emulator: Duration,
    generator: Duration,
}

struct Processes {
    stack: u32,
    postgres: u32,
    emulator: u32,
}

impl Processes {
    fn cpu(&self) -> Cpu {
        Cpu {
            stack: procfs::tree_cpu(self.stack),
            postgres: procfs::tree_cpu(self.postgres),
            emulator: procfs::tree_cpu(self.emulator),
            generator: procfs::own_cpu(),
        }
    }
}

/// One run's figures.
struct Figures {
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

fn figures(
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

/// A latency for the table; "—" when there was none to measure.
fn milliseconds(ms: f64) -> String {
    if ms.is_nan() {
        "—".to_owned()
    } else {
        format!("{ms:.1} ms")
    }
}

fn print_figures(all: &[Figures], stack_idle_per_second: f64) {
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

struct RoundTrips {
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

async fn count_round_trips(
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

fn print_round_trips(all: &[RoundTrips]) {
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
