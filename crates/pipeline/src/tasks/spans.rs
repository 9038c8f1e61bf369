//! A worker's spans in storage: after its task span closes, the worker writes what its
//! recorder holds to `diagnostics/spans/<stage>/<index>-a<attempt>.json` (OTLP JSON), so
//! the job's trace and report exist whether or not a collector was configured. Failing
//! to store them costs a warning, never the task.

use aperture_telemetry::{Recorder, to_otlp_json};

use crate::storage::Store;

/// Prefix of every stored span document.
pub const SPANS_PREFIX: &str = "diagnostics/spans/";

/// Key of the spans of one task attempt.
pub fn span_key(stage: &str, index: u32, attempt: u32) -> String {
    format!("{SPANS_PREFIX}{stage}/{index}-a{attempt}.json")
}

/// Writes and clears the recorded spans.
pub async fn store(out: &Store, recorder: &Recorder, stage: &str, index: u32, attempt: u32) {
    let (spans, dropped) = recorder.take();
    if spans.is_empty() {
        return;
    }
    if dropped > 0 {
        eprintln!(
            "warning: task {stage}/{index}: {dropped} spans over the recorder's bound were not kept"
        );
    }
    let key = span_key(stage, index, attempt);
    if let Err(e) = out.put_json(&key, &to_otlp_json(&spans)).await {
        eprintln!(
            "warning: task {stage}/{index}: cannot store its spans at {}: {e}",
            out.key_url(&key)
        );
    }
}
