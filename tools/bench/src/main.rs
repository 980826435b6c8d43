//! Benchmarks (reported, never asserted): `cargo run --release -p bench [cards|saga|chat|load|cold|soak]`.
//!
//! - `cards`: card rendering per size: warm median and p95 in one process, cold (process start
//!   to PNG written) and peak RSS of a fresh process; side by side with the earlier plan's Node
//!   pipeline (satori + @resvg/resvg-js + qrcode, installed from npm into a scratch folder) in
//!   the same run, as a ratio.
//! - `saga`: third answer → persona `ready` in the local stack with the offline LLM, p50 and p95
//!   over 100 personas.
//! - `chat`: first streamed token and whole reply, p50 and p95, offline provider in the local
//!   stack; and the fallback's time when the LLM stalls.
//! - `load [seconds]`: the stack in a process of its own under closed- and open-loop load, per
//!   route: requests/s, latency percentiles, statuses, CPU per request of each process, and
//!   PostgreSQL round trips per request (see `load`).
//! - `cold`: each Lambda function binary from exec to its first event handled, against a local
//!   Runtime API; binary sizes and peak RSS.
//! - `soak [messages]`: the saga soak, 10,000 distinct messages delivered 1–3 times each,
//!   shuffled, with crashes at every boundary; the census and the dead-letter queues.

mod cards_bench;
mod chat_bench;
mod cold;
mod load;
mod procfs;
mod saga_bench;
mod soak_bench;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // Internal: one cold render in a fresh process.
        Some("cold-render") => cards_bench::cold_render(&args[1], &args[2]),
        Some("cards") => cards_bench::run(),
        // Internal: the load benchmark's stack process.
        Some("stack") => {
            platform::telemetry::init();
            devstack::stack::run_from_env().await
        }
        Some("load") => {
            platform::telemetry::init_with_writer(std::io::sink);
            let seconds = args.get(1).map(|s| s.parse()).transpose()?;
            load::run_all(seconds).await
        }
        Some("cold") => {
            platform::telemetry::init_with_writer(std::io::sink);
            cold::run().await
        }
        Some("soak") => {
            platform::telemetry::init_with_writer(std::io::sink);
            let messages = args.get(1).map(|s| s.parse()).transpose()?;
            soak_bench::run(messages.unwrap_or(10_000)).await
        }
        Some("saga") => {
            platform::telemetry::init_with_writer(std::io::sink);
            saga_bench::run().await
        }
        Some("chat") => {
            platform::telemetry::init_with_writer(std::io::sink);
            chat_bench::run().await
        }
        None => {
            cards_bench::run()?;
            platform::telemetry::init_with_writer(std::io::sink);
            saga_bench::run().await?;
            chat_bench::run().await
        }
        Some(other) => {
            anyhow::bail!("unknown benchmark {other:?}; use cards, saga, chat, load, cold or soak")
        }
    }
}
