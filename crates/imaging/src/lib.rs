//! aperture-imaging: the data model and the pure-computation kernels of aperture.
//!
//! Nothing here performs I/O, spawns async tasks or knows about storage or Kubernetes.
//! Conventions (see `shared/DESIGN.md`): Stokes I, no primary beam,
//! V(u,v,w) = Σ I(l,m)/n · exp(−2πi(ul + vm + w(n−1))) with u, v, w in wavelengths;
//! image pixel (x, y), 0-based, has l = −(x − npix_x/2)·cell and m = (y − npix_y/2)·cell.

pub mod antenna;
pub mod coords;
pub mod error;
pub mod image;
pub mod vis;

pub use error::ImagingError;

/// Speed of light in vacuum, m/s.
pub const SPEED_OF_LIGHT: f64 = 299_792_458.0;
pub mod calib;
pub mod deconv;
pub mod gridder;
pub mod restore;
pub mod sim;
pub mod weighting;
