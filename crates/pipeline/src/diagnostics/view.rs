//! [`RunView`]: everything the diagnostics show about one run, read back from storage.

use aperture_telemetry::SpanRecord;
use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::tasks::TaskManifest;

/// How the run stands (in `diagnostics/run.json` as `"state": "failed", "reason": …`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RunState {
    Succeeded,
    Failed {
        reason: String,
    },
    /// Still running, or stopped without an outcome (interrupted, operator gone).
    Running,
}

/// A run's plan, committed task manifests and recorded spans (job, stage, task and
/// phase spans, including those of failed attempts).
#[derive(Debug, Clone)]
pub struct RunView {
    pub plan: Plan,
    pub manifests: Vec<TaskManifest>,
    pub spans: Vec<SpanRecord>,
    pub state: RunState,
    /// When the view was taken, Unix seconds.
    pub generated_unix: f64,
}
