//! Deconvolution (the minor cycle): Hogbom CLEAN, multi-scale CLEAN and multi-scale
//! multi-frequency synthesis (MSMFS, Rau & Cornwell 2011) on images with their PSF.
//!
//! Model images are in Jy/pixel, residuals in Jy/beam. The PSF must be on the dirty
//! image's grid (same size, cell and phase centre) and peak at its centre pixel
//! (npix_x/2, npix_y/2); it need not peak at exactly 1. The returned residual is
//! dirty − model ⊛ PSF, the PSF taken as zero beyond its image. See `engine` for the
//! method and `docs/imaging.md` ("Deconvolution") for the controls.

mod engine;
mod fft2;
mod mfs;
mod moments;
mod params;
mod psf;
mod scales;
mod spectral;
mod stats;
#[cfg(test)]
mod threads_tests;
mod tiles;
mod validate;
mod window;

use ndarray::Array2;

use crate::ImagingError;
use crate::image::Image;

pub use mfs::deconvolve_mfs;
pub use moments::deconvolve_mfs_moments;
pub use params::{Algorithm, CleanParams, CleanResult, CleanWindow, MfsResult, StopReason};
pub use spectral::spectral_index;
pub use window::window_mask;

/// Hogbom (1974, A&AS 15, 417) or multi-scale (Cornwell 2008, IEEE JSTSP 2, 793) CLEAN of
/// `dirty` with `psf`, per `params.algorithm`. [`Algorithm::Msmfs`] needs several
/// frequency windows: use [`deconvolve_mfs`].
///
/// Errors name the option or image at fault: `algorithm`, `niter`, `gain`, `threshold`,
/// `fractional_threshold`, `auto_threshold`, `psf_support`, `scales`, `scale_bias`,
/// `window`, `dirty` or `psf` (shape, pixel size or phase centre differing from the dirty
/// image's, or no positive peak at the centre pixel); a non-finite pixel is reported
/// with its index y·npix_x + x.
pub fn deconvolve(
    dirty: &Image,
    psf: &Image,
    params: &CleanParams,
) -> Result<CleanResult, ImagingError> {
    if params.algorithm == Algorithm::Msmfs {
        return Err(ImagingError::invalid(
            "algorithm",
            "msmfs deconvolves several frequency windows together; use deconvolve_mfs",
        ));
    }
    validate::check_params(params)?;
    validate::check_image(dirty, "dirty")?;
    validate::check_same_grid(dirty, psf, "psf")?;
    validate::check_image(psf, "psf")?;
    let (nx, ny) = (dirty.geom.npix_x, dirty.geom.npix_y);
    let scales = match params.algorithm {
        Algorithm::Msclean => validate::check_scales(params, nx, ny)?,
        _ => vec![0.0],
    };
    let d = flat(dirty);
    let p = flat(psf);
    psf::centre_peak(&p, nx, ny, "psf")?;
    let mask = mask_values(&params.window, nx, ny)?;
    let out = engine::run(engine::Problem {
        nx,
        ny,
        dirty: vec![d],
        psf: vec![p],
        scales,
        mask,
        params,
    })?;
    let image = |v: Vec<f64>| Image {
        geom: dirty.geom,
        data_yx: Array2::from_shape_vec((ny, nx), v).unwrap_or_else(|_| Array2::zeros((ny, nx))),
    };
    let engine::Outcome {
        model,
        residual,
        iterations,
        stop_reason,
        initial_peak,
        final_peak,
    } = out;
    Ok(CleanResult {
        model: image(model.into_iter().next().unwrap_or_default()),
        residual: image(residual.into_iter().next().unwrap_or_default()),
        iterations,
        stop_reason,
        initial_peak,
        final_peak,
    })
}

/// `model` ⊛ `psf` on the model's grid (linear convolution, the PSF centred on its
/// centre pixel and zero beyond its image): the image a model makes through the PSF, so
/// that a [`CleanResult`]'s residual is dirty − convolve_psf(model, psf). Computed with
/// real FFTs on a zero-padded grid.
pub fn convolve_psf(model: &Image, psf: &Image) -> Result<Image, ImagingError> {
    validate::check_image(model, "model")?;
    validate::check_same_grid(model, psf, "psf")?;
    validate::check_image(psf, "psf")?;
    let (nx, ny) = (model.geom.npix_x, model.geom.npix_y);
    let g = fft2::Grid::new(
        nx,
        ny,
        crate::sim::good_fft_size(nx + nx / 2),
        crate::sim::good_fft_size(ny + ny / 2),
    );
    let (m, p) = (flat(model), flat(psf));
    let mut sm = g.new_spectrum();
    g.forward(&mut sm, g.corner(&m));
    let mut sp = g.new_spectrum();
    g.forward(&mut sp, g.centred(&p, nx, ny));
    for (a, b) in sm.iter_mut().zip(&sp) {
        *a *= b;
    }
    let mut out = vec![0.0; nx * ny];
    g.inverse(&mut sm, &mut out, 1.0 / (g.px * g.py) as f64);
    Ok(Image {
        geom: model.geom,
        data_yx: Array2::from_shape_vec((ny, nx), out).unwrap_or_else(|_| Array2::zeros((ny, nx))),
    })
}

/// The image as a row-major `[y, x]` vector.
fn flat(img: &Image) -> Vec<f64> {
    img.data_yx.iter().copied().collect()
}

/// The window as 1.0 (allowed) / 0.0 per pixel.
fn mask_values(window: &CleanWindow, nx: usize, ny: usize) -> Result<Vec<f64>, ImagingError> {
    Ok(window_mask(window, nx, ny)?
        .iter()
        .map(|&b| if b { 1.0 } else { 0.0 })
        .collect())
}
