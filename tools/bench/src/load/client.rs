//! The load generator's client: one HTTP/1.1 keep-alive connection per simulated user, each
//! bound to a loopback address of its own (`127.x.y.z`), so per-address rate limits and
//! duplicate markers see distinct people. Closed loop (send, wait, send again; after a 429, wait
//! its `Retry-After` first, as a client must) or open loop (a
//! fixed schedule; latency counted from the scheduled time, so a slow server cannot hide its
//! queue — no coordinated omission).

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1::SendRequest, Request};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpSocket,
    sync::watch,
    time::{sleep_until, Instant},
};

pub type Body = Full<Bytes>;

/// Builds request `n` of connection `connection`.
pub type MakeRequest = Arc<dyn Fn(usize, u64) -> Request<Body> + Send + Sync>;

/// Status code 0 stands for a transport error (connection refused, reset, timeout).
pub const TRANSPORT_ERROR: u16 = 0;

/// Past this a request counts as a transport error and the connection is replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a connection to `server` from `local`.
pub async fn connect(local: IpAddr, server: SocketAddr) -> anyhow::Result<SendRequest<Body>> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(local, 0))
        .with_context(|| format!("binding {local}"))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Connects, retrying for a while (a burst of connects can overflow the listen backlog).
async fn connect_patiently(local: IpAddr, server: SocketAddr) -> anyhow::Result<SendRequest<Body>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match connect(local, server).await {
            Ok(sender) => return Ok(sender),
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sends `request`, reads the whole response; returns its status and body.
pub async fn exchange(
    sender: &mut SendRequest<Body>,
    request: Request<Body>,
) -> anyhow::Result<(u16, Bytes)> {
    let (status, _, body) = exchange_in_full(sender, request).await?;
    Ok((status, body))
}

/// [`exchange`], with the `Retry-After` of the response (whole seconds) when it has one.
async fn exchange_in_full(
    sender: &mut SendRequest<Body>,
    request: Request<Body>,
) -> anyhow::Result<(u16, Option<Duration>, Bytes)> {
    let exchanged = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.parse().ok())
            .map(Duration::from_secs);
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, retry_after, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchanged)
        .await
        .context("request timed out")?
}

/// What one run recorded inside its measurement window.
#[derive(Default)]
pub struct Recorded {
    /// Latencies in microseconds.
    pub latencies_us: Vec<u32>,
    /// Latencies of the requests served (2xx and 3xx), in microseconds.
    pub served_us: Vec<u32>,
    /// Responses by status ([`TRANSPORT_ERROR`] for transport errors).
    pub statuses: BTreeMap<u16, u64>,
}

impl Recorded {
    fn record(&mut self, latency: Duration, status: u16) {
        let micros = latency.as_micros().min(u32::MAX as u128) as u32;
        self.latencies_us.push(micros);
        if (200..400).contains(&status) {
            self.served_us.push(micros);
        }
        *self.statuses.entry(status).or_default() += 1;
    }

    fn merge(&mut self, other: Recorded) {
        self.latencies_us.extend(other.latencies_us);
        self.served_us.extend(other.served_us);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
    }
}

/// How a run is driven.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Each connection sends its next request as soon as the last one is answered.
    Closed,
    /// Each connection sends one request every `interval`, the connections evenly staggered.
    Open { interval: Duration },
}

/// A run in progress: every connection is open; requests sent from `window_start` to
/// `window_end` are recorded (before that is warm-up).
pub struct Running {
    pub window_start: Instant,
    pub window_end: Instant,
    tasks: Vec<tokio::task::JoinHandle<Recorded>>,
}

impl Running {
    /// Waits for every connection to finish its last request.
    pub async fn finish(self) -> Recorded {
        let mut recorded = Recorded::default();
        for task in self.tasks {
            if let Ok(part) = task.await {
                recorded.merge(part);
            }
        }
        recorded
    }
}

/// Opens `connections` connections (connection `i` from `local(i)`), then drives them in
/// `mode` for `warmup` plus `measure`.
pub async fn start(
    server: SocketAddr,
    connections: usize,
    local: impl Fn(usize) -> IpAddr,
    make: MakeRequest,
    mode: Mode,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<Running> {
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (window_tx, window_rx) = watch::channel(None::<(Instant, Instant, Instant)>);
    let mut tasks = Vec::with_capacity(connections);
    for index in 0..connections {
        let address = local(index);
        let make = make.clone();
        let connected = connected.clone();
        let failed = failed.clone();
        let mut window_rx = window_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut recorded = Recorded::default();
            let Ok(mut sender) = connect_patiently(address, server).await else {
                failed.fetch_add(1, Ordering::SeqCst);
                return recorded;
            };
            connected.fetch_add(1, Ordering::SeqCst);
            let Ok(window) = window_rx.wait_for(Option::is_some).await.map(|w| *w) else {
                return recorded;
            };
            let (begin, window_start, window_end) = window.expect("checked");
            drive(
                &mut sender,
                &mut recorded,
                Drive {
                    index,
                    connections,
                    address,
                    server,
                    make: &make,
                    mode,
                    begin,
                    window_start,
                    window_end,
                },
            )
            .await;
            recorded
        }));
    }
    // Connections open in parallel; the clock starts once all are up (or have given up).
    while connected.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst) < connections {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failures = failed.load(Ordering::SeqCst);
    if failures > 0 {
        eprintln!("  ({failures} of {connections} connections could not be opened)");
    }
    let begin = Instant::now();
    let window_start = begin + warmup;
    let window_end = window_start + measure;
    window_tx.send_replace(Some((begin, window_start, window_end)));
    Ok(Running {
        window_start,
        window_end,
        tasks,
    })
}

struct Drive<'a> {
    index: usize,
    connections: usize,
    address: IpAddr,
    server: SocketAddr,
    make: &'a MakeRequest,
    mode: Mode,
    begin: Instant,
    window_start: Instant,
    window_end: Instant,
}

async fn drive(sender: &mut SendRequest<Body>, recorded: &mut Recorded, run: Drive<'_>) {
    let mut n = 0u64;
    let mut due = match run.mode {
        Mode::Closed => run.begin,
        Mode::Open { interval } => {
            run.begin + interval.mul_f64(run.index as f64 / run.connections as f64)
        }
    };
    loop {
        if let Mode::Open { .. } = run.mode {
            if due >= run.window_end {
                break;
            }
            sleep_until(due).await;
        }
        let sent = Instant::now();
        if sent >= run.window_end {
            break;
        }
        // Open loop: latency from the scheduled time, even when the schedule slipped.
        let from = match run.mode {
            Mode::Closed => sent,
            Mode::Open { .. } => due,
        };
        let request = (run.make)(run.index, n);
        n += 1;
        let (status, retry_after) = match exchange_in_full(sender, request).await {
            Ok((status, retry_after, _)) => (status, retry_after),
            Err(_) => {
                if let Ok(fresh) = connect_patiently(run.address, run.server).await {
                    *sender = fresh;
                }
                (TRANSPORT_ERROR, None)
            }
        };
        if from >= run.window_start {
            recorded.record(from.elapsed(), status);
        }
        match run.mode {
            Mode::Open { interval } => due += interval,
            // A shed request: wait as told, like any well-behaved client (the open loop's
            // schedule already waits longer).
            Mode::Closed if status == 429 => {
                let wait = retry_after.unwrap_or(Duration::from_secs(1));
                sleep_until((Instant::now() + wait).min(run.window_end)).await;
            }
            Mode::Closed => {}
        }
    }
}
