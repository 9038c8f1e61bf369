//! aperture-ms: reads CASA MeasurementSets (MSv2; Kemball & Wieringa, AIPS++ Note 229)
//! into the imaging crate's Stokes-I [`VisBlock`](aperture_imaging::vis::VisBlock)s.
//!
//! [`MeasurementSet::open`] reads the subtables (SPECTRAL_WINDOW, POLARIZATION,
//! DATA_DESCRIPTION, FIELD, ANTENNA, OBSERVATION) into [`MsMeta`];
//! [`MeasurementSet::plan`] resolves a [`Selection`] (data column, field, spectral
//! windows, channels, time range; autocorrelations and FLAG_ROW rows dropped) into a
//! [`Plan`] with the (time × baseline) grid and the output frequency windows; and
//! [`MeasurementSet::read_time_chunks`] streams a group of windows time chunk by time
//! chunk (laid out as the Zarr store's chunks), so memory is bounded by a few time
//! chunks, not the MeasurementSet ([`MeasurementSet::read_windows`] reads whole
//! windows), while [`prefetch`] has the kernel read the column files ahead of the
//! reader into the page cache. Stokes I and its weight follow [`corr`]. UVW are kept
//! as stored (antenna 2 minus antenna 1), which is aperture's own convention.
//!
//! casacore is compiled from C++ source through `rubbl_casatables`, behind the cargo
//! feature `casacore`; without it, [`MeasurementSet::open`] returns
//! [`MsError::NoSupport`]. Everything else (selection parsing, Stokes I, the grid, the
//! windows) is pure Rust and always built.

#[cfg(feature = "casacore")]
mod casa;
pub mod chunks;
pub mod corr;
mod error;
pub mod layout;
pub mod meta;
pub mod plan;
pub mod prefetch;
mod reader;
pub mod select;
pub mod windows;

pub use chunks::{ChunkPool, ChunkValues, Precision, TimeChunk, WindowChunk};
pub use error::MsError;
pub use meta::MsMeta;
pub use plan::{Plan, RowCounts, SelectedSpw, WeightSource};
#[cfg(feature = "casacore")]
pub use reader::casacore_lock;
pub use reader::{MeasurementSet, SUPPORTED};
pub use select::{ChannelRange, DataColumn, Selection, SpwList, TimeRange};
