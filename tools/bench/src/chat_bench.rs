//! Chat in the local stack: the time to the first streamed token and to the whole reply
//! (`done`), p50 and p95, with the offline provider; then the time to the fallback when the
//! LLM stalls (a server that accepts and never answers).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use devstack::stack::{start, RunningStack, StackOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::saga_bench::{percentiles, ready_persona};

/// Owners chatting, one after another.
const OWNERS: usize = 10;
/// Messages per owner (under the 30-a-minute limit).
const MESSAGES: usize = 20;
/// Messages to a stalled LLM.
const STALLED: usize = 5;

/// Timings of one streamed reply.
struct Timing {
    first_token: Duration,
    whole: Duration,
    source: String,
}

/// Sends one message with `Accept: text/event-stream` and times the events.
async fn streamed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    text: &str,
) -> anyhow::Result<Timing> {
    let started = Instant::now();
    let mut response = http
        .post(format!("{base}/v1/personas/me/messages"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&json!({ "content": text }))
        .send()
        .await?
        .error_for_status()?;
    let mut first_token = None;
    let mut body = String::new();
    while let Some(chunk) = response.chunk().await? {
        body.push_str(&String::from_utf8_lossy(&chunk));
        if first_token.is_none() && body.contains("event: token") {
            first_token = Some(started.elapsed());
        }
    }
    let whole = started.elapsed();
    let done = body
        .split("event: done\ndata: ")
        .nth(1)
        .context("the stream ended without `done`")?;
    let done: serde_json::Value = serde_json::from_str(done.trim())?;
    Ok(Timing {
        first_token: first_token.context("no token before `done`")?,
        whole,
        source: done["reply"]["source"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}

async fn stack(prefix: &str, overrides: BTreeMap<String, String>) -> anyhow::Result<RunningStack> {
    start(
        StackOptions {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            prefix: format!("{prefix}{}", std::process::id()),
            overrides,
            quiet: true,
        },
        CancellationToken::new(),
    )
    .await
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub async fn run() -> anyhow::Result<()> {
    let offline = stack("chatbench", BTreeMap::new()).await?;
    let outcome = offline_replies(&format!("http://{}", offline.address)).await;
    offline.stop().await?;
    outcome?;
    stalled_llm().await
}

async fn offline_replies(base: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut first = Vec::new();
    let mut whole = Vec::new();
    for owner in 0..OWNERS {
        let (token, _) = ready_persona(base, 1000 + owner).await?;
        for n in 0..MESSAGES {
            let timing = streamed(
                &http,
                base,
                &token,
                &format!("Message {n}: I went hiking in the mountains today"),
            )
            .await?;
            if timing.source != "llm" {
                bail!("an offline reply came from {}", timing.source);
            }
            first.push(millis(timing.first_token));
            whole.push(millis(timing.whole));
        }
    }
    let samples = first.len();
    let first = percentiles(&mut first);
    let whole = percentiles(&mut whole);
    println!("\n## Chat (offline provider, local stack, {samples} streamed messages, {OWNERS} owners one at a time)\n");
    println!("| | p50 | p95 | max |");
    println!("|---|---|---|---|");
    println!(
        "| first token | {:.1} ms | {:.1} ms | {:.1} ms |",
        first(0.5),
        first(0.95),
        first(1.0)
    );
    println!(
        "| whole reply (`done`) | {:.1} ms | {:.1} ms | {:.1} ms |",
        whole(0.5),
        whole(0.95),
        whole(1.0)
    );
    Ok(())
}

/// A stack whose LLM accepts connections and never answers.
async fn stalled_llm() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let stall = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    // Synthesis gives up on the stalled model after three 5 s attempts (rule-based fallback);
    // chat's 3 s budget runs out first.
    let overrides = BTreeMap::from([
        ("LLM_BASE_URL".to_owned(), format!("http://{address}")),
        ("LLM_TIMEOUT_SECS".to_owned(), "5".to_owned()),
        ("LLM_RETRY_BASE_MS".to_owned(), "50".to_owned()),
    ]);
    let running = stack("chatstall", overrides).await?;
    let base = format!("http://{}", running.address);
    let outcome: anyhow::Result<Vec<f64>> = async {
        let (token, _) = ready_persona(&base, 2000).await?;
        let http = reqwest::Client::new();
        let mut whole = Vec::new();
        for n in 0..STALLED {
            let timing = streamed(&http, &base, &token, &format!("Are you there? ({n})")).await?;
            if timing.source != "fallback" {
                bail!("a stalled LLM gave a {} reply", timing.source);
            }
            whole.push(millis(timing.whole));
        }
        Ok(whole)
    }
    .await;
    running.stop().await?;
    stall.abort();
    let mut whole = outcome?;
    let whole = percentiles(&mut whole);
    println!("\n| LLM stalls (never answers), {STALLED} messages | p50 | max |");
    println!("|---|---|---|");
    println!(
        "| in-character fallback (`done`) | {:.0} ms | {:.0} ms |",
        whole(0.5),
        whole(1.0)
    );
    Ok(())
}
