//! `spec.image`: image size, cell, gridding accuracy and weighting.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AutoOr;

/// Image geometry and gridding controls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.precision != 'single' || self.epsilon >= 1e-5")
    .message("single precision reaches epsilon 1e-5 at best: raise epsilon or use precision double")
    .field_path(".epsilon"))]
pub struct ImageSpec {
    /// Pixels per side (square image, even, 16 … 65536), or `auto` (RASCIL-style advice
    /// from the longest baseline and the station size).
    #[serde(default)]
    // `string(self) == self` holds only for a string (CEL equality across types is false);
    // it stands for `type(self) == string`, which kube-cel's client-side evaluator lacks.
    #[x_kube(validation = Rule::new(
        "string(self) == self ? self == 'auto' : (self >= 16 && self <= 65536 && self % 2 == 0)"
    ).message("npixel must be auto or an even integer from 16 to 65536"))]
    pub npixel: AutoOr<u32>,
    /// Pixel size in arcseconds (1e-4 … 3600); omitted = a third of the synthesised beam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1e-4, max = 3600.0))]
    pub cellsize_arcsec: Option<f64>,
    /// Gridding accuracy against an exact DFT (relative L2), 1e-12 … 1e-1 (1e-5 … 1e-1 in
    /// single precision).
    #[serde(default = "default_epsilon")]
    #[schemars(range(min = 1e-12, max = 0.1))]
    pub epsilon: f64,
    #[serde(default)]
    pub precision: PrecisionSpec,
    #[serde(default)]
    pub weighting: WeightingSpecYaml,
    /// Gaussian uv taper, FWHM of the image-plane beam in arcseconds (1e-3 … 1e6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1e-3, max = 1e6))]
    pub taper_arcsec: Option<f64>,
}

fn default_epsilon() -> f64 {
    1e-5
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            npixel: AutoOr::Auto,
            cellsize_arcsec: None,
            epsilon: default_epsilon(),
            precision: PrecisionSpec::default(),
            weighting: WeightingSpecYaml::default(),
            taper_arcsec: None,
        }
    }
}

/// Floating-point precision of the gridder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionSpec {
    /// Single precision: faster, epsilon ≥ 1e-5.
    Single,
    #[default]
    Double,
}

/// Weighting scheme names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightingKind {
    Natural,
    Uniform,
    #[default]
    Robust,
}

/// `{type: natural|uniform|robust, robust: -2…2}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightingSpecYaml {
    #[serde(rename = "type", default)]
    pub kind: WeightingKind,
    /// Briggs robustness (only for `robust`), −2 … 2.
    #[serde(default)]
    #[schemars(range(min = -2.0, max = 2.0))]
    pub robust: f64,
}

impl Default for WeightingSpecYaml {
    fn default() -> Self {
        Self {
            kind: WeightingKind::Robust,
            robust: 0.0,
        }
    }
}
