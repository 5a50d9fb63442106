//! Logs and traces: one `tracing` subscriber for the binary (and for tests that want its spans).
//!
//! Logs always go to stdout (`--log-format text|json`, level from `RUST_LOG`). Traces are
//! exported over OTLP only when an endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), so a plain deployment pays nothing for them. Every
//! other standard variable is honoured by the OpenTelemetry SDK and exporter themselves:
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `grpc`), `_HEADERS`,
//! `_TIMEOUT`, `_COMPRESSION`, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (the service
//! name defaults to `agent-webkit-server`), `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`.
//!
//! Spans come from `tracing` through `tracing-opentelemetry`, so the code has one vocabulary for
//! logs and traces. Which spans exist, and their attributes (see README "Operating it"):
//! - `http.request` per request (`http/trace.rs`): route template, status, `session_id`,
//!   `host_id`, `protocol_version`, and `correlation_id` / `event_seq` where a request has them;
//!   a W3C `traceparent` header continues the caller's trace ([`parent_from_headers`]);
//! - `session.turn` per turn of a session task, a child of the `POST /input` that queued it,
//!   with the turn's `event_seq` range; `session.ask` events carry `correlation_id`;
//! - `store.commit` per group-commit batch, with its size.

use anyhow::Context as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const SERVICE_NAME: &str = "agent-webkit-server";

/// Owns the trace pipeline; [`Telemetry::shutdown`] flushes the spans still buffered.
#[must_use = "dropping it does not flush buffered spans; call shutdown"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is buffered and stops the exporter (blocking work, off the async threads).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("exporting the last spans failed: {e}");
        }
    }
}

/// Installs the process-wide subscriber: logs, plus OTLP traces when configured. Must run inside
/// the Tokio runtime (the gRPC exporter binds to it).
pub fn init(format: LogFormat) -> anyhow::Result<Telemetry> {
    let provider = otlp_configured()
        .then(otlp_provider)
        .transpose()
        .context("setting up the OTLP trace exporter")?;
    install(format, provider.as_ref(), std::io::stdout)?;
    if provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

/// Installs the subscriber with a given tracer provider and log writer. [`init`] uses it; tests
/// use it with their own exporter and a test writer.
pub fn install<W>(
    format: LogFormat,
    provider: Option<&SdkTracerProvider>,
    writer: W,
) -> anyhow::Result<()>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .boxed(),
    };
    let traces = provider.map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(SERVICE_NAME))
            .with_tracked_inactivity(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init()
        .context("installing the tracing subscriber")
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

/// The OTLP exporter as the `OTEL_*` variables describe it, behind a batching processor.
fn otlp_provider() -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// The SDK's resource (which reads `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`), with
/// our service name unless one of those gives another.
pub fn resource() -> Resource {
    let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    let builder = Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name(SERVICE_NAME).build()
    }
}

/// The caller's trace context from W3C `traceparent`/`tracestate` headers (empty without them).
pub fn parent_from_headers(headers: &axum::http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
