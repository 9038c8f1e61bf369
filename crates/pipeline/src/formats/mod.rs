//! File formats aperture reads and writes.

mod angle;
mod atomic;
pub mod bundle;
pub mod fits;
mod npy;
pub mod png;
