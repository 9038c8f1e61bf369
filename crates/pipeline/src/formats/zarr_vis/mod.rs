//! Visibilities as a Zarr v3 group laid out like xradio's MSv4 `VISIBILITY` schema, one
//! frequency window per chunk column, through any `object_store` backend.
//!
//! A dataset (e.g. `…/vis.zarr`) holds, under its prefix:
//!
//! | array | dtype | dimensions | chunk |
//! |---|---|---|---|
//! | `VISIBILITY` | complex64 (or complex128) | time, baseline_id, frequency, polarization | [time_chunk, all, window, 1] |
//! | `WEIGHT` | float32 (float64 with complex128) | same | same |
//! | `FLAG` | bool (true = flagged) | same | same |
//! | `UVW` | float64, metres | time, baseline_id, uvw_label | [time_chunk, all, 3] |
//! | `time` | float64, seconds | time | [time_chunk] |
//! | `baseline_id` | int32 | baseline_id | all |
//! | `baseline_antenna1_id`, `baseline_antenna2_id` | int32 | baseline_id | all |
//! | `frequency` | float64, Hz | frequency | [window] |
//! | `polarization` | string (`"I"`) | polarization | all |
//! | `uvw_label` | string (`"u"`, `"v"`, `"w"`) | uvw_label | all |
//! | `window_complete` | uint8 | frequency_window | [1] |
//!
//! Every array carries `dimension_names`, so xarray and zarr-python name the axes. The
//! group's attributes hold `format`, `format_version` and `aperture` (the
//! [`VisDatasetMeta`]: sizes, windows, antenna pairs, times, phase centre in degrees,
//! telescope). Data chunks are checksummed (crc32c), so a corrupt chunk is an error naming
//! its key, never silently wrong data.
//!
//! **One frequency window is one independent read**: window `w` is the chunks with
//! frequency index `w` (one per time chunk) of `VISIBILITY`, `WEIGHT`, `FLAG`, plus the
//! `UVW` chunks and chunk `w` of `window_complete`. Writers of different windows touch
//! disjoint objects, so they may run concurrently; a window's completion marker is
//! erased first and written last, so a re-write is idempotent and a reader never takes a
//! half-written window for a whole one.
//!
//! The API is async (zarrs' async API over `zarrs_object_store`), as workers run a tokio
//! runtime; it works with any `Arc<dyn ObjectStore>` and a key prefix.

mod codec;
mod dataset;
mod grid;
mod import;
mod layout;
mod meta;
mod put;
mod stream;

pub use dataset::{
    ChunkBuffers, PENDING_IMPORT_KEY, VisDataset, create_dataset, dataset_exists, delete_dataset,
    open_dataset,
};
pub(crate) use dataset::{create_arrays, open_arrays};
pub use grid::RowGrid;
pub use import::{ImportOptions, ImportReport, import_bundle, plan_import, write_dataset};
pub use layout::names;
pub use meta::{FORMAT, FORMAT_VERSION, VisDatasetMeta, WindowMeta, window_block};
pub use put::PlainElement;
pub use stream::StreamingWriter;
