//! CloudWatch metrics in the embedded metric format (EMF): the `metrics` facade records, and
//! after each Lambda invocation the collector writes one JSON line per dimension set to stdout,
//! from which CloudWatch extracts the metrics. No agent, no API call, no extra latency.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
//!
//! Namespace [`NAMESPACE`]. Dimensions are bounded: the function's role (`http_api`,
//! `synthesize`, `render_card`, `sweeper`, …), the saga step, an outcome or error class, a
//! status class — never a user, persona, survey or request id (each distinct value is a
//! separate, billed metric).

use std::{io::Write, sync::OnceLock, time::Duration};

use metrics_cloudwatch_embedded::Collector;

pub use metrics::{counter, gauge, histogram};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "ReMirAI";

static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();

/// Installs the global recorder (once per process; later calls do nothing). Inside Lambda the
/// metrics are written after each invocation ([`invocation_done`]); the local stack writes them
/// on an interval ([`flush_every`]).
pub fn init() {
    COLLECTOR.get_or_init(|| {
        metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .init()
            .ok()
    });
}

/// Writes the metrics to stdout every `interval`, for a long-running process (the local stack).
pub async fn flush_every(interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(error) = flush_into(std::io::stdout().lock()) {
            tracing::warn!(error = %error, "could not write metrics");
        }
    }
}

fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// The end of a Lambda invocation: writes what it recorded to stdout (a no-op outside Lambda,
/// where the recorder flushes on an interval or when asked).
pub fn invocation_done() {
    if in_lambda() {
        if let Err(error) = flush_into(std::io::stdout().lock()) {
            tracing::warn!(error = %error, "could not write metrics");
        }
    }
}

/// Writes every metric recorded since the last flush to `writer`, one EMF document a line.
pub fn flush_into(writer: impl Write) -> std::io::Result<()> {
    match COLLECTOR.get().copied().flatten() {
        Some(collector) => collector.flush(writer),
        None => Ok(()),
    }
}

/// Milliseconds, for latency histograms.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
