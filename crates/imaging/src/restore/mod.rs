//! Restoration: fit an elliptical Gaussian to the PSF main lobe and convolve the CLEAN
//! model with it, adding the residual.
