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
pub use read::read_bundle_full;
pub use write::{WriteBundleOptions, write_bundle};

use std::path::Path;

use aperture_imaging::vis::VisBlock;
use serde::{Deserialize, Serialize};

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

/// Element type of `vis.npy`. The writer stores weights to match (float32 with
/// complex64, float64 with complex128); the reader reports what it found
/// ([`Bundle::vis_dtype`]) whatever the weights' type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VisDtype {
    /// numpy complex64 (`<c8`): half the size, f32 precision.
    Complex64,
    /// numpy complex128 (`<c16`): lossless.
    #[default]
    Complex128,
}

/// A bundle as read by [`read_bundle_full`].
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The validated visibilities, with the phase centre of `meta.json`.
    pub block: VisBlock,
    /// The contents of `meta.json`.
    pub meta: BundleMeta,
    /// How `vis.npy` was stored, e.g. to write a derived bundle at the same precision.
    pub vis_dtype: VisDtype,
}

/// Reads the bundle in `dir` into a validated [`VisBlock`] (phase centre from
/// `meta.json`). Use [`read_bundle_with_meta`] or [`read_bundle_full`] to keep the rest.
pub fn read_bundle(dir: impl AsRef<Path>) -> Result<VisBlock, FormatError> {
    read_bundle_full(dir).map(|b| b.block)
}

/// Reads the bundle in `dir` with its metadata. See [`read_bundle_full`].
pub fn read_bundle_with_meta(dir: impl AsRef<Path>) -> Result<(VisBlock, BundleMeta), FormatError> {
    read_bundle_full(dir).map(|b| (b.block, b.meta))
}
