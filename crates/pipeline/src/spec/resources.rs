//! `spec.parallelism`, `spec.workers`, `spec.storage`, `spec.telemetry`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration, Volume, VolumeMount};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How work is split and reduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParallelismSpec {
    /// Target duration of one task, seconds, 0.1 … 3600 (the planner aims for the
    /// 1–100 s band).
    #[serde(default = "d_target")]
    #[schemars(range(min = 0.1, max = 3600.0))]
    pub target_task_seconds: f64,
    /// Most tasks running at once, 1 … 100000 (local: worker processes; cluster: Job
    /// parallelism).
    #[serde(default = "d_max_parallel")]
    #[schemars(range(min = 1, max = 100_000))]
    pub max_parallel: u32,
    /// Fan-in of the reduction trees (2–64).
    #[serde(default = "d_fan_in")]
    #[schemars(range(min = 2, max = 64))]
    pub reduction_fan_in: u32,
    /// Attempts per task before the job fails (1–20).
    #[serde(default = "d_attempts")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: u32,
    /// Memory budget of one worker in MiB, at least 64 (omitted: from workers.resources
    /// limits, else 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 64))]
    pub worker_memory_mib: Option<u64>,
    /// Fix the shard size instead of sizing shards by cost (windows per map task, ≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub windows_per_shard: Option<u32>,
    /// Threads per worker task (0 = all cores of the worker).
    #[serde(default = "d_threads")]
    pub threads_per_task: u32,
}

fn d_target() -> f64 {
    30.0
}
fn d_max_parallel() -> u32 {
    2
}
fn d_fan_in() -> u32 {
    4
}
fn d_attempts() -> u32 {
    3
}
fn d_threads() -> u32 {
    1
}

impl Default for ParallelismSpec {
    fn default() -> Self {
        Self {
            target_task_seconds: d_target(),
            max_parallel: d_max_parallel(),
            reduction_fan_in: d_fan_in(),
            max_attempts: d_attempts(),
            worker_memory_mib: None,
            windows_per_shard: None,
            threads_per_task: d_threads(),
        }
    }
}

/// Worker pods (used by the operator; ignored by local runs except `image`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkersSpec {
    /// Worker container image (default: the operator's configured image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Bare-metal style pods on the host network.
    #[serde(default)]
    pub host_network: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Pod affinity / anti-affinity / node affinity of the worker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Volumes of every worker pod (Kubernetes `Volume`s: a persistentVolumeClaim, nfs,
    /// hostPath …), e.g. the filesystem holding `spec.input.measurementSet`. The name
    /// `tmp` is the operator's scratch volume. Ignored by `aperture run`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Where the worker container mounts `volumes` (Kubernetes `VolumeMount`s; `/tmp` is
    /// the scratch volume's). A MeasurementSet input's path must lie under one of them.
    /// Ignored by `aperture run`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// Object-store access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageSpec {
    /// Secret with AWS_* variables for s3:// URLs (operator only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// Trace export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TelemetrySpec {
    /// OTLP/HTTP endpoint, e.g. http://otel-collector:4318 (omitted = no export; the
    /// trace is still written under diagnostics/).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport of `otlpEndpoint`: `http/protobuf` (port 4318, the default) or
    /// `grpc` (port 4317).
    #[serde(default, skip_serializing_if = "OtlpProtocol::is_default")]
    pub protocol: OtlpProtocol,
}

/// OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "grpc")]
    Grpc,
}

impl OtlpProtocol {
    pub fn is_default(&self) -> bool {
        *self == Self::HttpProtobuf
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        }
    }
}
