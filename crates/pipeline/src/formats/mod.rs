//! File formats aperture reads and writes.

mod angle;
mod atomic;
pub mod bundle;
pub mod fits;
pub mod gains;
pub mod ms_import;
mod npy;
pub mod png;
pub mod zarr_vis;
