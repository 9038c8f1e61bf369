//! The `ImagingJob` custom resource (group `aperture.dev`, version `v1alpha1`): the one
//! manifest a user writes, accepted by `aperture run` and by the operator alike.

mod auto;
mod calibration;
mod cluster;
mod crd;
mod deconvolution;
mod image;
mod input;
mod load;
mod resources;
mod status;
mod validate;

pub use auto::AutoOr;
pub use calibration::{CalibrationSpec, SolutionTerm, TermSpec};
pub use cluster::{SCRATCH_MOUNT, SCRATCH_VOLUME};
pub use crd::{BoundGuard, NAME_MAX_LENGTH, NAME_PATTERN, bound_guard, crd, open_api_v3_schema};
pub use deconvolution::{CleanAlgorithm, DeconvolutionSpec, WindowKind, WindowSpec};
pub use image::{ImageSpec, PrecisionSpec, WeightingKind, WeightingSpecYaml};
pub use input::{
    InputSpec, MeasurementSetSpec, MsColumnSpec, PredictSpec, SimulateSpec, SkySpec, Telescope,
};
pub use load::{SpecError, load_job, parse_job};
pub use resources::{OtlpProtocol, ParallelismSpec, StorageSpec, TelemetrySpec, WorkersSpec};
pub use status::{ImagingJobStatus, JobPhase, StageCounts};

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which workflow a job runs (the SDP memo's four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum PipelineKind {
    /// Dirty image and PSF.
    Invert,
    /// Model visibilities from a model image.
    Predict,
    /// Major/minor cycles of deconvolution without calibration.
    Continuum,
    /// Continuum imaging with self-calibration (RASCIL's ICAL).
    #[default]
    Ical,
}

impl PipelineKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Invert => "invert",
            Self::Predict => "predict",
            Self::Continuum => "continuum",
            Self::Ical => "ical",
        }
    }
}

/// The spec of an `ImagingJob`. Every field but `input` has a default a newcomer can run.
// Ranges live in the schema (`#[schemars(range)]`), cross-field rules in CEL
// (`#[x_kube(validation)]`, `fieldPath`/`reason` need Kubernetes ≥ 1.30), both mirroring
// validate.rs, the authority for `aperture run`; see docs/crd.md.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "aperture.dev",
    version = "v1alpha1",
    kind = "ImagingJob",
    plural = "imagingjobs",
    shortname = "ij",
    doc = "An imaging job: visibilities (a Zarr dataset or a simulation) in, FITS images out, run as a plan of Indexed Jobs.",
    namespaced,
    status = "ImagingJobStatus",
    printcolumn = r#"{"name":"Pipeline","type":"string","jsonPath":".spec.pipeline"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Cycle","type":"integer","jsonPath":".status.cycle"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.pipeline != 'predict' || has(self.predict)")
    .message("pipeline predict needs spec.predict.modelImage, the model image to predict")
    .field_path(".predict")
    .reason(Reason::FieldValueRequired))]
pub struct ImagingJobSpec {
    /// The workflow: invert (dirty image and PSF), predict (visibilities of a model image),
    /// continuum (major/minor cycles), ical (continuum with self-calibration; the default).
    #[serde(default)]
    pub pipeline: PipelineKind,
    /// Where the visibilities come from: an existing Zarr dataset or a simulation.
    pub input: InputSpec,
    /// Output URL (file path, file://, s3://, memory://). Local runs default to
    /// `./out/<job name>/`; the operator requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"\S"))]
    pub output: Option<String>,
    /// The model the `predict` pipeline turns into visibilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predict: Option<PredictSpec>,
    #[serde(default)]
    pub image: ImageSpec,
    #[serde(default)]
    pub deconvolution: DeconvolutionSpec,
    #[serde(default)]
    pub calibration: CalibrationSpec,
    /// Number of major cycles (continuum and ical), 1–100.
    #[serde(default = "default_major_cycles")]
    #[schemars(range(min = 1, max = 100))]
    pub major_cycles: u32,
    #[serde(default)]
    pub parallelism: ParallelismSpec,
    #[serde(default)]
    pub workers: WorkersSpec,
    #[serde(default)]
    pub storage: StorageSpec,
    #[serde(default)]
    pub telemetry: TelemetrySpec,
}

fn default_major_cycles() -> u32 {
    3
}

impl ImagingJobSpec {
    /// Checks every field; the error names the field path (e.g. `spec.image.epsilon`).
    pub fn validate(&self) -> Result<(), SpecError> {
        validate::validate(self)
    }

    /// The operator's checks beyond [`Self::validate`]: worker volumes and mounts, and a
    /// MeasurementSet input under a mount (spec/cluster.rs).
    pub fn validate_cluster(&self) -> Result<(), SpecError> {
        cluster::validate_cluster(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_is_generated_with_a_structural_schema() {
        let crd = crd();
        let text = serde_json::to_string(&crd).expect("crd serialises");
        assert!(text.contains("\"group\":\"aperture.dev\""));
        assert!(text.contains("imagingjobs"));
        // Structural: no untagged anyOf without types at the top of a property.
        assert!(
            !text.contains("\"anyOf\":[{\"type\""),
            "non-structural anyOf in {text}"
        );
    }
}
