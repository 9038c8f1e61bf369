//! `spec.image`: image size, cell, gridding accuracy and weighting.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AutoOr;

/// Image geometry and gridding controls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSpec {
    /// Pixels per side (square image), or `auto` (RASCIL-style advice from the longest
    /// baseline and the station size).
    #[serde(default)]
    pub npixel: AutoOr<u32>,
    /// Pixel size in arcseconds; omitted = a third of the synthesised beam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cellsize_arcsec: Option<f64>,
    /// Gridding accuracy against an exact DFT (relative L2), 1e-12 … 1e-1.
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    #[serde(default)]
    pub precision: PrecisionSpec,
    #[serde(default)]
    pub weighting: WeightingSpecYaml,
    /// Gaussian uv taper, FWHM of the image-plane beam in arcseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
