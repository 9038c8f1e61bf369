//! Numpy visibility bundles (DESIGN.md "Storage" → Formats): read, validate, write.
//!
//! A bundle is a directory of `.npy` files (numpy format, NEP 1) plus `meta.json`:
//!
//! | file          | shape          | dtype                      | if absent |
//! |---------------|----------------|----------------------------|-----------|
//! | `uvw.npy`     | `[nrow, 3]`      | float64, metres            | required  |
//! | `freq.npy`    | `[nchan]`        | float64, Hz                | required  |
//! | `vis.npy`     | `[nrow, nchan]`  | complex64 or complex128, Jy (Stokes I) | required |
//! | `weight.npy`  | `[nrow, nchan]`  | float32 or float64, ≥ 0    | 1         |
//! | `flag.npy`    | `[nrow, nchan]`  | bool (true = flagged)      | false     |
//! | `ant1.npy`, `ant2.npy` | `[nrow]` | int32, int64, uint32 or uint64 | 0     |
//! | `time.npy`    | `[nrow]`         | float64, seconds           | 0         |
//! | `meta.json`   | `{"phase_centre": {"ra_deg": …, "dec_deg": …}, …}` | | required |
//!
//! Arrays may be little- or big-endian, C or Fortran order. Every error names the file
//! (and the key, row or channel) at fault.

mod meta;
mod read;
mod write;

pub use meta::{BundleMeta, PhaseCentreDeg};
pub use read::read_bundle_with_meta;
pub use write::{VisDtype, WriteBundleOptions, write_bundle};

use std::path::Path;

use aperture_imaging::vis::VisBlock;

use crate::error::FormatError;

/// The file names of a bundle.
pub mod files {
    pub const UVW: &str = "uvw.npy";
    pub const FREQ: &str = "freq.npy";
    pub const VIS: &str = "vis.npy";
    pub const WEIGHT: &str = "weight.npy";
    pub const FLAG: &str = "flag.npy";
    pub const ANT1: &str = "ant1.npy";
    pub const ANT2: &str = "ant2.npy";
    pub const TIME: &str = "time.npy";
    pub const META: &str = "meta.json";
}

/// Reads the bundle in `dir` into a validated [`VisBlock`] (phase centre from
/// `meta.json`). Use [`read_bundle_with_meta`] to keep the other metadata.
pub fn read_bundle(dir: impl AsRef<Path>) -> Result<VisBlock, FormatError> {
    read_bundle_with_meta(dir).map(|(block, _)| block)
}
