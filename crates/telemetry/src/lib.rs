//! aperture-telemetry: one tracing setup for the CLI, the worker and the operator.
//! `tracing` spans go to a stderr log and, through `tracing-opentelemetry`, to an
//! OpenTelemetry tracer whose spans are (a) always recorded in memory for
//! `diagnostics/trace.json` and (b) exported over OTLP (HTTP/protobuf or gRPC) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or an ImagingJob's `spec.telemetry` asks for it.
//! Export never blocks or fails a task: a dead collector costs one warning.

mod budget;
mod config;
mod export;
mod ids;
mod record;
mod recorder;
mod telemetry;

use thiserror::Error;

pub use budget::DEFAULT_PHASE_SPANS;
pub use config::{Protocol, TelemetryConfig, signal_url};
pub use export::ExportHealth;
pub use ids::{
    FixedIdGenerator, JOB_SPAN, parse_traceparent, remote_context, span_id_for, stage_traceparent,
    trace_id_for, traceparent, with_fixed_ids,
};
pub use record::{AttrValue, STATUS_ERROR, SpanRecord, from_otlp_json, to_otlp_json};
pub use recorder::{MAX_RECORDED_SPANS, Recorder};
pub use telemetry::{Telemetry, emit_global, now_unix_nano, set_error, set_remote_parent};

/// Why telemetry could not be set up or a span document not read.
#[derive(Debug, Error)]
pub enum TelemetryError {
    /// The OTLP exporter for this endpoint could not be built.
    #[error("cannot set up OTLP export to {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    /// A global tracing subscriber was already installed.
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
    /// An OTLP JSON span document is malformed.
    #[error("not an OTLP JSON trace document: {0}")]
    Decode(String),
    /// A span record's ids are not hex.
    #[error("span {name:?}: {reason}")]
    BadSpan { name: String, reason: String },
}
