//! `spec.deconvolution`: the minor cycle's algorithm and controls (RASCIL/WSClean names).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CLEAN algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum CleanAlgorithm {
    Hogbom,
    Msclean,
    #[default]
    Msmfs,
}

/// Clean window shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum WindowKind {
    All,
    #[default]
    Quarter,
    NoEdge,
}

/// `{type: all|quarter|noEdge, pixels: N}` (pixels: the border for noEdge).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, KubeSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.type == 'noEdge' || self.pixels == 0")
    .message("pixels is only used with type noEdge")
    .field_path(".pixels")
    .reason(Reason::FieldValueForbidden))]
pub struct WindowSpec {
    #[serde(rename = "type", default)]
    pub kind: WindowKind,
    #[serde(default)]
    pub pixels: u32,
}

/// Minor-cycle controls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.algorithm != 'msmfs' || (self.nmoment >= 1 && self.nmoment <= 3)")
    .message("msmfs needs nmoment from 1 to 3")
    .field_path(".nmoment"))]
pub struct DeconvolutionSpec {
    #[serde(default)]
    pub algorithm: CleanAlgorithm,
    /// Taylor terms for msmfs, 1–3.
    #[serde(default = "d_nmoment")]
    pub nmoment: u32,
    /// Components per major cycle, 1 … 10000000.
    #[serde(default = "d_niter")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub niter: u32,
    /// Loop gain, in (0, 1].
    #[serde(default = "d_gain")]
    #[schemars(range(min = 0.0, max = 1.0))]
    #[x_kube(validation = Rule::new("self > 0.0").message("gain must be above 0"))]
    pub gain: f64,
    /// Absolute threshold, Jy/beam (0 … 1e9); the job converges when the residual peak is
    /// below it.
    #[serde(default = "d_threshold")]
    #[schemars(range(min = 0.0, max = 1e9))]
    pub threshold: f64,
    /// Per major cycle: stop the minor cycle at this fraction of its starting peak, in
    /// [0, 1).
    #[serde(default = "d_fractional")]
    #[schemars(range(min = 0.0, max = 1.0))]
    #[x_kube(validation = Rule::new("self < 1.0").message("fractionalThreshold must be below 1"))]
    pub fractional_threshold: f64,
    /// Stop at this many times the residual RMS, 0 … 1000 (omitted = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub auto_threshold: Option<f64>,
    /// Scales in pixels for msclean / msmfs (at least one, each 0 … 10000).
    #[serde(default = "d_scales")]
    #[schemars(length(min = 1), inner(range(min = 0.0, max = 10_000.0)))]
    pub scales: Vec<f64>,
    /// Multi-scale bias towards small scales, 0 … 10.
    #[serde(default = "d_scale_bias")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub scale_bias: f64,
    #[serde(default)]
    pub window: WindowSpec,
    /// PSF patch half-width in pixels (omitted = from the PSF sidelobes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psf_support: Option<u32>,
}

impl Default for DeconvolutionSpec {
    fn default() -> Self {
        Self {
            algorithm: CleanAlgorithm::default(),
            nmoment: d_nmoment(),
            niter: d_niter(),
            gain: d_gain(),
            threshold: d_threshold(),
            fractional_threshold: d_fractional(),
            auto_threshold: None,
            scales: d_scales(),
            scale_bias: d_scale_bias(),
            window: WindowSpec::default(),
            psf_support: None,
        }
    }
}

fn d_nmoment() -> u32 {
    2
}
fn d_niter() -> u32 {
    1000
}
fn d_gain() -> f64 {
    0.1
}
fn d_threshold() -> f64 {
    1e-3
}
fn d_fractional() -> f64 {
    0.1
}
fn d_scales() -> Vec<f64> {
    vec![0.0, 3.0, 10.0]
}
fn d_scale_bias() -> f64 {
    0.6
}
