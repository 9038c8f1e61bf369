//! Multi-scale multi-frequency synthesis (Rau & Cornwell 2011, A&A 532, A71): the
//! Taylor-weighted residuals and Hessian PSFs of several frequency windows, deconvolved
//! together by the shared engine.

use ndarray::Array2;

use super::engine;
use super::params::{Algorithm, CleanParams, MfsResult};
use super::psf::centre_peak;
use super::validate::{check_image, check_params, check_same_grid, check_scales};
use super::{flat, mask_values};
use crate::ImagingError;
use crate::image::{Image, ImageGeometry};

/// MSMFS over frequency windows: `dirty[i]` and `psf[i]` are window i's images (its
/// frequency is `dirty[i].geom.freq_hz`), `weights[i]` its sum of weights (relative
/// values suffice). With w̃ the normalised weights and c_i = (ν_i − ν₀)/ν₀, the engine
/// deconvolves the Taylor-weighted residuals R_t = Σ_i w̃_i c_i^t I^D_i with the Hessian
/// PSFs H_{tq} = Σ_i w̃_i c_i^{t+q} PSF_i (Rau & Cornwell 2011, eqs. 19–23), solving the
/// `nmoment` × `nmoment` system per scale at each peak.
///
/// The model is I(ν) = Σ_t I_t ((ν − ν₀)/ν₀)^t, so for a power law I₀ (ν/ν₀)^α the ratio
/// I₁/I₀ ≈ α ([`super::spectral_index`]). `ref_freq_hz` defaults to the weighted mean
/// frequency. Scales: `params.scales` for [`Algorithm::Msmfs`] and
/// [`Algorithm::Msclean`], the delta function alone for [`Algorithm::Hogbom`].
/// `nmoment` 1 is multi-scale CLEAN of the weighted-mean image.
///
/// Errors name `nmoment`, `dirty`/`dirty[i]`, `psf`/`psf[i]` (count, shape, grid, centre
/// peak, frequency), `weights`, `ref_freq_hz` and the controls of
/// [`super::deconvolve`].
pub fn deconvolve_mfs(
    dirty: &[Image],
    psf: &[Image],
    weights: &[f64],
    ref_freq_hz: Option<f64>,
    params: &CleanParams,
) -> Result<MfsResult, ImagingError> {
    check_params(params)?;
    let nt = params.nmoment;
    if !(1..=3).contains(&nt) {
        return Err(ImagingError::invalid(
            "nmoment",
            format!("{nt} Taylor terms; must be 1, 2 or 3"),
        ));
    }
    let nw = dirty.len();
    if nw == 0 {
        return Err(ImagingError::invalid("dirty", "no frequency windows given"));
    }
    for (name, n) in [("psf", psf.len()), ("weights", weights.len())] {
        if n != nw {
            return Err(ImagingError::ShapeMismatch {
                name: name.into(),
                expected: format!("{nw} (one per dirty image)"),
                got: n.to_string(),
            });
        }
    }
    if let Some(i) = weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(ImagingError::invalid(
            "weights",
            format!(
                "weights[{i}] = {}; must be finite and non-negative",
                weights[i]
            ),
        ));
    }
    let wsum: f64 = weights.iter().sum();
    if wsum.is_nan() || wsum <= 0.0 {
        return Err(ImagingError::invalid("weights", "all weights are zero"));
    }
    let g0 = dirty[0].geom;
    let (nx, ny) = (g0.npix_x, g0.npix_y);
    for i in 0..nw {
        let (dn, pn) = (format!("dirty[{i}]"), format!("psf[{i}]"));
        check_image(&dirty[i], &dn)?;
        check_same_grid(&dirty[0], &dirty[i], &dn)?;
        check_same_grid(&dirty[i], &psf[i], &pn)?;
        check_image(&psf[i], &pn)?;
        let f = dirty[i].geom.freq_hz;
        if !(f.is_finite() && f > 0.0) {
            return Err(ImagingError::invalid(
                dn,
                format!("frequency {f} Hz; must be positive"),
            ));
        }
        let fp = psf[i].geom.freq_hz;
        if fp.is_nan() || (fp - f).abs() > 1e-6 * f {
            return Err(ImagingError::invalid(
                pn,
                format!("frequency {fp} Hz differs from its dirty image's {f} Hz"),
            ));
        }
    }
    let scales = match params.algorithm {
        Algorithm::Hogbom => vec![0.0],
        Algorithm::Msclean | Algorithm::Msmfs => check_scales(params, nx, ny)?,
    };
    let freqs: Vec<f64> = dirty.iter().map(|d| d.geom.freq_hz).collect();
    let ref_freq = match ref_freq_hz {
        Some(f) if f.is_finite() && f > 0.0 => f,
        Some(f) => {
            return Err(ImagingError::invalid(
                "ref_freq_hz",
                format!("{f} Hz; must be positive"),
            ));
        }
        None => freqs.iter().zip(weights).map(|(f, w)| f * w).sum::<f64>() / wsum,
    };
    let mut distinct: Vec<f64> = freqs
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0.0)
        .map(|(f, _)| *f)
        .collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * *b);
    if distinct.len() < nt {
        return Err(ImagingError::invalid(
            "nmoment",
            format!(
                "{nt} Taylor terms need at least {nt} windows at different frequencies \
                 with positive weight; there are {}",
                distinct.len()
            ),
        ));
    }

    let npix = nx * ny;
    let mut d_terms = vec![vec![0.0; npix]; nt];
    let mut p_terms = vec![vec![0.0; npix]; 2 * nt - 1];
    for i in 0..nw {
        let w = weights[i] / wsum;
        if w == 0.0 {
            continue;
        }
        let c = (freqs[i] - ref_freq) / ref_freq;
        let d = flat(&dirty[i]);
        let p = flat(&psf[i]);
        centre_peak(&p, nx, ny, &format!("psf[{i}]"))?;
        for (t, acc) in d_terms.iter_mut().enumerate() {
            let f = w * c.powi(t as i32);
            acc.iter_mut().zip(&d).for_each(|(a, v)| *a += f * v);
        }
        for (j, acc) in p_terms.iter_mut().enumerate() {
            let f = w * c.powi(j as i32);
            acc.iter_mut().zip(&p).for_each(|(a, v)| *a += f * v);
        }
    }
    centre_peak(&p_terms[0], nx, ny, "psf")?;
    let mask = mask_values(&params.window, nx, ny)?;
    let out = engine::run(engine::Problem {
        nx,
        ny,
        dirty: d_terms,
        psf: p_terms,
        scales,
        mask,
        params,
    })?;

    let lo = dirty
        .iter()
        .map(|d| d.geom.freq_hz - 0.5 * d.geom.bandwidth_hz)
        .fold(f64::INFINITY, f64::min);
    let hi = dirty
        .iter()
        .map(|d| d.geom.freq_hz + 0.5 * d.geom.bandwidth_hz)
        .fold(f64::NEG_INFINITY, f64::max);
    let geom = ImageGeometry {
        freq_hz: ref_freq,
        bandwidth_hz: (hi - lo).max(0.0),
        ..g0
    };
    let image = |v: Vec<f64>| Image {
        geom,
        data_yx: Array2::from_shape_vec((ny, nx), v).unwrap_or_else(|_| Array2::zeros((ny, nx))),
    };
    Ok(MfsResult {
        model_taylor: out.model.into_iter().map(image).collect(),
        residual_taylor: out.residual.into_iter().map(image).collect(),
        ref_freq_hz: ref_freq,
        iterations: out.iterations,
        stop_reason: out.stop_reason,
        initial_peak: out.initial_peak,
        final_peak: out.final_peak,
    })
}
