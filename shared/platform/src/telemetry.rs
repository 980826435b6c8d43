//! JSON logs for CloudWatch. Fields of the enclosing spans (request id, message id, persona id,
//! step) are flattened into every line, so a request can be followed from the API into the
//! workers. Only fields we name are logged: no request bodies, headers or addresses.

pub mod xray;

use tracing_subscriber::{fmt, fmt::MakeWriter, prelude::*, EnvFilter};

/// Installs the global JSON subscriber on stdout; `RUST_LOG` overrides the default `info` level.
/// Safe to call more than once (later calls are no-ops), which tests rely on.
pub fn init() {
    init_with_writer(std::io::stdout);
}

/// Like [`init`], writing to `writer` (tests capture every line to check what is logged). Traces
/// go to X-Ray when Lambda runs its daemon, or to stderr with `TRACES=print` ([`xray`]).
pub fn init_with_writer<W>(writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    crate::metrics::init();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(level_of(
            std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        ))
    });
    let installed = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .with_target(true)
                // Lambda adds its own timestamp to each line; keep ours for local runs.
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter),
        )
        .with(xray::Sink::from_env().map(xray::layer))
        .try_init()
        .is_ok();
    if installed {
        log_panics();
    }
}

/// The filter of a Lambda application log level (`AWS_LAMBDA_LOG_LEVEL`, which Lambda sets from
/// the function's `LoggingConfig`): below it, lines are not even formatted. `RUST_LOG`, when set,
/// takes precedence (a finer filter while investigating). Default: info.
fn level_of(lambda_level: Option<&str>) -> &'static str {
    match lambda_level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    }
}

/// Panics become one JSON error line (location and message) instead of free text on stderr.
/// Outside Lambda the default hook still prints too, so test failures stay readable.
fn log_panics() {
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic.location = location, panic.message = message, "panic");
        if !in_lambda {
            default_hook(info);
        }
    }));
}

/// An error chain for the log, without values: PostgreSQL errors are reduced to their SQLSTATE
/// and constraint (their DETAIL can quote row values such as a user's subject), and the chain
/// stops there.
pub fn describe(error: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in error.chain() {
        if let Some(pg) = cause.downcast_ref::<tokio_postgres::Error>() {
            match pg.as_db_error() {
                Some(db) => parts.push(format!(
                    "postgres error {} (constraint {})",
                    db.code().code(),
                    db.constraint().unwrap_or("-")
                )),
                None => parts.push("postgres connection error".to_owned()),
            }
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_log_level_sets_the_filter() {
        assert_eq!(level_of(Some("DEBUG")), "debug");
        assert_eq!(level_of(Some("FATAL")), "error");
        assert_eq!(level_of(Some("warn")), "warn");
        assert_eq!(level_of(None), "info");
        assert_eq!(level_of(Some("nonsense")), "info");
    }
}
