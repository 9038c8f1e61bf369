//! The planner: an `ImagingJob` spec plus facts about its input become a [`Plan`], a DAG
//! of stages of independent, idempotent tasks over frequency-window shards (DESIGN.md,
//! "Execution model"). The plan is O(stages + shards) in size and is written to
//! `plan.json` so every worker reads the same plan.

mod build;
mod cost;
mod facts;
mod keys;
pub use keys::{IMPORT_META_KEY, PLAN_KEY, VIS_KEY};
pub mod ms;
mod shards;
mod tree;

pub use build::{
    IMPORT_COMMIT_STAGE, IMPORT_STAGE, PlanOptions, WEIGHTS_TREE, make_plan, spec_digest,
};
pub use cost::{CostEstimate, estimate_window};
pub use facts::InputFacts;
pub use shards::{Shard, balance_shards};
pub use tree::tree_levels;

use aperture_imaging::coords::RaDec;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::spec::ImagingJobSpec;

/// Why a plan cannot be made.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum PlanError {
    /// The input (or a field describing it) cannot be planned; `field` names it.
    #[error("{field}: {reason}")]
    Input { field: String, reason: String },
    /// The job does not fit the resources given.
    #[error("{field}: {reason}")]
    Resources { field: String, reason: String },
}

impl PlanError {
    pub fn input(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Input {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The kinds of task a stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Write the simulated visibilities of a shard's windows.
    Simulate,
    /// Read a shard's windows from a MeasurementSet into the visibility dataset.
    Import,
    /// Commit the imported dataset (its group metadata) once every import task is done.
    ImportCommit,
    /// Accumulate the uv-density of a shard (uniform / robust weighting).
    Weights,
    /// Dirty image and PSF (Taylor moments) of a shard.
    Invert,
    /// Predict the model, (self-)calibrate, subtract and invert the residual, in one
    /// pass over a shard's data.
    Residual,
    /// Sum k partials of the level below.
    Reduce,
    /// Minor cycle (and global T solve) on the reduced residual; writes the next model.
    Deconvolve,
    /// Restore and write the products (or, for `invert`, the dirty image and PSF).
    Restore,
    /// Model visibilities of a shard from a model image.
    Predict,
}

impl TaskKind {
    /// Every kind.
    pub const ALL: [Self; 10] = [
        Self::Simulate,
        Self::Import,
        Self::ImportCommit,
        Self::Weights,
        Self::Invert,
        Self::Residual,
        Self::Reduce,
        Self::Deconvolve,
        Self::Restore,
        Self::Predict,
    ];

    /// The kebab-case name, as in plan.json.
    pub fn name(self) -> &'static str {
        match self {
            Self::Simulate => "simulate",
            Self::Import => "import",
            Self::ImportCommit => "import-commit",
            Self::Weights => "weights",
            Self::Invert => "invert",
            Self::Residual => "residual",
            Self::Reduce => "reduce",
            Self::Deconvolve => "deconvolve",
            Self::Restore => "restore",
            Self::Predict => "predict",
        }
    }
}

/// Where a reduce stage sits in its tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReduceRef {
    /// The tree (`weights` or `cycles/NNN`).
    pub tree: String,
    /// 1 for the level that reads the map's partials.
    pub level: u32,
    /// Number of inputs of this level (tasks of the level below).
    pub inputs: u32,
}

/// One stage: `tasks` identical tasks, runnable once every stage in `deps` is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub kind: TaskKind,
    pub tasks: u32,
    pub deps: Vec<String>,
    /// Major cycle (0 = initial invert; the restore stage has `major_cycles + 1`).
    pub cycle: u32,
    /// For map and reduce stages: the tree their outputs feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduce: Option<ReduceRef>,
    /// Skipped when the job converges before its cycle.
    pub skippable: bool,
    /// Estimated seconds of one task.
    pub est_task_seconds: f64,
}

/// The image every stage makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedImage {
    pub npix: u32,
    pub cell_rad: f64,
    pub phase_centre: RaDec,
    /// Reference (Taylor) frequency and the band.
    pub ref_freq_hz: f64,
    pub bandwidth_hz: f64,
    /// Gridder layout chosen for the highest-frequency window (for the record).
    pub grid_nu: u32,
    pub grid_support: u32,
    pub grid_planes: u32,
}

/// The plan of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `aperture-plan`.
    pub format: String,
    pub version: u32,
    pub job: String,
    /// SHA-256 of the canonical JSON of the spec: a different spec on the same output
    /// is refused.
    pub spec_digest: String,
    pub spec: ImagingJobSpec,
    /// Output URL (resolved).
    pub output: String,
    /// URL of the visibility dataset (the input, or `<output>/vis.zarr` when simulated).
    pub visibilities: String,
    pub facts: InputFacts,
    pub image: PlannedImage,
    pub shards: Vec<Shard>,
    pub stages: Vec<Stage>,
    /// Memory of one map task, bytes (grids + one window's data).
    pub est_task_memory_bytes: u64,
    pub max_attempts: u32,
    /// What the job's trace id derives from (the ImagingJob's uid on Kubernetes, a
    /// fresh value per local plan); empty in older plans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_key: String,
}

pub const PLAN_FORMAT: &str = "aperture-plan";
pub const PLAN_VERSION: u32 = 1;

impl Plan {
    /// The key the job's trace id and its job/stage span ids derive from
    /// (`aperture_telemetry::trace_id_for`).
    pub fn trace_key(&self) -> String {
        if self.trace_key.is_empty() {
            format!("{}:{}", self.output, self.spec_digest)
        } else {
            self.trace_key.clone()
        }
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Total number of tasks over all stages.
    pub fn total_tasks(&self) -> u64 {
        self.stages.iter().map(|s| u64::from(s.tasks)).sum()
    }

    /// Major cycles planned (0 for invert / predict).
    pub fn major_cycles(&self) -> u32 {
        self.stages
            .iter()
            .filter(|s| s.kind == TaskKind::Deconvolve)
            .map(|s| s.cycle)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::TaskKind;

    /// `name()` is written by hand; it must stay the kind's serialised form, which plans
    /// and manifests store.
    #[test]
    fn task_kind_names_are_their_serialised_forms() {
        for k in TaskKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name(), "{k:?}");
        }
    }
}
