//! `status` of an `ImagingJob`: bounded in size (O(stages), never O(tasks)).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Phase of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum JobPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// Task counts of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct StageCounts {
    pub total: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub running: u32,
    #[serde(default)]
    pub skipped: bool,
}

/// Observed state written by the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImagingJobStatus {
    #[serde(default)]
    pub phase: JobPhase,
    /// Current major cycle.
    #[serde(default)]
    pub cycle: u32,
    #[serde(default)]
    pub stages: BTreeMap<String, StageCounts>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Product URLs.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
