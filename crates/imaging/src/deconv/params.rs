//! The controls of the minor cycle and the reasons it stops.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Which CLEAN variant runs the minor cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Point-source CLEAN (Högbom 1974).
    #[default]
    Hogbom,
    /// Multi-scale CLEAN (Cornwell 2008).
    Msclean,
    /// Multi-scale multi-frequency synthesis with Taylor terms (Rau & Cornwell 2011).
    Msmfs,
}

/// Where components may be placed.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum CleanWindow {
    /// Every pixel (minus the PSF-patch edge that cannot be subtracted, none here).
    #[default]
    All,
    /// The inner quarter of the image (RASCIL's `window_shape="quarter"`).
    Quarter,
    /// All but a border of this many pixels (RASCIL's `no_edge`).
    NoEdge(usize),
    /// An explicit mask, `true` where components are allowed; [y, x] like the image.
    Mask(Array2<bool>),
}

/// Controls shared by all algorithms (names follow RASCIL and WSClean).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanParams {
    pub algorithm: Algorithm,
    /// Maximum number of minor-cycle iterations (components), ≥ 1.
    pub niter: usize,
    /// Loop gain, in (0, 1].
    pub gain: f64,
    /// Absolute stopping threshold on the peak residual, Jy/beam (≥ 0).
    pub threshold: f64,
    /// Stop when the peak residual falls below this fraction of the initial peak, [0, 1).
    pub fractional_threshold: f64,
    /// Stop when the peak residual falls below this many times the residual RMS
    /// (robust, from the median absolute deviation), like WSClean's `-auto-threshold`.
    pub auto_threshold: Option<f64>,
    /// Half-width in pixels of the PSF patch subtracted per component; `None` picks one
    /// from the PSF sidelobe level. The PSF beyond the patch is subtracted exactly at the
    /// end of each Clark-style cycle, so this trades iteration cost against cycles.
    pub psf_support: Option<usize>,
    pub window: CleanWindow,
    /// Scale sizes in pixels for multi-scale algorithms (0 = point).
    pub scales: Vec<f64>,
    /// Multi-scale scale bias (WSClean's `-multiscale-scale-bias`, 0.6 default).
    pub scale_bias: f64,
    /// Number of Taylor terms for MSMFS, 1–3.
    pub nmoment: usize,
    /// Threads for the residual recomputations (FFTs and spectrum products) and for
    /// large PSF-patch subtractions: a rayon pool of this many (0 = one per core). With 1
    /// everything runs on the calling thread. The result does not depend on it (bit for
    /// bit).
    pub threads: usize,
}

impl Default for CleanParams {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Hogbom,
            niter: 1000,
            gain: 0.1,
            threshold: 0.0,
            fractional_threshold: 0.0,
            auto_threshold: None,
            psf_support: None,
            window: CleanWindow::All,
            scales: vec![0.0, 3.0, 10.0, 30.0],
            scale_bias: 0.6,
            nmoment: 2,
            threads: 1,
        }
    }
}

/// Why the minor cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// `niter` components were taken.
    Niter,
    /// The peak residual fell below the absolute `threshold`.
    Threshold,
    /// The peak residual fell below `fractional_threshold` × the initial peak.
    FractionalThreshold,
    /// The peak residual fell below `auto_threshold` × the residual RMS.
    AutoThreshold,
    /// Nothing left inside the window (all-zero residual or empty window).
    NothingToClean,
    /// Divergence guard: the peak residual exceeded 4 × its initial value or grew for
    /// 100 iterations in a row, or a component was not finite.
    Diverging,
}

/// The outcome of a single-frequency deconvolution ([`Algorithm::Hogbom`] or
/// [`Algorithm::Msclean`]).
#[derive(Debug, Clone)]
pub struct CleanResult {
    /// CLEAN components, Jy/pixel, on the dirty image's grid.
    pub model: crate::image::Image,
    /// Dirty image minus model ⊛ PSF, Jy/beam.
    pub residual: crate::image::Image,
    /// Number of minor-cycle iterations taken.
    pub iterations: usize,
    pub stop_reason: StopReason,
    /// Peak |residual| inside the window before the first iteration, Jy/beam.
    pub initial_peak: f64,
    /// Peak |residual| inside the window at the end, Jy/beam.
    pub final_peak: f64,
}

/// The outcome of MSMFS over several frequency windows: Taylor-term images about
/// `ref_freq_hz` (term t multiplies ((ν − ν₀)/ν₀)^t).
#[derive(Debug, Clone)]
pub struct MfsResult {
    /// Taylor-term model images, `nmoment` of them, Jy/pixel.
    pub model_taylor: Vec<crate::image::Image>,
    /// Taylor-term residual images (the Hessian-weighted residuals), Jy/beam.
    pub residual_taylor: Vec<crate::image::Image>,
    pub ref_freq_hz: f64,
    pub iterations: usize,
    pub stop_reason: StopReason,
    pub initial_peak: f64,
    pub final_peak: f64,
}
