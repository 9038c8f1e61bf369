//! Importing a numpy bundle as a Zarr visibility dataset: rows placed on the
//! (time × baseline) grid by (time, ant1, ant2), channels split into windows, then the
//! arrays, the windows and finally the group metadata written, so an interrupted import
//! never looks like a dataset.

use std::path::Path as FsPath;
use std::sync::Arc;

use aperture_imaging::vis::VisBlock;
use futures::TryStreamExt;
use ndarray::Array3;
use object_store::ObjectStore;
use object_store::path::Path;
use serde_json::json;

use super::dataset::{VisDataset, create_arrays, delete_dataset};
use super::grid::RowGrid;
use super::meta::{VisDatasetMeta, WindowMeta};
use crate::error::FormatError;
use crate::formats::bundle::{Bundle, VisDtype, files, read_bundle_full};

/// Choices for [`import_bundle`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Channels per window. Default: the bundle's
    /// `frequency_windows.channels_per_window` (as `aperture simulate` writes it) when it
    /// divides the channels evenly, otherwise all channels in one window.
    pub channels_per_window: Option<usize>,
    /// Times per chunk. Default: chunks of at most 64 MiB of visibilities.
    pub time_chunk: Option<usize>,
    /// Store visibilities at this precision. Default: the bundle's (`vis.npy`
    /// complex64 → complex64 + float32 weights; complex128 → complex128 + float64).
    pub vis_dtype: Option<VisDtype>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// Rows in the bundle.
    pub rows: usize,
    pub ntime: usize,
    pub nbaseline: usize,
    /// (time, baseline) cells no bundle row filled: stored flagged, with zero weight.
    pub missing_cells: usize,
    pub nwindows: usize,
    pub channels_per_window: usize,
    pub vis_dtype: VisDtype,
}

/// The channels per window `aperture simulate` recorded in the bundle, if any.
fn recorded_channels_per_window(bundle: &Bundle) -> Option<usize> {
    bundle
        .meta
        .extra
        .get("frequency_windows")?
        .get("channels_per_window")?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
}

/// The dataset metadata and the grid-ordered block for `bundle` (read from `dir`).
/// Errors name the bundle and the row or option at fault (e.g. a duplicated row).
pub fn plan_import(
    bundle: &Bundle,
    dir: &FsPath,
    opts: &ImportOptions,
) -> Result<(VisDatasetMeta, VisBlock, ImportReport), FormatError> {
    let block = &bundle.block;
    let grid =
        RowGrid::from_rows(&block.time_r, &block.ant1_r, &block.ant2_r).map_err(|e| match e {
            FormatError::Invalid { field, reason } => FormatError::BadValue {
                path: dir.to_path_buf(),
                at: field,
                reason,
            },
            other => other,
        })?;
    let nchan = block.n_chan();
    let cpw = match opts.channels_per_window {
        Some(n) => n,
        None => recorded_channels_per_window(bundle)
            .filter(|&n| n > 0 && nchan.is_multiple_of(n))
            .unwrap_or(nchan),
    };
    let windows = WindowMeta::split(&block.freq_c, cpw)?;
    let mut meta = VisDatasetMeta::new(&grid, windows, block.phase_centre)?;
    meta.vis_dtype = opts.vis_dtype.unwrap_or(bundle.vis_dtype);
    meta.time_chunk = match opts.time_chunk {
        Some(t) => t,
        None => meta.default_time_chunk(cpw),
    };
    meta.telescope = bundle.meta.telescope.clone();
    meta.station_diameter_m = bundle.meta.station_diameter_m;
    meta.extra = bundle.meta.extra.clone();
    meta.extra.insert(
        "imported_from".into(),
        json!({"bundle": dir.display().to_string(), "rows": block.n_rows()}),
    );
    meta.validate()?;
    let report = ImportReport {
        rows: block.n_rows(),
        ntime: grid.ntime(),
        nbaseline: grid.nbaseline(),
        missing_cells: grid.missing_cells(),
        nwindows: meta.nwindows(),
        channels_per_window: cpw,
        vis_dtype: meta.vis_dtype,
    };
    let gridded = grid.regrid(block)?;
    Ok((meta, gridded, report))
}

/// Imports the numpy bundle in `dir` as a new dataset at `prefix` of `store`, which must
/// hold nothing yet (delete an old dataset first with `delete_dataset`). The bundle
/// needs `time.npy`, `ant1.npy` and `ant2.npy` to place its rows. On failure, what was
/// written is removed (best effort); the group metadata is written last, so a killed
/// import never passes for a dataset.
///
/// Reading the bundle is synchronous file I/O.
pub async fn import_bundle(
    dir: &FsPath,
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    opts: &ImportOptions,
) -> Result<(VisDataset, ImportReport), FormatError> {
    if !dir.is_dir() {
        return Err(FormatError::Missing {
            path: dir.to_path_buf(),
        });
    }
    for f in [files::TIME, files::ANT1, files::ANT2] {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(FormatError::Missing { path: p });
        }
    }
    let bundle = read_bundle_full(dir)?;
    let (meta, block, report) = plan_import(&bundle, dir, opts)?;
    drop(bundle);
    write_dataset(store, prefix, meta, &block)
        .await
        .map(|ds| (ds, report))
}

/// Writes a whole dataset from `block`, which holds every channel with rows on the
/// dataset's grid (time-major, as [`plan_import`] returns it): arrays and coordinates,
/// `UVW` once, each window, and the group metadata last. On failure, what was written is
/// removed (best effort), so nothing that passes for a dataset is left behind. The
/// location must hold nothing yet.
pub async fn write_dataset(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    meta: VisDatasetMeta,
    block: &VisBlock,
) -> Result<VisDataset, FormatError> {
    if block.n_rows() != meta.nrows() {
        return Err(FormatError::invalid(
            "block",
            format!(
                "{} rows; the dataset has {} times x {} baselines",
                block.n_rows(),
                meta.ntime,
                meta.nbaseline
            ),
        ));
    }
    let uvw = Array3::from_shape_vec(
        (meta.ntime, meta.nbaseline, 3),
        block.uvw_r.iter().flat_map(|p| [p.u, p.v, p.w]).collect(),
    )
    .map_err(|e| FormatError::invalid("uvw", e.to_string()))?;
    ensure_empty(&store, prefix).await?;
    let result = async {
        let ds = create_arrays(store.clone(), prefix, meta, Some(uvw.view())).await?;
        ds.write_band(block).await?;
        ds.commit().await?;
        Ok::<_, FormatError>(ds)
    }
    .await;
    if result.is_err()
        && let Err(cleanup) = delete_dataset(store, prefix).await
    {
        tracing::warn!(error = %cleanup, "could not remove a partial dataset");
    }
    result
}

/// An error naming the first object under `prefix`, if there is one.
pub(super) async fn ensure_empty(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<(), FormatError> {
    let first = store
        .list(Some(prefix))
        .try_next()
        .await
        .map_err(|e| FormatError::Zarr {
            key: prefix.to_string(),
            message: format!("cannot list: {e}"),
        })?;
    match first {
        Some(obj) => Err(FormatError::Zarr {
            key: obj.location.to_string(),
            message: "already exists: a new dataset needs an empty location".into(),
        }),
        None => Ok(()),
    }
}
