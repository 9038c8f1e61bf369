//! Imaging weights: natural, uniform, Briggs robust (Briggs 1995) and a Gaussian uv taper,
//! one weight per (row, channel) sample.
//!
//! Conventions (those of CASA `tclean` and WSClean):
//!
//! * The start is [`VisBlock::effective_weight_rc`]: the data weight, 0 where flagged.
//! * Uniform and Briggs weights use the density W_k of the weights gridded on the
//!   image's natural uv grid ([`UvGrid`]: cells 1/(npix·cell) wavelengths, nearest cell,
//!   u, v = uvw·freq/c). Each sample also stands for its Hermitian conjugate at (−u, −v),
//!   so it is added to both cells; this is the symmetric form of the half-plane folding
//!   CASA and WSClean do and gives the same weights.
//! * Samples beyond the grid (|u| or |v| above 1/(2·cell), the image's Nyquist limit)
//!   cannot be imaged without aliasing; uniform and Briggs set them to 0, as CASA and
//!   WSClean do, and count them in [`WeightingReport::n_zeroed_outside_grid`]. Natural
//!   weighting leaves every weight unchanged; dropping such samples is then the gridder's
//!   business.
//! * The taper multiplies last, in every scheme.

mod density;
#[cfg(test)]
mod tests;

use std::f64::consts::{LN_2, PI};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::ImagingError;
use crate::image::ImageGeometry;
use crate::vis::VisBlock;

use density::wavelength_scale_c;
pub use density::{UvDensity, UvGrid, uv_cell_density};

/// Lowest and highest accepted Briggs robustness.
pub const ROBUST_RANGE: (f64, f64) = (-2.0, 2.0);

/// How the sample density reshapes the weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightingScheme {
    /// w' = w: best point-source sensitivity, broadest beam.
    Natural,
    /// w' = w / W_k: every occupied uv cell gets equal total weight.
    Uniform,
    /// Briggs robust weighting, w' = w / (1 + W_k·f²) with
    /// f² = (5·10^(−R))² / (Σ_k W_k² / Σ_k W_k) (Briggs 1995, PhD thesis, ch. 3).
    /// R = −2 is close to uniform, R = +2 close to natural.
    Briggs { robust: f64 },
}

impl WeightingScheme {
    /// Checks `robust` (finite, within [`ROBUST_RANGE`]).
    pub fn validate(&self) -> Result<(), ImagingError> {
        match *self {
            Self::Briggs { robust } => validate_robust(robust),
            Self::Natural | Self::Uniform => Ok(()),
        }
    }

    /// Whether the scheme needs the gridded density ([`UvDensity`]).
    pub fn needs_density(&self) -> bool {
        !matches!(self, Self::Natural)
    }
}

/// A weighting scheme and an optional Gaussian taper.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightingSpec {
    pub scheme: WeightingScheme,
    /// FWHM in radians of the image-plane Gaussian whose Fourier transform is the uv
    /// taper (CASA `uvtaper`, WSClean `-taper-gaussian`); see [`gaussian_taper`].
    pub taper_fwhm_rad: Option<f64>,
}

impl Default for WeightingSpec {
    fn default() -> Self {
        Self::new(WeightingScheme::Natural)
    }
}

impl WeightingSpec {
    /// A spec without taper.
    pub fn new(scheme: WeightingScheme) -> Self {
        Self {
            scheme,
            taper_fwhm_rad: None,
        }
    }

    /// The same spec with a Gaussian taper of image-plane FWHM `fwhm_rad`.
    pub fn with_taper(self, fwhm_rad: f64) -> Self {
        Self {
            taper_fwhm_rad: Some(fwhm_rad),
            ..self
        }
    }

    /// Checks `robust` and `taper`; errors name the option.
    pub fn validate(&self) -> Result<(), ImagingError> {
        self.scheme.validate()?;
        if let Some(fwhm) = self.taper_fwhm_rad
            && !(fwhm.is_finite() && fwhm > 0.0)
        {
            return Err(ImagingError::invalid(
                "taper",
                format!("FWHM {fwhm} rad; must be finite and positive (omit the taper for none)"),
            ));
        }
        Ok(())
    }
}

/// Diagnostics of one weighting run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightingReport {
    /// Σ_i w_i' of the returned weights.
    pub sum_weights: f64,
    /// Kish's effective number of samples, (Σ w')² / Σ w'² (0 when all weights are 0);
    /// the image noise is that of `effective_n` equal-weight samples.
    pub effective_n: f64,
    /// Samples with non-zero weight set to 0 because they fall outside the uv grid
    /// (uniform and Briggs only; always 0 for natural).
    pub n_zeroed_outside_grid: usize,
}

/// The Gaussian taper factor at (u, v) wavelengths for an image-plane FWHM θ radians:
///
/// exp(−(u² + v²)·(π·θ)² / (4 ln 2)).
///
/// Derivation: the image-plane Gaussian of FWHM θ is g(l) = exp(−4 ln 2 · l²/θ²)
/// = exp(−l²/(2σ²)) with σ² = θ²/(8 ln 2). Its Fourier transform under the measurement
/// equation's kernel exp(−2πi·u·l) is ∝ exp(−2π²σ²u²) = exp(−π²θ²u²/(4 ln 2)), equal to 1
/// at u = 0. Multiplying the weights by it convolves the PSF with g, so a point source
/// is smoothed to a beam at least θ wide. The taper falls to 1/2 at
/// |u| = 2 ln 2/(π·θ), i.e. its uv-plane FWHM is 4 ln 2/(π·θ) ≈ 0.883/θ.
pub fn gaussian_taper(u_lambda: f64, v_lambda: f64, fwhm_rad: f64) -> f64 {
    (-(u_lambda * u_lambda + v_lambda * v_lambda) * taper_coefficient(fwhm_rad)).exp()
}

/// (π·θ)² / (4 ln 2), the coefficient of u² + v² in the taper's exponent.
fn taper_coefficient(fwhm_rad: f64) -> f64 {
    let a = PI * fwhm_rad;
    a * a / (4.0 * LN_2)
}

/// Imaging weights `[row, chan]` for `block` imaged on `geom`, and a report.
///
/// Uniform and Briggs weights use the density of this block alone; when an image is
/// made from several blocks (frequency windows), build the global density with
/// [`uv_cell_density`] + [`UvDensity::merge`] and call [`imaging_weights_with_density`].
///
/// Cost: O(n_vis) plus O(npix_x·npix_y) for the density (8·npix_x·npix_y bytes; only for
/// uniform and Briggs).
pub fn imaging_weights(
    block: &VisBlock,
    geom: &ImageGeometry,
    spec: &WeightingSpec,
) -> Result<(Array2<f64>, WeightingReport), ImagingError> {
    spec.validate()?;
    block.validate()?;
    let grid = UvGrid::for_image(geom)?;
    let density = spec.scheme.needs_density().then(|| {
        let mut density = UvDensity::zeros(grid);
        density.accumulate_unchecked(block);
        density
    });
    weigh(block, density.as_ref(), spec)
}

/// Imaging weights `[row, chan]` for `block` using a precomputed (e.g. global, summed
/// over all blocks of the image) density. The density must include this block's samples:
/// a sample with non-zero weight whose cell has zero density is an error.
/// The density is not used by natural weighting.
pub fn imaging_weights_with_density(
    block: &VisBlock,
    density: &UvDensity,
    spec: &WeightingSpec,
) -> Result<(Array2<f64>, WeightingReport), ImagingError> {
    spec.validate()?;
    block.validate()?;
    weigh(block, Some(density), spec)
}

/// Validates a Briggs robustness.
fn validate_robust(robust: f64) -> Result<(), ImagingError> {
    let (lo, hi) = ROBUST_RANGE;
    if (lo..=hi).contains(&robust) {
        Ok(())
    } else {
        Err(ImagingError::invalid(
            "robust",
            format!("{robust}; must be between {lo} and {hi}"),
        ))
    }
}

/// The density rule applied per sample.
#[derive(Debug, Clone, Copy)]
enum DensityRule {
    Uniform,
    Briggs { f2: f64 },
}

/// Applies the scheme and taper of a validated `spec`; `density` must be `Some` for
/// uniform and Briggs (natural ignores it).
fn weigh(
    block: &VisBlock,
    density: Option<&UvDensity>,
    spec: &WeightingSpec,
) -> Result<(Array2<f64>, WeightingReport), ImagingError> {
    let rule = match (spec.scheme, density) {
        (WeightingScheme::Uniform, Some(d)) => Some((DensityRule::Uniform, d)),
        (WeightingScheme::Briggs { robust }, Some(d)) => Some((
            DensityRule::Briggs {
                f2: d.briggs_f2_unchecked(robust),
            },
            d,
        )),
        _ => None,
    };
    weigh_with_rule(block, rule, spec.taper_fwhm_rad)
}

/// The weighting kernel, without validation of the options (tests call it with robust
/// outside −2…2 to check the limits of the Briggs formula). The one error is a density
/// that misses a sample of `block`: a sample of non-zero weight inside the grid whose cell
/// is empty (a density built from the block itself always holds its samples).
fn weigh_with_rule(
    block: &VisBlock,
    rule: Option<(DensityRule, &UvDensity)>,
    taper_fwhm_rad: Option<f64>,
) -> Result<(Array2<f64>, WeightingReport), ImagingError> {
    let mut weight_rc = block.effective_weight_rc();
    let scale_c = wavelength_scale_c(block);
    let taper = taper_fwhm_rad.map(taper_coefficient);
    let mut n_zeroed_outside_grid = 0;

    for (r, (uvw, mut weight_c)) in block.uvw_r.iter().zip(weight_rc.rows_mut()).enumerate() {
        let uv2_m = uvw.u * uvw.u + uvw.v * uvw.v;
        for (c, (w, &s)) in weight_c.iter_mut().zip(&scale_c).enumerate() {
            if *w == 0.0 {
                continue;
            }
            if let Some((rule, density)) = rule {
                let Some(k) = density.grid().cell_index(uvw.u * s, uvw.v * s) else {
                    *w = 0.0;
                    n_zeroed_outside_grid += 1;
                    continue;
                };
                let wk = density.at_index(k).unwrap_or(0.0);
                if wk <= 0.0 {
                    return Err(ImagingError::invalid(
                        "density",
                        format!(
                            "sample (row {r}, channel {c}) falls in an empty uv cell; the \
                             density was not built from this block"
                        ),
                    ));
                }
                *w /= match rule {
                    DensityRule::Uniform => wk,
                    DensityRule::Briggs { f2 } => 1.0 + wk * f2,
                };
            }
            if let Some(coeff) = taper {
                *w *= (-uv2_m * s * s * coeff).exp();
            }
        }
    }

    let (sum, sum_sq) = weight_rc
        .iter()
        .fold((0.0, 0.0), |(s1, s2), &w| (s1 + w, s2 + w * w));
    let report = WeightingReport {
        sum_weights: sum,
        effective_n: if sum_sq > 0.0 {
            sum * sum / sum_sq
        } else {
            0.0
        },
        n_zeroed_outside_grid,
    };
    Ok((weight_rc, report))
}
