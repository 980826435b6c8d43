//! Benchmarks (reported, never asserted): `cargo run --release -p bench [cards|saga|chat]`.
//!
//! - `cards`: card rendering per size: warm median and p95 in one process, cold (process start
//!   to PNG written) and peak RSS of a fresh process; side by side with the earlier plan's Node
//!   pipeline (satori + @resvg/resvg-js + qrcode, installed from npm into a scratch folder) in
//!   the same run, as a ratio.
//! - `saga`: third answer → persona `ready` in the local stack with the offline LLM, p50 and p95
//!   over 100 personas.
//! - `chat`: first streamed token and whole reply, p50 and p95, offline provider in the local
//!   stack; and the fallback's time when the LLM stalls.

mod cards_bench;
mod chat_bench;
mod saga_bench;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // Internal: one cold render in a fresh process.
        Some("cold-render") => cards_bench::cold_render(&args[1], &args[2]),
        Some("cards") => cards_bench::run(),
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
        Some(other) => anyhow::bail!("unknown benchmark {other:?}; use cards, saga or chat"),
    }
}
