//! Traces for AWS X-Ray, the way Powertools' Tracer and the X-Ray SDKs make them in Lambda:
//! each call to PostgreSQL, DynamoDB, S3, SQS or the LLM becomes a subsegment of the function's
//! segment, sent as a JSON document over UDP to the X-Ray daemon Lambda runs beside the function
//! (`AWS_XRAY_DAEMON_ADDRESS`, present when the function's `Tracing` is `Active`).
//! <https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html>
//!
//! The subsegments come from `tracing` spans, so instrumenting a call is opening a span:
//! - every AWS SDK operation already runs in a span of its own (`rpc.system = "aws-api"`,
//!   `rpc.service`, `rpc.method`), which becomes an `aws` subsegment named after the service;
//! - our spans, opened with [`postgres`] (every cached statement, see `db::CachedStatements`)
//!   and [`remote`] (the LLM), carry `xray.name` and become `remote` subsegments.
//!
//! The trace and the parent come from the invocation: the Lambda runtime's `Lambda runtime
//! invoke` span (its `xrayTraceId`) or `_X_AMZN_TRACE_ID`. Nothing is sent for an invocation
//! X-Ray did not sample. A subsegment inside another (none today) is that one's child.
//!
//! Locally nothing is traced unless `TRACES=print`: then each top-level span (a request, a
//! saga step) is a segment of a trace of its own and every document is printed to stderr.
//!
//! Why not a crate: `xray-lite` keeps ids and headers private (a child cannot name its parent),
//! and the OpenTelemetry crates have no X-Ray daemon exporter (only OTLP, which in Lambda needs a
//! collector layer). What is left is this mapping and a UDP send.

use std::{
    io::Write,
    net::{SocketAddr, UdpSocket},
};

use serde::Serialize;
use tracing::{
    field::{Field, Visit},
    span, Level, Metadata, Subscriber,
};
use tracing_subscriber::{
    filter::{filter_fn, FilterFn},
    layer::Context,
    registry::LookupSpan,
    Layer,
};

/// The target of our own traced spans.
pub const TARGET: &str = "remirai::trace";

/// The span the Lambda runtime opens around each invocation, and its trace header field.
const INVOCATION_SPAN: &str = "Lambda runtime invoke";
const TRACE_FIELD: &str = "xrayTraceId";

/// A PostgreSQL statement's span (a `remote` subsegment with the statement, which holds only
/// placeholders: values are bound parameters and never part of the text).
pub fn postgres(statement: &str) -> tracing::Span {
    tracing::debug_span!(
        target: TARGET,
        "postgres",
        "xray.name" = "PostgreSQL",
        "db.system" = "postgresql",
        "db.statement" = statement,
    )
}

/// An outgoing HTTP call's span, named after the service; record `http.status_code` on it when
/// the answer comes (4xx marks the subsegment an error, 5xx a fault, 429 throttled). The URL is
/// recorded without user, password or query, where a credential could hide.
pub fn remote(name: &'static str, method: &'static str, url: &str) -> tracing::Span {
    tracing::debug_span!(
        target: TARGET,
        "remote",
        "xray.name" = name,
        "http.method" = method,
        "http.url" = without_credentials(url),
        "http.status_code" = tracing::field::Empty,
    )
}

fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Where documents go.
pub enum Sink {
    /// The X-Ray daemon (UDP).
    Daemon(UdpSocket),
    /// Stderr, one document per line (`TRACES=print`).
    Print,
}

impl Sink {
    /// From the environment: the daemon when Lambda runs one, stderr when `TRACES=print`,
    /// otherwise none (no layer, and our trace spans are never even created).
    pub fn from_env() -> Option<Self> {
        if std::env::var("TRACES").is_ok_and(|v| v == "print") {
            return Some(Self::Print);
        }
        let address: SocketAddr = std::env::var("AWS_XRAY_DAEMON_ADDRESS")
            .ok()?
            .parse()
            .ok()?;
        Self::daemon(address).ok()
    }

    /// Sends to the daemon at `address`.
    pub fn daemon(address: SocketAddr) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(if address.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        socket.set_nonblocking(true)?;
        socket.connect(address)?;
        Ok(Self::Daemon(socket))
    }

    fn send(&self, document: &Document<'_>) {
        let Ok(json) = serde_json::to_vec(document) else {
            return;
        };
        match self {
            // Best effort, as the X-Ray SDKs: a full buffer drops the document, never the call.
            Self::Daemon(socket) => {
                let packet = [&b"{\"format\": \"json\", \"version\": 1}\n"[..], &json].concat();
                let _ = socket.send(&packet);
            }
            Self::Print => {
                let mut line = json;
                line.push(b'\n');
                let _ = std::io::stderr().lock().write_all(&line);
            }
        }
    }
}

/// The layer, with the filter that picks its spans.
pub fn layer<S>(sink: Sink) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let local = matches!(sink, Sink::Print);
    XrayLayer { sink }.with_filter(spans(local))
}

/// Spans only: ours, the AWS SDK's operations, the invocation, and locally the top-level spans
/// (info) that become segments. Decided per call site once.
fn spans(local: bool) -> FilterFn<impl Fn(&Metadata<'_>) -> bool> {
    filter_fn(move |meta: &Metadata<'_>| {
        meta.is_span()
            && (meta.target() == TARGET
                || meta.target().starts_with("aws_sdk_")
                || meta.name() == INVOCATION_SPAN
                || (local && *meta.level() <= Level::INFO))
    })
}

struct XrayLayer {
    sink: Sink,
}

/// Where a span sits in a trace (kept in the span's extensions).
#[derive(Clone)]
struct Place {
    trace_id: String,
    /// The segment or subsegment new children hang from.
    id: String,
}

/// A span being recorded as a (sub)segment.
struct Open {
    place: Place,
    parent_id: Option<String>,
    start: f64,
    fields: Fields,
    /// A locally made root (`TRACES=print`): a segment, not a subsegment.
    segment: bool,
}

#[derive(Default)]
struct Fields {
    span_name: &'static str,
    xray_name: Option<String>,
    rpc_system: Option<String>,
    rpc_service: Option<String>,
    rpc_method: Option<String>,
    db_system: Option<String>,
    db_statement: Option<String>,
    http_method: Option<String>,
    http_url: Option<String>,
    http_status: Option<u64>,
    trace_header: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "xray.name" => &mut self.xray_name,
            "rpc.system" => &mut self.rpc_system,
            "rpc.service" => &mut self.rpc_service,
            "rpc.method" => &mut self.rpc_method,
            "db.system" => &mut self.db_system,
            "db.statement" => &mut self.db_statement,
            "http.method" => &mut self.http_method,
            "http.url" => &mut self.http_url,
            TRACE_FIELD => &mut self.trace_header,
            _ => return,
        };
        *slot = Some(value.to_owned());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "http.status_code" {
            self.http_status = Some(value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `&String` and `Cow<str>` fields arrive here; strip the quotes Debug adds.
        let text = format!("{value:?}");
        self.record_str(field, text.trim_matches('"'));
    }
}

impl Fields {
    /// The subsegment's name and namespace, when this span is one.
    fn subsegment(&self) -> Option<(&str, &'static str)> {
        if self.rpc_system.as_deref() == Some("aws-api") {
            return Some((self.rpc_service.as_deref()?, "aws"));
        }
        Some((self.xray_name.as_deref()?, "remote"))
    }
}

/// `Root=1-…;Parent=…;Sampled=1` → the place its children hang from; `None` when not sampled.
fn parse_header(header: &str) -> Option<Place> {
    let (mut root, mut parent, mut sampled) = (None, None, false);
    for part in header.split(';') {
        match part.trim().split_once('=') {
            Some(("Root", value)) => root = Some(value),
            Some(("Parent", value)) => parent = Some(value),
            Some(("Sampled", value)) => sampled = value == "1",
            _ => {}
        }
    }
    sampled.then_some(())?;
    Some(Place {
        trace_id: root?.to_owned(),
        id: parent?.to_owned(),
    })
}

/// 16 random hex digits.
fn new_id() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    crate::crypto::hex(&bytes[..8])
}

/// `1-{epoch seconds, 8 hex}-{24 random hex}`.
fn new_trace_id(now: f64) -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    format!("1-{:08x}-{}", now as u64, crate::crypto::hex(&bytes[..12]))
}

fn now() -> f64 {
    crate::clock::system().now().timestamp_micros() as f64 / 1e6
}

impl<S> Layer<S> for XrayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields {
            span_name: attrs.metadata().name(),
            ..Fields::default()
        };
        attrs.record(&mut fields);

        // The invocation's span only tells where its children hang.
        if let Some(header) = &fields.trace_header {
            if let Some(place) = parse_header(header) {
                span.extensions_mut().insert(place);
            }
            return;
        }

        // Where an enclosing span put us, or the invocation's header from the environment.
        let inherited = span
            .parent()
            .and_then(|parent| {
                parent
                    .scope()
                    .find_map(|ancestor| ancestor.extensions().get::<Place>().cloned())
            })
            .or_else(|| {
                std::env::var("_X_AMZN_TRACE_ID")
                    .ok()
                    .and_then(|header| parse_header(&header))
            });
        let start = now();
        let open = match (inherited, fields.subsegment().is_some()) {
            (Some(parent), true) => Open {
                place: Place {
                    trace_id: parent.trace_id,
                    id: new_id(),
                },
                parent_id: Some(parent.id),
                start,
                fields,
                segment: false,
            },
            // A top-level span while printing locally: the segment of a trace of its own.
            (None, _) if matches!(self.sink, Sink::Print) && span.parent().is_none() => Open {
                place: Place {
                    trace_id: new_trace_id(start),
                    id: new_id(),
                },
                parent_id: None,
                start,
                fields,
                segment: true,
            },
            // Not sampled, outside any invocation, or not a traced call.
            _ => return,
        };
        let mut extensions = span.extensions_mut();
        extensions.insert(open.place.clone());
        extensions.insert(open);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(open) = span.extensions_mut().get_mut::<Open>() {
                values.record(&mut open.fields);
            }
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        self.sink.send(&Document::of(&open, now()));
    }
}

/// One segment document, as the daemon takes it.
#[derive(Serialize)]
struct Document<'a> {
    name: &'a str,
    id: &'a str,
    trace_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<&'a str>,
    start_time: f64,
    end_time: f64,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aws: Option<Aws<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<Sql<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<Http<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    error: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fault: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    throttle: bool,
}

#[derive(Serialize)]
struct Aws<'a> {
    operation: &'a str,
}

#[derive(Serialize)]
struct Sql<'a> {
    database_type: &'a str,
    sanitized_query: &'a str,
}

#[derive(Serialize)]
struct Http<'a> {
    request: HttpRequest<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<HttpResponse>,
}

#[derive(Serialize)]
struct HttpRequest<'a> {
    method: &'a str,
    url: &'a str,
}

#[derive(Serialize)]
struct HttpResponse {
    status: u64,
}

impl<'a> Document<'a> {
    fn of(open: &'a Open, end: f64) -> Self {
        let fields = &open.fields;
        let (name, namespace) = match fields.subsegment() {
            Some((name, namespace)) => (name, Some(namespace)),
            None => (fields.span_name, None),
        };
        let status = fields.http_status.unwrap_or(0);
        Document {
            name,
            id: &open.place.id,
            trace_id: &open.place.trace_id,
            parent_id: open.parent_id.as_deref(),
            start_time: open.start,
            end_time: end,
            kind: (!open.segment).then_some("subsegment"),
            namespace,
            aws: fields
                .rpc_method
                .as_deref()
                .filter(|_| namespace == Some("aws"))
                .map(|operation| Aws { operation }),
            sql: fields
                .db_system
                .as_ref()
                .zip(fields.db_statement.as_deref())
                .map(|(_, statement)| Sql {
                    database_type: "PostgreSQL",
                    sanitized_query: statement,
                }),
            http: fields
                .http_method
                .as_deref()
                .zip(fields.http_url.as_deref())
                .map(|(method, url)| Http {
                    request: HttpRequest { method, url },
                    response: fields.http_status.map(|status| HttpResponse { status }),
                }),
            error: (400..500).contains(&status),
            fault: status >= 500,
            throttle: status == 429,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sampled_headers_place_children() {
        let place = parse_header(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .expect("sampled");
        assert_eq!(place.trace_id, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(place.id, "53995c3f42cd8ad8");
        assert!(parse_header(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
        )
        .is_none());
        assert!(parse_header("Root=1-5759e988-bd862e3fe1be46a994272793").is_none());
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            without_credentials("https://user:pass@llm.example/v1/chat/completions?key=k#f"),
            "https://llm.example/v1/chat/completions"
        );
        assert_eq!(without_credentials("not a url"), "(not a URL)");
    }

    #[test]
    fn ids_have_x_rays_shapes() {
        assert_eq!(new_id().len(), 16);
        let trace = new_trace_id(1_700_000_000.0);
        assert!(trace.starts_with("1-6553f100-"), "{trace}");
        assert_eq!(trace.len(), 35);
    }
}
