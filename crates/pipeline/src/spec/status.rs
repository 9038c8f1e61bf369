//! `status` of an `ImagingJob`: bounded in size (O(stages), never O(tasks)).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Phase of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum JobPhase {
    /// Seen, not yet planned.
    #[default]
    Pending,
    /// Gathering input facts and writing `plan.json`.
    Planning,
    /// Stage Jobs are running.
    Running,
    /// Every stage is done; the products are in `status.outputs`.
    Succeeded,
    /// The job cannot finish; the `Failed` condition says why.
    Failed,
}

impl JobPhase {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Planning => "Planning",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    /// Succeeded or Failed: nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Task counts of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct StageCounts {
    /// Tasks in the stage.
    pub total: u32,
    /// Tasks whose result manifest exists.
    pub succeeded: u32,
    /// Failed attempts (pods) so far, retried ones included.
    pub failed: u32,
    /// Tasks running now.
    pub running: u32,
    /// Skipped because the job converged before this stage's cycle.
    #[serde(default)]
    pub skipped: bool,
}

impl StageCounts {
    /// Every task succeeded.
    pub fn complete(&self) -> bool {
        self.total > 0 && self.succeeded >= self.total
    }
}

/// Observed state written by the operator (and mirrored by `aperture run` in its
/// messages). Its size is O(stages): a 5500-window, 10-cycle job stays a few KiB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImagingJobStatus {
    #[serde(default)]
    pub phase: JobPhase,
    /// Current major cycle (0 = initial imaging).
    #[serde(default)]
    pub cycle: u32,
    /// Major cycles planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_cycles: Option<u32>,
    /// The cycle whose deconvolution found the residual below the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converged_at: Option<u32>,
    /// Tasks done / tasks planned (skipped stages excluded), e.g. `37/52`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Per-stage task counts, by stage name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stages: BTreeMap<String, StageCounts>,
    /// `Planned`, `Progressing`, `Ready`, `Failed`, `SpecChangeRefused`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Product URLs, by product name (`image`, `residual`, `model`, `psf`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Human-readable summary of the latest change (the failure reason when Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Digest of the spec the running plan was made from; a different spec is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
