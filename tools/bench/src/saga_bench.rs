//! Third answer → persona `ready` in the local stack (offline LLM), over 100 personas.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use devstack::stack::{start, StackOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const PERSONAS: usize = 100;

fn client(last: u8) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 1, last]))
        .build()?)
}

fn answers(seed: usize) -> Value {
    let bank = domain::surveys::question_bank(domain::surveys::CURRENT_VERSION)
        .expect("the current question bank");
    domain::surveys::sample_answers(bank, seed as u32)
}

/// One owner's journey: sign-in, survey, three answers, the saga to `ready`. Returns the
/// owner's access token and the time from the third answer's response to `ready`.
pub async fn ready_persona(base: &str, index: usize) -> anyhow::Result<(String, Duration)> {
    let owner_client = client((index % 200) as u8 + 1)?;
    let owner: Value = owner_client
        .post(format!("{base}/v1/auth/dev"))
        .json(&json!({"email": format!("owner{index}@example.com"), "name": "Mira"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = owner["access_token"].as_str().context("token")?.to_owned();
    let survey: Value = owner_client
        .post(format!("{base}/v1/surveys"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let survey_id = survey["id"].as_str().context("survey")?.to_owned();
    let mut third_answered = Instant::now();
    for friend in 0..3 {
        client(((index * 3 + friend) % 250) as u8 + 1)?
            .post(format!("{base}/v1/surveys/{survey_id}/responses"))
            .header("x-fingerprint", format!("bench-{index}-{friend}"))
            .json(&json!({"answers": answers(index + friend)}))
            .send()
            .await?
            .error_for_status()?;
        third_answered = Instant::now();
    }
    loop {
        let status: Value = owner_client
            .get(format!("{base}/v1/personas/me/status"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        match status["state"].as_str() {
            Some("ready") => return Ok((token, third_answered.elapsed())),
            Some("failed") => bail!("persona failed: {status}"),
            _ => {}
        }
        if third_answered.elapsed() > Duration::from_secs(120) {
            bail!("persona {index} not ready after 120 s: {status}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn run() -> anyhow::Result<()> {
    let stack = start(
        StackOptions {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            prefix: format!("bench{}", std::process::id()),
            overrides: BTreeMap::new(),
            quiet: true,
        },
        CancellationToken::new(),
    )
    .await?;
    let base = format!("http://{}", stack.address);
    let mut latencies = Vec::with_capacity(PERSONAS);
    let started = Instant::now();
    let outcome: anyhow::Result<()> = async {
        // Four owners at a time: realistic overlap without measuring queueing behind ourselves.
        for chunk in (0..PERSONAS).collect::<Vec<_>>().chunks(4) {
            let results =
                futures_util::future::join_all(chunk.iter().map(|i| ready_persona(&base, *i)))
                    .await;
            for result in results {
                latencies.push(result?.1.as_secs_f64() * 1000.0);
            }
        }
        Ok(())
    }
    .await;
    stack.stop().await?;
    outcome?;
    let at = percentiles(&mut latencies);
    println!("\n## Saga latency (third answer → `ready`, offline LLM, local stack, {PERSONAS} personas, 4 at a time)\n");
    println!("| p50 | p95 | max | total run |");
    println!("|---|---|---|---|");
    println!(
        "| {:.0} ms | {:.0} ms | {:.0} ms | {:.1} s |",
        at(0.5),
        at(0.95),
        at(1.0),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Sorts `samples` and returns the percentile lookup (p in 0..=1, nearest rank).
pub fn percentiles(samples: &mut [f64]) -> impl Fn(f64) -> f64 + '_ {
    samples.sort_by(|a, b| a.total_cmp(b));
    let samples: &[f64] = samples;
    move |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}
