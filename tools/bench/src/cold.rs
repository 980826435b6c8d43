//! `bench cold`: each Lambda function binary from exec to its first event handled, against a
//! Lambda Runtime API served by this process on loopback (no network): the time to its first
//! `GET /runtime/invocation/next` (init) and to the first response posted (handled), the peak
//! RSS, and the binary's size. Configuration comes from environment variables (no
//! `SECRET_ARNS`); one extra run of the HTTP function reads its secrets from the emulator's
//! Secrets Manager, to show that fetch's separate cost.
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use devstack::{emulator::Emulator, postgres::TempPostgres};
use serde_json::json;

/// Cold starts per function (the median is reported, with the range).
const RUNS: usize = 9;

/// A function binary and the first event it gets.
struct Function {
    binary: &'static str,
    /// The first event's file; empty for an empty SQS batch.
    event: &'static str,
    what: &'static str,
}

const FUNCTIONS: [Function; 6] = [
    Function {
        binary: "http_api",
        event: "events/http_api/get-health.json",
        what: "`GET /v1/health` (no I/O)",
    },
    Function {
        binary: "synthesize",
        event: "",
        what: "an empty SQS batch",
    },
    Function {
        binary: "render_card",
        event: "",
        what: "an empty SQS batch",
    },
    Function {
        binary: "sweeper",
        event: "events/sweeper/rerender-cards.json",
        what: "`rerender_cards` (opens its first PostgreSQL connection, one query)",
    },
    Function {
        binary: "chat_stream",
        event: "events/chat/post-message-stream.json",
        what: "a message with a bad token (401, streamed)",
    },
    Function {
        binary: "chat_memory",
        event: "",
        what: "an empty SQS batch",
    },
];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join("target"))
}

/// Builds the function binaries (release), as `cargo lambda build --release` would for the host.
fn build() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(repository())
        .args(["build", "--release"]);
    for function in &FUNCTIONS {
        command.args(["-p", function.binary]);
    }
    eprintln!("cold: building the function binaries (release)");
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        bail!("building the function binaries failed");
    }
    Ok(())
}

/// What the Runtime API saw of one cold start.
#[derive(Default)]
struct Observed {
    first_next: Option<Instant>,
    handled: Option<Instant>,
    response: Option<(String, Bytes)>,
    init_error: Option<Bytes>,
    event_served: bool,
}

#[derive(Clone)]
struct RuntimeApi {
    event: Bytes,
    trace_header: &'static str,
    observed: Arc<Mutex<Observed>>,
}

/// The invocation's X-Ray header: unsampled, as most invocations are, or sampled (traced runs).
const UNSAMPLED: &str =
    "Root=1-00000000-000000000000000000000000;Parent=0000000000000001;Sampled=0";
const SAMPLED: &str = "Root=1-00000000-000000000000000000000000;Parent=0000000000000001;Sampled=1";

const REQUEST_ID: &str = "00000000-0000-4000-8000-000000000001";

async fn next(State(api): State<RuntimeApi>) -> Response {
    let serve = {
        let mut observed = api.observed.lock().unwrap_or_else(|p| p.into_inner());
        observed.first_next.get_or_insert_with(Instant::now);
        !std::mem::replace(&mut observed.event_served, true)
    };
    if !serve {
        // One event per cold start: the runtime waits here until the process is stopped.
        std::future::pending::<()>().await;
    }
    let deadline = platform::clock::system().now().timestamp_millis() + 60_000;
    (
        [
            ("lambda-runtime-aws-request-id", REQUEST_ID.to_owned()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
            ),
            ("lambda-runtime-trace-id", api.trace_header.to_owned()),
            ("content-type", "application/json".to_owned()),
        ],
        api.event.clone(),
    )
        .into_response()
}

async fn respond(State(api): State<RuntimeApi>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mode = headers
        .get("lambda-runtime-function-response-mode")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("buffered")
        .to_owned();
    let mut observed = api.observed.lock().unwrap_or_else(|p| p.into_inner());
    observed.handled.get_or_insert_with(Instant::now);
    observed.response = Some((mode, body));
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<RuntimeApi>, body: Bytes) -> StatusCode {
    let mut observed = api.observed.lock().unwrap_or_else(|p| p.into_inner());
    observed.init_error = Some(body);
    StatusCode::ACCEPTED
}

/// Serves the Runtime API for one cold start; returns its address and what it observes.
async fn runtime_api(
    event: Bytes,
    trace_header: &'static str,
) -> anyhow::Result<(String, Arc<Mutex<Observed>>)> {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let api = RuntimeApi {
        event,
        trace_header,
        observed: observed.clone(),
    };
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(respond))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((address, observed))
}

/// One cold start's figures.
struct Start {
    init: Duration,
    handled: Duration,
    peak_rss_kib: u64,
}

/// Execs `binary` with `environment` and the Runtime API, waits for its first response.
async fn cold_start(
    binary: &Path,
    environment: &BTreeMap<String, String>,
    event: Bytes,
) -> anyhow::Result<(Start, String)> {
    let header = if environment.contains_key("AWS_XRAY_DAEMON_ADDRESS") {
        SAMPLED
    } else {
        UNSAMPLED
    };
    let (api, observed) = runtime_api(event, header).await?;
    let home = tempfile::tempdir()?;
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(environment)
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        // As in Lambda: no ~/.aws to read.
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {binary:?}"))?;
    let deadline = started + Duration::from_secs(20);
    let outcome = loop {
        tokio::time::sleep(Duration::from_micros(500)).await;
        let done = {
            let observed = observed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(error) = &observed.init_error {
                Some(Err(anyhow::anyhow!(
                    "init error: {}",
                    String::from_utf8_lossy(error)
                )))
            } else {
                observed.handled.map(|handled| {
                    Ok((
                        observed.first_next.unwrap_or(handled) - started,
                        handled - started,
                        observed.response.clone().unwrap_or_default(),
                    ))
                })
            }
        };
        if let Some(done) = done {
            break done;
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(anyhow::anyhow!(
                "{binary:?} exited ({status}) before answering"
            ));
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!("{binary:?} did not answer within 20 s"));
        }
    };
    let peak_rss_kib = peak_rss(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    let (init, handled, (mode, body)) = outcome?;
    Ok((
        Start {
            init,
            handled,
            peak_rss_kib,
        },
        format!(
            "{mode}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(160)
                .collect::<String>()
        ),
    ))
}

fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The environment Lambda gives every function, plus every configuration variable any of our
/// functions reads (each reads only its own).
fn environment(database_url: &str, function: &str) -> BTreeMap<String, String> {
    let queue = |name: &str| format!("http://127.0.0.1:9/000000000000/{name}");
    let mut environment: BTreeMap<String, String> = [
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/12/01/[$LATEST]bench".to_owned(),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCH".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench-secret".to_owned()),
        ("AWS_SESSION_TOKEN", "bench-token".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("DATABASE_URL", database_url.to_owned()),
        // The bench's throw-away local database has no TLS; in Lambda that must be said.
        ("DATABASE_TLS", "disable".to_owned()),
        ("TABLE_NAME", "bench-table".to_owned()),
        ("ANONYMITY_TABLE_NAME", "bench-anonymity".to_owned()),
        ("CARDS_BUCKET", "bench-cards".to_owned()),
        ("FRONTEND_URL", "https://remirai.app".to_owned()),
        (
            "GOOGLE_CLIENT_ID",
            "bench.apps.googleusercontent.com".to_owned(),
        ),
        ("SYNTHESIZE_QUEUE_URL", queue("synthesize")),
        ("RENDER_QUEUE_URL", queue("render")),
        ("SUMMARIZE_CHAT_QUEUE_URL", queue("summarize-chat")),
        ("EXPORT_QUEUE_URL", queue("export")),
        ("ERASE_QUEUE_URL", queue("erase")),
        ("SYNTHESIZE_DLQ_URL", queue("synthesize-dlq")),
        ("RENDER_DLQ_URL", queue("render-dlq")),
        ("SUMMARIZE_CHAT_DLQ_URL", queue("summarize-chat-dlq")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    environment.extend(devstack::stack::local_defaults(&mut BTreeMap::new()));
    environment
}

fn event_bytes(function: &Function) -> anyhow::Result<Bytes> {
    if function.event.is_empty() {
        return Ok(Bytes::from(json!({"Records": []}).to_string()));
    }
    Ok(Bytes::from(std::fs::read(
        repository().join(function.event),
    )?))
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Median and range of `samples` in ms.
fn summary(mut samples: Vec<f64>) -> String {
    samples.sort_by(|a, b| a.total_cmp(b));
    format!(
        "{:.1} ms ({:.1}–{:.1})",
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1]
    )
}

pub async fn run() -> anyhow::Result<()> {
    build()?;
    let postgres = tokio::task::spawn_blocking(TempPostgres::start).await??;
    let outcome = measure(&postgres).await;
    postgres.stop();
    outcome
}

async fn measure(postgres: &TempPostgres) -> anyhow::Result<()> {
    devstack::stack::create_database(&postgres.admin_url, "remirai").await?;
    let database_url = postgres.url_of("remirai");
    platform::db::migrate(&database_url).await?;
    let release = target_dir().join("release");
    println!("\n## Lambda cold start (exec → first event handled, local Runtime API, no network, configuration from the environment; {RUNS} runs, median (range))\n");
    println!("| function | first event | init (exec → first `next`) | first event handled | peak RSS | binary |");
    println!("|---|---|---|---|---|---|");
    for function in &FUNCTIONS {
        let binary = release.join(function.binary);
        let environment = environment(&database_url, function.binary);
        let mut init = Vec::new();
        let mut handled = Vec::new();
        let mut rss = 0;
        let mut sample = String::new();
        for _ in 0..RUNS {
            let (start, response) =
                cold_start(&binary, &environment, event_bytes(function)?).await?;
            init.push(millis(start.init));
            handled.push(millis(start.handled));
            rss = rss.max(start.peak_rss_kib);
            sample = response;
        }
        let size = std::fs::metadata(&binary)?.len();
        println!(
            "| {} | {} | {} | {} | {:.1} MiB | {:.1} MiB |",
            function.binary,
            function.what,
            summary(init),
            summary(handled),
            rss as f64 / 1024.0,
            size as f64 / (1024.0 * 1024.0)
        );
        eprintln!("cold: {} answered {sample}", function.binary);
    }
    secrets_fetch(&release.join("http_api"), &database_url).await?;
    traced(&release, &database_url).await
}

/// Cold starts with X-Ray tracing on (a sampled invocation, a daemon address: the layer is
/// installed and every call is sent as a subsegment) against the same function with tracing off,
/// interleaved off, on, off, on… so machine drift cancels.
async fn traced(release: &Path, database_url: &str) -> anyhow::Result<()> {
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0")?;
    daemon.set_nonblocking(true)?;
    println!("\n### With X-Ray tracing ({RUNS} runs each, interleaved with the untraced run; median (range))\n");
    println!("| function | first event | init off / on | handled off / on | subsegments sent per traced start |");
    println!("|---|---|---|---|---|");
    for function in FUNCTIONS
        .iter()
        .filter(|f| ["http_api", "sweeper"].contains(&f.binary))
    {
        let binary = release.join(function.binary);
        let off = environment(database_url, function.binary);
        let mut on = off.clone();
        on.insert(
            "AWS_XRAY_DAEMON_ADDRESS".into(),
            daemon.local_addr()?.to_string(),
        );
        let (mut init, mut handled) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
        let mut documents = Vec::new();
        for _ in 0..RUNS {
            for (i, environment) in [&off, &on].into_iter().enumerate() {
                let (start, _) = cold_start(&binary, environment, event_bytes(function)?).await?;
                init[i].push(millis(start.init));
                handled[i].push(millis(start.handled));
            }
            let mut buffer = [0u8; 65_536];
            let mut sent = 0;
            while daemon.recv(&mut buffer).is_ok() {
                sent += 1;
            }
            documents.push(sent);
        }
        let [init_off, init_on] = init;
        let [handled_off, handled_on] = handled;
        documents.sort_unstable();
        println!(
            "| {} | {} | {} / {} | {} / {} | {} |",
            function.binary,
            function.what,
            summary(init_off),
            summary(init_on),
            summary(handled_off),
            summary(handled_on),
            documents[documents.len() / 2]
        );
    }
    Ok(())
}

/// The HTTP function again, its keys read from the emulator's Secrets Manager at cold start
/// (`SECRET_ARNS`), as in AWS.
async fn secrets_fetch(binary: &Path, database_url: &str) -> anyhow::Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let outcome = async {
        let aws = platform::aws::AwsClients::new(&platform::aws::AwsClients::emulator_config(
            &emulator.endpoint,
        ));
        let mut environment = environment(database_url, "http_api");
        let secrets: BTreeMap<String, String> = platform::secrets::secret_variables()
            .filter_map(|name| Some((name.to_owned(), environment.remove(name)?)))
            .collect();
        let mut resources = devstack::provision::LocalResources::new();
        devstack::provision::provision_secrets(&aws, "coldbench", &secrets, &mut resources)
            .await?;
        // Secrets only (the resources also hold the local `DatabaseMode`, which has no ARN).
        let arns: Vec<String> = resources
            .values()
            .filter(|r| !r.arn.is_empty())
            .map(|r| r.reference.clone())
            .collect();
        environment.insert(platform::secrets::ARNS_VARIABLE.into(), arns.join(","));
        environment.insert("AWS_ENDPOINT_URL".into(), emulator.endpoint.clone());
        let event = event_bytes(&FUNCTIONS[0])?;
        let mut init = Vec::new();
        let mut handled = Vec::new();
        for _ in 0..RUNS {
            let (start, _) = cold_start(binary, &environment, event.clone()).await?;
            init.push(millis(start.init));
            handled.push(millis(start.handled));
        }
        println!(
            "| http_api, secrets from the emulator's Secrets Manager ({} secrets, one `BatchGetSecretValue`) | `GET /v1/health` | {} | {} | | |",
            arns.len(),
            summary(init),
            summary(handled)
        );
        anyhow::Ok(())
    }
    .await;
    emulator.stop();
    outcome
}
