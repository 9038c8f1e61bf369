//! Restoration: fit an elliptical Gaussian to the PSF main lobe and convolve the CLEAN
//! model with it, adding the residual.
//!
//! - [`fit_psf_beam`]: the restoring beam (BMAJ, BMIN, BPA) of a PSF, a least-squares
//!   Gaussian fit to the main lobe like CASA's and WSClean's;
//! - [`restore`] / [`restore_taylor`]: model ⊛ peak-1 beam + residual, per image or per
//!   Taylor term (Rau & Cornwell 2011);
//! - [`beam_image`]: the beam sampled on a grid, e.g. as an analytic PSF.
//!
//! Position angles run from north (+m, +y) through east (+l, −x), as FITS `BPA`.

mod beam;
mod convolve;
mod fit;

pub use beam::{Beam, FWHM_PER_SIGMA, beam_image};
pub use convolve::{restore, restore_taylor};
pub use fit::{MAIN_LOBE_LEVEL, fit_psf_beam};
