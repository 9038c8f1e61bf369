//! File formats aperture reads and writes.

pub mod bundle;
pub mod fits;
pub mod png;
