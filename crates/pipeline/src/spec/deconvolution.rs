//! `spec.deconvolution`: the minor cycle's algorithm and controls (RASCIL/WSClean names).

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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSpec {
    #[serde(rename = "type", default)]
    pub kind: WindowKind,
    #[serde(default)]
    pub pixels: u32,
}

/// Minor-cycle controls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeconvolutionSpec {
    #[serde(default)]
    pub algorithm: CleanAlgorithm,
    /// Taylor terms for msmfs, 1–3.
    #[serde(default = "d_nmoment")]
    pub nmoment: u32,
    /// Components per major cycle.
    #[serde(default = "d_niter")]
    pub niter: u32,
    #[serde(default = "d_gain")]
    pub gain: f64,
    /// Absolute threshold, Jy/beam; the job converges when the residual peak is below it.
    #[serde(default = "d_threshold")]
    pub threshold: f64,
    /// Per major cycle: stop the minor cycle at this fraction of its starting peak.
    #[serde(default = "d_fractional")]
    pub fractional_threshold: f64,
    /// Stop at this many times the residual RMS (omitted = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_threshold: Option<f64>,
    /// Scales in pixels for msclean / msmfs.
    #[serde(default = "d_scales")]
    pub scales: Vec<f64>,
    #[serde(default = "d_scale_bias")]
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
