//! MSMFS from pre-summed Taylor moments: the distributed form of [`super::deconvolve_mfs`].
//! A job's map tasks accumulate R_t = Σ_i w̃_i c_i^t I^D_i and H_k = Σ_i w̃_i c_i^k PSF_i
//! window by window and a reduction tree sums them, so the deconvolution never holds the
//! per-window images (Rau & Cornwell 2011, A&A 532, A71, eqs. 19–23).

use ndarray::Array2;

use super::engine;
use super::params::{Algorithm, CleanParams, MfsResult};
use super::psf::centre_peak;
use super::validate::{check_image, check_params, check_same_grid, check_scales};
use super::{flat, mask_values};
use crate::ImagingError;
use crate::image::{Image, ImageGeometry};

/// Deconvolves `nmoment` Taylor-weighted residuals `dirty_t` with the `2·nmoment − 1`
/// Hessian PSF moments `psf_k` (both normalised by the total weight, so `psf_k[0]` peaks
/// at 1 at the centre). Model term t multiplies ((ν − ν₀)/ν₀)^t with ν₀ = `ref_freq_hz`.
/// Scales as in [`super::deconvolve_mfs`]. With the moments of a set of windows this
/// gives the same result as `deconvolve_mfs` on the windows themselves.
pub fn deconvolve_mfs_moments(
    dirty_t: &[Image],
    psf_k: &[Image],
    ref_freq_hz: f64,
    params: &CleanParams,
) -> Result<MfsResult, ImagingError> {
    check_params(params)?;
    let nt = dirty_t.len();
    if nt != params.nmoment || !(1..=3).contains(&nt) {
        return Err(ImagingError::invalid(
            "nmoment",
            format!(
                "{nt} dirty moments for nmoment {}; must match, 1–3",
                params.nmoment
            ),
        ));
    }
    if psf_k.len() != 2 * nt - 1 {
        return Err(ImagingError::ShapeMismatch {
            name: "psf moments".into(),
            expected: format!("{} (2·nmoment − 1)", 2 * nt - 1),
            got: psf_k.len().to_string(),
        });
    }
    if !(ref_freq_hz.is_finite() && ref_freq_hz > 0.0) {
        return Err(ImagingError::invalid(
            "ref_freq_hz",
            format!("{ref_freq_hz} Hz; must be positive"),
        ));
    }
    let g0 = dirty_t[0].geom;
    let (nx, ny) = (g0.npix_x, g0.npix_y);
    for (i, d) in dirty_t.iter().enumerate() {
        let name = format!("dirty moment {i}");
        check_image(d, &name)?;
        check_same_grid(&dirty_t[0], d, &name)?;
    }
    for (k, p) in psf_k.iter().enumerate() {
        let name = format!("psf moment {k}");
        check_image(p, &name)?;
        check_same_grid(&dirty_t[0], p, &name)?;
    }
    let p0 = flat(&psf_k[0]);
    centre_peak(&p0, nx, ny, "psf")?;
    let scales = match params.algorithm {
        Algorithm::Hogbom => vec![0.0],
        Algorithm::Msclean | Algorithm::Msmfs => check_scales(params, nx, ny)?,
    };
    let mask = mask_values(&params.window, nx, ny)?;
    let out = engine::run(engine::Problem {
        nx,
        ny,
        dirty: dirty_t.iter().map(flat).collect(),
        psf: psf_k.iter().map(flat).collect(),
        scales,
        mask,
        params,
    })?;
    let geom = ImageGeometry {
        freq_hz: ref_freq_hz,
        ..g0
    };
    let image = |v: Vec<f64>| Image {
        geom,
        data_yx: Array2::from_shape_vec((ny, nx), v).unwrap_or_else(|_| Array2::zeros((ny, nx))),
    };
    Ok(MfsResult {
        model_taylor: out.model.into_iter().map(image).collect(),
        residual_taylor: out.residual.into_iter().map(image).collect(),
        ref_freq_hz,
        iterations: out.iterations,
        stop_reason: out.stop_reason,
        initial_peak: out.initial_peak,
        final_peak: out.final_peak,
    })
}
