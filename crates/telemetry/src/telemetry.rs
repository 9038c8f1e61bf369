//! [`Telemetry`]: the tracer provider (recorder + optional OTLP exporter), the
//! `tracing` layers that feed it, and emitting spans whose ids and times are known in
//! advance (a job's job and stage spans).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::TelemetryError;
use crate::budget::{PhaseBudget, SpanFilter};
use crate::config::TelemetryConfig;
use crate::export::{ExportHealth, Exporter, build};
use crate::ids::{FixedIdGenerator, remote_context, with_fixed_ids};
use crate::record::{AttrValue, STATUS_ERROR, SpanRecord};
use crate::recorder::Recorder;

/// Log directives added when `RUST_LOG` is unset: the OpenTelemetry crates' own
/// diagnostics would repeat every export failure that [`crate::ExportHealth`] reports once.
const QUIET: &str = "opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry_http=off,tonic=off,h2=off,hyper=off,reqwest=off";

/// A process's telemetry. Dropping it flushes and stops the exporter (bounded by the
/// export timeout).
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    recorder: Recorder,
    health: Arc<ExportHealth>,
    config: TelemetryConfig,
    exporting: bool,
    budget: Arc<PhaseBudget>,
}

impl Telemetry {
    /// Builds the provider. Problems (an unusable variable, an exporter that cannot be
    /// built) are reported once on stderr and turn export off; they never fail the caller.
    pub fn new(config: TelemetryConfig) -> Self {
        for p in &config.problems {
            eprintln!("warning: telemetry: {p}");
        }
        let recorder = Recorder::new(&config.service_name);
        let health = Arc::new(ExportHealth::default());
        let mut resource = Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        for (k, v) in &config.resource {
            resource = resource.with_attribute(KeyValue::new(k.clone(), v.clone()));
        }
        let mut builder = SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_id_generator(FixedIdGenerator::default())
            .with_span_processor(recorder.clone());
        let mut exporting = false;
        if let Some(ep) = &config.endpoint {
            let batch = BatchConfigBuilder::default()
                .with_max_queue_size(65_536)
                .with_max_export_batch_size(2_048)
                .with_scheduled_delay(Duration::from_millis(500))
                .build();
            match build(&config, ep, health.clone()) {
                Ok(Exporter::Http(e)) => {
                    exporting = true;
                    builder = builder.with_span_processor(
                        BatchSpanProcessor::builder(e)
                            .with_batch_config(batch)
                            .build(),
                    );
                }
                Ok(Exporter::Grpc(e)) => {
                    exporting = true;
                    builder = builder.with_span_processor(
                        BatchSpanProcessor::builder(e)
                            .with_batch_config(batch)
                            .build(),
                    );
                }
                Err(e) => eprintln!("warning: {e}; spans are kept under diagnostics/ only"),
            }
        }
        let provider = builder.build();
        let tracer = provider.tracer("aperture");
        Self {
            budget: PhaseBudget::new(config.phase_span_budget),
            provider,
            tracer,
            recorder,
            health,
            config,
            exporting,
        }
    }

    /// [`Telemetry::new`] and [`Telemetry::install`] in one.
    pub fn init(config: TelemetryConfig) -> Self {
        let t = Self::new(config);
        if let Err(e) = t.install() {
            eprintln!("warning: telemetry: {e}");
        }
        t
    }

    /// The layer that turns aperture's `tracing` spans into OpenTelemetry spans (INFO
    /// spans always, DEBUG phase spans within the budget; see `budget.rs`).
    pub fn layer<S>(&self) -> impl Layer<S> + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(SpanFilter(self.budget.clone()))
    }

    /// Installs the global subscriber: a stderr log (`RUST_LOG`, else the configured
    /// default) and [`Telemetry::layer`].
    pub fn install(&self) -> Result<(), TelemetryError> {
        let filter = match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
            _ => EnvFilter::new(format!("{},{QUIET}", self.config.default_log)),
        };
        tracing_subscriber::registry()
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .with(self.layer())
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInstalled)?;
        // For [`emit_global`]: code far from `main` (the operator's reconcile) exports
        // its derived spans through the installed provider.
        opentelemetry::global::set_tracer_provider(self.provider.clone());
        Ok(())
    }

    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// Spans recorded by this process.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Whether spans are exported (an endpoint is set and its exporter was built).
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Per-w-plane phase spans not recorded because the process's budget was spent.
    pub fn phase_spans_dropped(&self) -> u64 {
        self.budget.dropped()
    }

    /// Export successes and failures so far.
    pub fn health(&self) -> &ExportHealth {
        &self.health
    }

    /// Emits finished spans whose ids and times are already known (the job and stage
    /// spans a run derives from its task manifests): they are exported and recorded
    /// like any other span.
    pub fn emit(&self, spans: &[SpanRecord]) -> Result<(), TelemetryError> {
        emit_with(&self.tracer, spans)
    }

    /// Sends what is queued (bounded by the export timeout).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    /// Flushes and stops export; later spans are only recorded.
    pub fn shutdown(&self) {
        let _ = self
            .provider
            .shutdown_with_timeout(self.config.timeout + Duration::from_secs(1));
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn otel_value(v: &AttrValue) -> Value {
    match v {
        AttrValue::Bool(b) => Value::Bool(*b),
        AttrValue::Int(i) => Value::I64(*i),
        AttrValue::Double(d) => Value::F64(*d),
        AttrValue::String(s) => Value::String(s.clone().into()),
    }
}

/// Makes `traceparent` the (remote) parent of `span`; false (and no change) when it is
/// not a valid W3C traceparent.
pub fn set_remote_parent(span: &tracing::Span, traceparent: &str) -> bool {
    match remote_context(traceparent) {
        Some(cx) => span.set_parent(cx).is_ok(),
        None => false,
    }
}

/// Now as Unix nanoseconds.
pub fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Marks `span` as failed with `message` (OTLP status ERROR).
pub fn set_error(span: &tracing::Span, message: &str) {
    span.set_status(Status::error(message.to_string()));
}

/// [`Telemetry::emit`] through `tracer`.
fn emit_with<T: Tracer>(tracer: &T, spans: &[SpanRecord]) -> Result<(), TelemetryError> {
    for r in spans {
        let bad = |reason: &str| TelemetryError::BadSpan {
            name: r.name.clone(),
            reason: reason.to_string(),
        };
        let trace = TraceId::from_hex(&r.trace_id).map_err(|_| bad("traceId is not hex"))?;
        let id = SpanId::from_hex(&r.span_id).map_err(|_| bad("spanId is not hex"))?;
        let parent_cx = if r.parent_span_id.is_empty() {
            Context::new()
        } else {
            let p =
                SpanId::from_hex(&r.parent_span_id).map_err(|_| bad("parentSpanId is not hex"))?;
            Context::new().with_remote_span_context(SpanContext::new(
                trace,
                p,
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            ))
        };
        let attrs: Vec<KeyValue> = r
            .attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), otel_value(v)))
            .collect();
        let builder = tracer
            .span_builder(r.name.clone())
            .with_kind(SpanKind::Internal)
            .with_start_time(UNIX_EPOCH + Duration::from_nanos(r.start_unix_nano))
            .with_attributes(attrs);
        let mut span = with_fixed_ids(trace, id, || tracer.build_with_context(builder, &parent_cx));
        if r.status_code == STATUS_ERROR {
            opentelemetry::trace::Span::set_status(
                &mut span,
                Status::error(r.status_message.clone()),
            );
        }
        opentelemetry::trace::Span::end_with_timestamp(
            &mut span,
            UNIX_EPOCH + Duration::from_nanos(r.end_unix_nano),
        );
    }
    Ok(())
}

/// [`Telemetry::emit`] through the provider [`Telemetry::install`] made global (a no-op
/// when none was installed).
pub fn emit_global(spans: &[SpanRecord]) -> Result<(), TelemetryError> {
    emit_with(&opentelemetry::global::tracer("aperture"), spans)
}
