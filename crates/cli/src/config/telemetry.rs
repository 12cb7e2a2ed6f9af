//! Logs and traces. Logs are JSON lines on stderr (`LEAN_FARM_LOG`).
//! Traces are off by default; with `otlp_endpoint` set, every span of the
//! process (the API request, the enqueue, the worker's lease and check, the
//! driver's check, each REPL command) is exported over OTLP/HTTP
//! (protobuf) to `ENDPOINT/v1/traces`, in batches, from the batch
//! processor's own thread. Both settings are flags or variables only (not
//! config file keys): tracing starts before the file is read.

use super::SettingError;
use crate::CliError;
use clap::Args;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct TelemetryArgs {
    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g. http://otel-collector:4318 (spans go to ENDPOINT/v1/traces) [default: none, traces off]
    #[arg(long, env = "LEAN_FARM_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The service.name of exported traces [default: leanfarm-api for serve, leanfarm-worker for worker]
    #[arg(long, env = "LEAN_FARM_OTLP_SERVICE_NAME")]
    pub otlp_service_name: Option<String>,
}

impl TelemetryArgs {
    pub fn validate(&self) -> Result<(), SettingError> {
        if let Some(endpoint) = &self.otlp_endpoint {
            let parsed = reqwest::Url::parse(endpoint).map_err(|error| {
                SettingError::new("otlp_endpoint", format!("not a URL: {error}"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(SettingError::new(
                    "otlp_endpoint",
                    format!("must be http:// or https://, not {}://", parsed.scheme()),
                ));
            }
        }
        if self
            .otlp_service_name
            .as_deref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return Err(SettingError::new(
                "otlp_service_name",
                "must not be empty".to_string(),
            ));
        }
        Ok(())
    }
}

/// The trace exporter of the process, flushed by `shutdown`.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Export the spans still buffered and stop (call outside the async runtime).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                eprintln!("leanfarm: flushing traces failed: {error}");
            }
        }
    }
}

/// JSON logs on stderr, filtered by LEAN_FARM_LOG, else at `default`; and,
/// when `telemetry` names an endpoint, traces exported to it.
pub fn init(
    default: &str,
    telemetry: Option<&TelemetryArgs>,
    default_service_name: &str,
) -> Result<Telemetry, CliError> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEAN_FARM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let Some(endpoint) = telemetry.and_then(|args| args.otlp_endpoint.as_deref()) else {
        let _ = tracing_subscriber::registry()
            .with(json_logs().with_filter(events_only(filter)))
            .try_init();
        return Ok(Telemetry::default());
    };
    let service_name = telemetry
        .and_then(|args| args.otlp_service_name.clone())
        .unwrap_or_else(|| default_service_name.to_string());
    let traces_url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces_url.clone())
        .build()
        .map_err(|error| {
            CliError::Config(format!(
                "--otlp-endpoint {endpoint}: cannot export: {error}"
            ))
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("leanfarm");
    // Traces follow the farm's own spans at info and above, whatever
    // LEAN_FARM_LOG lets through to the logs.
    let farm_spans = tracing_subscriber::filter::filter_fn(|metadata| {
        *metadata.level() <= tracing::Level::INFO && metadata.target().starts_with("leanfarm")
    });
    let _ = tracing_subscriber::registry()
        .with(json_logs().with_filter(events_only(filter)))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(farm_spans),
        )
        .try_init();
    tracing::info!(%traces_url, service_name, "exporting traces");
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// JSON lines on stderr, without the spans each event is in (traces carry those).
fn json_logs<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
}

/// The logs' filter: LEAN_FARM_LOG, for events only. Logs show no spans, so
/// with traces off no layer wants a span and creating one costs nothing.
fn events_only<S>(
    filter: tracing_subscriber::EnvFilter,
) -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use tracing_subscriber::filter::FilterExt;
    filter.and(tracing_subscriber::filter::filter_fn(|metadata| {
        metadata.is_event()
    }))
}
