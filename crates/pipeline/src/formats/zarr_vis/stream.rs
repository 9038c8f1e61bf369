//! Writing a dataset window by window from a source too large to hold whole (e.g. a
//! MeasurementSet read one group of windows at a time): the arrays, coordinates and
//! `UVW` first, then each window as it arrives, and the group metadata last, with any
//! extra metadata (an import manifest) known only at the end; or, for an interrupted one,
//! resumed ([`StreamingWriter::resume`]). Until
//! [`StreamingWriter::finish`], nothing there passes for a dataset; a failed or abandoned
//! import is removed with [`StreamingWriter::abort`].

use std::sync::Arc;

use aperture_imaging::vis::VisBlock;
use ndarray::ArrayView3;
use object_store::ObjectStore;
use object_store::path::Path;
use serde_json::Value;

use super::dataset::{VisDataset, create_arrays, delete_dataset};
use super::import::ensure_empty;
use super::meta::VisDatasetMeta;
use crate::error::FormatError;

/// A dataset being written; see the module documentation.
#[derive(Debug)]
pub struct StreamingWriter {
    ds: VisDataset,
}

impl StreamingWriter {
    /// Starts a dataset described by `meta` at `prefix` of `store`, which must hold
    /// nothing yet: writes every array's metadata, the coordinates and `UVW`
    /// (`uvw_tb3`, [time, baseline, 3] metres). On failure, what was written is removed
    /// (best effort).
    pub async fn begin(
        store: Arc<dyn ObjectStore>,
        prefix: &Path,
        meta: VisDatasetMeta,
        uvw_tb3: ArrayView3<'_, f64>,
    ) -> Result<Self, FormatError> {
        ensure_empty(&store, prefix).await?;
        match create_arrays(store.clone(), prefix, meta, Some(uvw_tb3)).await {
            Ok(ds) => Ok(Self { ds }),
            Err(e) => {
                remove(store, prefix).await;
                Err(e)
            }
        }
    }

    /// Resumes an interrupted dataset at `prefix` described by `meta` (the caller has
    /// checked that what is there was begun with the same metadata): rewrites every
    /// array's metadata, the coordinates and `UVW` (the same bytes), leaving the
    /// windows' chunks and completion markers in place.
    pub async fn resume(
        store: Arc<dyn ObjectStore>,
        prefix: &Path,
        meta: VisDatasetMeta,
        uvw_tb3: ArrayView3<'_, f64>,
    ) -> Result<Self, FormatError> {
        let ds = create_arrays(store, prefix, meta, Some(uvw_tb3)).await?;
        Ok(Self { ds })
    }

    pub fn meta(&self) -> &VisDatasetMeta {
        self.ds.meta()
    }

    /// The dataset being written (e.g. for writing it time chunk by time chunk,
    /// [`VisDataset::write_chunk`]).
    pub fn dataset(&self) -> &VisDataset {
        &self.ds
    }

    /// Writes window `w` (rows time-major over the dataset's grid, the window's
    /// channels); see [`VisDataset::write_window`].
    pub async fn write_window(&self, w: usize, block: &VisBlock) -> Result<(), FormatError> {
        self.ds.write_window(w, block).await
    }

    /// Adds `extra` to the metadata's `extra` map and writes the group metadata: the
    /// dataset now exists. Every window should have been written (an unwritten one reads
    /// as [`FormatError::MissingWindow`]).
    pub async fn finish(
        mut self,
        extra: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<VisDataset, FormatError> {
        for (k, v) in extra {
            self.ds.set_extra(&k, v);
        }
        self.ds.commit().await?;
        Ok(self.ds)
    }

    /// Removes everything written so far (best effort; a failure is logged).
    pub async fn abort(self) {
        let (store, prefix) = self.ds.location();
        remove(store.clone(), &prefix.clone()).await;
    }
}

async fn remove(store: Arc<dyn ObjectStore>, prefix: &Path) {
    if let Err(e) = delete_dataset(store, prefix).await {
        tracing::warn!(error = %e, "could not remove a partial dataset");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::zarr_vis::{RowGrid, WindowMeta, dataset_exists, open_dataset};
    use aperture_imaging::coords::{RaDec, UvwMetres};
    use futures::TryStreamExt;
    use ndarray::Array3;
    use num_complex::Complex64;
    use object_store::memory::InMemory;
    use serde_json::json;

    /// Two times x two baselines, four channels in two windows, and its blocks.
    fn setup() -> (VisDatasetMeta, Array3<f64>, Vec<VisBlock>) {
        let time = [1.0, 1.0, 2.0, 2.0];
        let (a1, a2) = ([0, 0, 0, 0], [1, 2, 1, 2]);
        let grid = RowGrid::from_rows(&time, &a1, &a2).unwrap();
        let freq = [1e8, 1.1e8, 1.2e8, 1.3e8];
        let windows = WindowMeta::split(&freq, 2).unwrap();
        let pc = RaDec::from_degrees(15.0, -45.0);
        let meta = VisDatasetMeta::new(&grid, windows.clone(), pc).unwrap();
        let uvw: Vec<UvwMetres> = (0..4)
            .map(|r| UvwMetres::new(r as f64, -(r as f64), 0.5))
            .collect();
        let uvw_tb3 = Array3::from_shape_fn((2, 2, 3), |(t, b, k)| {
            let p = uvw[t * 2 + b];
            [p.u, p.v, p.w][k]
        });
        let blocks = windows
            .iter()
            .enumerate()
            .map(|(w, win)| {
                let mut b = VisBlock::zeros(
                    uvw.clone(),
                    win.freq_hz.clone(),
                    a1.to_vec(),
                    a2.to_vec(),
                    time.to_vec(),
                    pc,
                );
                b.vis_rc
                    .indexed_iter_mut()
                    .for_each(|((r, c), v)| *v = Complex64::new((w * 8 + r * 2 + c) as f64, 0.5));
                b.flag_rc[[1, 0]] = true;
                b
            })
            .collect();
        (meta, uvw_tb3, blocks)
    }

    #[test]
    fn a_dataset_exists_only_once_finished_and_an_abort_leaves_nothing() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let (meta, uvw, blocks) = setup();
            let prefix = Path::from("a/v.zarr");
            let w = StreamingWriter::begin(store.clone(), &prefix, meta.clone(), uvw.view())
                .await
                .unwrap();
            for (i, b) in blocks.iter().enumerate() {
                w.write_window(i, b).await.unwrap();
            }
            assert!(!dataset_exists(store.clone(), &prefix).await.unwrap());
            // A second writer at the same place is refused.
            let e = StreamingWriter::begin(store.clone(), &prefix, meta.clone(), uvw.view())
                .await
                .unwrap_err();
            assert!(e.to_string().contains("already exists"), "{e}");
            w.finish([("imported_from".to_owned(), json!({"rows": 4}))])
                .await
                .unwrap();
            let ds = open_dataset(store.clone(), &prefix).await.unwrap();
            assert_eq!(ds.meta().extra["imported_from"]["rows"], 4);
            for (i, b) in blocks.iter().enumerate() {
                let got = ds.read_window(i).await.unwrap();
                assert_eq!(got.vis_rc, b.vis_rc);
                assert_eq!(got.flag_rc, b.flag_rc);
                assert_eq!(got.uvw_r, b.uvw_r);
            }

            let other = Path::from("b/v.zarr");
            let w = StreamingWriter::begin(store.clone(), &other, meta, uvw.view())
                .await
                .unwrap();
            w.write_window(0, &blocks[0]).await.unwrap();
            w.abort().await;
            let left: Vec<_> = store.list(Some(&other)).try_collect().await.unwrap();
            assert!(left.is_empty(), "{left:?}");
        });
    }
}
