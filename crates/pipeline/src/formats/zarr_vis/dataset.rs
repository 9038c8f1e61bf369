//! A Zarr visibility dataset on an object store ([`VisDataset`]): create it (metadata and
//! coordinates once), open it, write and read one frequency window at a time.
//!
//! Errors name the full object-store key of the object at fault (the prefix included).

use std::sync::Arc;

use aperture_imaging::ImagingError;
use aperture_imaging::coords::UvwMetres;
use aperture_imaging::vis::VisBlock;
use futures::{StreamExt, TryStreamExt, stream};
use ndarray::{Array2, ArrayView3};
use num_complex::{Complex32, Complex64};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Map, Value, json};
use zarrs::array::{Array, ArrayCreateError, CodecOptions, DataType, ElementOwned};
use zarrs::config::MetadataRetrieveVersion;
use zarrs::group::{Group, GroupCreateError};
use zarrs::storage::AsyncReadableWritableListableStorageTraits;
use zarrs_object_store::AsyncObjectStore;

use super::codec::{chunk_of, narrow_c, uvw_chunk, widen_c};
use super::layout::{self, POLARIZATIONS, UVW_LABELS, names};
use super::meta::{FORMAT, FORMAT_VERSION, VisDatasetMeta};
use super::put::{self, PlainElement};
use crate::error::FormatError;
use crate::formats::bundle::VisDtype;

type Storage = dyn AsyncReadableWritableListableStorageTraits;
type ZArray = Array<Storage>;

/// Chunk requests in flight during one window's read or write.
const CONCURRENCY: usize = 8;

/// Tolerances for a block agreeing with the dataset's coordinates: relative for
/// frequencies and times (far below a channel width or an integration), absolute radians
/// for the phase centre (as the bundle writer).
const FREQ_RTOL: f64 = 1e-9;
const TIME_TOL: f64 = 1e-6;
const PHASE_CENTRE_TOL: f64 = 1e-12;

/// An open dataset: its metadata and the arrays a window read or write touches.
pub struct VisDataset {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    meta: VisDatasetMeta,
    vis: ZArray,
    weight: ZArray,
    flag: ZArray,
    uvw: ZArray,
    done: ZArray,
}

impl std::fmt::Debug for VisDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisDataset")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .field("ntime", &self.meta.ntime)
            .field("nbaseline", &self.meta.nbaseline)
            .field("nwindows", &self.meta.nwindows())
            .finish()
    }
}

/// zarrs storage rooted at `prefix` of `store`.
fn zarr_storage(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Arc<Storage> {
    Arc::new(AsyncObjectStore::new(PrefixStore::new(
        store.clone(),
        prefix.clone(),
    )))
}

/// The full object-store key of `key` (relative to the dataset).
fn full_key(prefix: &Path, key: &str) -> String {
    if prefix.as_ref().is_empty() {
        key.to_owned()
    } else {
        format!("{}/{key}", prefix.as_ref())
    }
}

fn meta_key(name: &str) -> String {
    format!("{name}/zarr.json")
}

const GROUP_KEY: &str = "zarr.json";

/// The record of an import in progress (what is being imported, so a re-run can tell
/// whether to resume it), beside the arrays until the group metadata is written.
pub const PENDING_IMPORT_KEY: &str = "aperture_import.json";

/// The options every chunk write uses: chunks equal to the fill value are stored too, so
/// a missing chunk always means a missing or damaged window.
fn write_options() -> CodecOptions {
    CodecOptions::default().with_store_empty_chunks(true)
}

/// Whether a dataset (its group metadata) exists at `prefix`.
pub async fn dataset_exists(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<bool, FormatError> {
    let key = prefix.clone().join(GROUP_KEY);
    match store.head(&key).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(FormatError::Zarr {
            key: key.to_string(),
            message: e.to_string(),
        }),
    }
}

/// Deletes every object of the dataset at `prefix` and returns how many there were.
/// Refuses (naming the object) when anything under `prefix` is not part of the layout,
/// so a mistyped location cannot delete other data.
pub async fn delete_dataset(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<usize, FormatError> {
    let objects: Vec<Path> = store
        .list(Some(prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| FormatError::Zarr {
            key: prefix.to_string(),
            message: format!("cannot list: {e}"),
        })?;
    let ours = |p: &Path| {
        let rel: Vec<_> = p
            .prefix_match(prefix)
            .map(|i| i.collect())
            .unwrap_or_default();
        match rel.first().map(|s| s.as_ref()) {
            Some(GROUP_KEY | PENDING_IMPORT_KEY) => rel.len() == 1,
            Some(first) => names::ALL.contains(&first),
            None => false,
        }
    };
    if let Some(odd) = objects.iter().find(|p| !ours(p)) {
        return Err(FormatError::Zarr {
            key: odd.to_string(),
            message: "is not part of a visibility dataset; refusing to delete the dataset \
                      around it"
                .into(),
        });
    }
    let n = objects.len();
    let locations = stream::iter(objects.into_iter().map(Ok)).boxed();
    store
        .delete_stream(locations)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| FormatError::Zarr {
            key: prefix.to_string(),
            message: format!("cannot delete: {e}"),
        })?;
    Ok(n)
}

/// Creates the dataset described by `meta` at `prefix`: array metadata, coordinates
/// (times, baselines, frequencies, labels), `UVW` when `uvw_tb3` ([time, baseline, 3],
/// metres) is given, and the group metadata last. Windows are then written with
/// [`VisDataset::write_window`], in any order and concurrently.
///
/// Creating again with the same metadata returns the existing dataset untouched (so a
/// retried task is safe); a different dataset already there is an error.
pub async fn create_dataset(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    meta: &VisDatasetMeta,
    uvw_tb3: Option<ArrayView3<'_, f64>>,
) -> Result<VisDataset, FormatError> {
    let mut meta = meta.clone();
    meta.uvw_at_create = uvw_tb3.is_some();
    if dataset_exists(store.clone(), prefix).await? {
        let existing = open_dataset(store.clone(), prefix).await?;
        if existing.meta == meta {
            return Ok(existing);
        }
        return Err(FormatError::Zarr {
            key: full_key(prefix, GROUP_KEY),
            message: "a different visibility dataset already exists here; delete it first".into(),
        });
    }
    let ds = create_arrays(store, prefix, meta, uvw_tb3).await?;
    ds.commit().await?;
    Ok(ds)
}

/// Writes every array's metadata and coordinates (and `UVW` if given), but not the group
/// metadata, so the dataset does not exist for readers until [`VisDataset::commit`].
pub(crate) async fn create_arrays(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    mut meta: VisDatasetMeta,
    uvw_tb3: Option<ArrayView3<'_, f64>>,
) -> Result<VisDataset, FormatError> {
    meta.uvw_at_create = uvw_tb3.is_some();
    meta.validate()?;
    if let Some(u) = &uvw_tb3 {
        let want = (meta.ntime, meta.nbaseline, 3);
        if u.dim() != want {
            return Err(FormatError::invalid(
                "uvw_tb3",
                format!(
                    "shape {:?}; the dataset needs {want:?} (time, baseline, 3)",
                    u.dim()
                ),
            ));
        }
        if let Some(i) = u.iter().position(|v| !v.is_finite()) {
            return Err(FormatError::invalid(
                "uvw_tb3",
                format!("element {i} is not finite"),
            ));
        }
    }
    let storage = zarr_storage(&store, prefix);
    let mut arrays = Vec::new();
    for (name, builder) in layout::builders(&meta) {
        let a = builder
            .build(storage.clone(), &format!("/{name}"))
            .map_err(|e| FormatError::Zarr {
                key: full_key(prefix, &meta_key(name)),
                message: format!("cannot define the array: {e}"),
            })?;
        arrays.push((name, a));
    }
    stream::iter(arrays.iter())
        .map(|(name, a)| async move {
            a.async_store_metadata()
                .await
                .map_err(|e| FormatError::Zarr {
                    key: full_key(prefix, &meta_key(name)),
                    message: format!("cannot write: {e}"),
                })
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    let ds = VisDataset {
        vis: take(&mut arrays, names::VISIBILITY),
        weight: take(&mut arrays, names::WEIGHT),
        flag: take(&mut arrays, names::FLAG),
        uvw: take(&mut arrays, names::UVW),
        done: take(&mut arrays, names::WINDOW_COMPLETE),
        store,
        prefix: prefix.clone(),
        meta,
    };
    // What is left are the coordinate arrays.
    ds.write_coordinates(&arrays).await?;
    if let Some(u) = uvw_tb3 {
        let flat: Vec<UvwMetres> = u
            .outer_iter()
            .flat_map(|t| {
                t.outer_iter()
                    .map(|p| UvwMetres::new(p[0], p[1], p[2]))
                    .collect::<Vec<_>>()
            })
            .collect();
        stream::iter(0..ds.meta.n_time_chunks())
            .map(|tc| ds.write_uvw_chunk(None, tc, &flat))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
    }
    Ok(ds)
}

/// Removes the array `name` from `arrays` (all layout arrays are built).
fn take(arrays: &mut Vec<(&'static str, ZArray)>, name: &str) -> ZArray {
    let i = arrays
        .iter()
        .position(|(n, _)| *n == name)
        .expect("every layout array is built");
    arrays.swap_remove(i).1
}

/// Opens the dataset at `prefix`: reads the group metadata and the metadata of the data
/// arrays, and checks them against each other (shapes, chunks, data types). Errors name
/// the object: a missing dataset, a foreign group, or an array that disagrees.
pub async fn open_dataset(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<VisDataset, FormatError> {
    let storage = zarr_storage(&store, prefix);
    let gkey = full_key(prefix, GROUP_KEY);
    let zerr = |message: String| FormatError::Zarr {
        key: gkey.clone(),
        message,
    };
    let group = Group::async_open_opt(storage.clone(), "/", &MetadataRetrieveVersion::V3)
        .await
        .map_err(|e| match e {
            GroupCreateError::MissingMetadata => {
                zerr("not found: there is no visibility dataset at this location".into())
            }
            other => zerr(format!("cannot read the group metadata: {other}")),
        })?;
    let meta = parse_attributes(group.attributes()).map_err(zerr)?;
    open_arrays(store, prefix, meta).await
}

/// The data arrays at `prefix` described by `meta`, whether or not the group metadata
/// has been written: for writers that fill in the windows of a dataset whose layout was
/// created earlier ([`create_arrays`]) and commit it later ([`VisDataset::commit`]).
/// Checks the arrays against `meta` as [`open_dataset`] does.
pub(crate) async fn open_arrays(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    meta: VisDatasetMeta,
) -> Result<VisDataset, FormatError> {
    let storage = zarr_storage(&store, prefix);
    let open = |name: &'static str| {
        let storage = storage.clone();
        async move {
            let key = full_key(prefix, &meta_key(name));
            Array::async_open(storage, &format!("/{name}"))
                .await
                .map_err(|e| FormatError::Zarr {
                    key,
                    message: match e {
                        ArrayCreateError::MissingMetadata => "not found".into(),
                        other => format!("cannot read the array metadata: {other}"),
                    },
                })
        }
    };
    let (vis, weight, flag, uvw, done) = futures::try_join!(
        open(names::VISIBILITY),
        open(names::WEIGHT),
        open(names::FLAG),
        open(names::UVW),
        open(names::WINDOW_COMPLETE),
    )?;
    let ds = VisDataset {
        store,
        prefix: prefix.clone(),
        meta,
        vis,
        weight,
        flag,
        uvw,
        done,
    };
    ds.check_arrays()?;
    Ok(ds)
}

/// The metadata from the group attributes, or why they are not a dataset's.
fn parse_attributes(attrs: &Map<String, Value>) -> Result<VisDatasetMeta, String> {
    match attrs.get("format").and_then(Value::as_str) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(format!(
                "attribute format is {other:?}, not {FORMAT:?}: not an aperture visibility dataset"
            ));
        }
        None => {
            return Err(format!(
                "no attribute format = {FORMAT:?}: not an aperture visibility dataset"
            ));
        }
    }
    match attrs.get("format_version").and_then(Value::as_u64) {
        Some(v) if v <= u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "format_version {v} is newer than this aperture reads ({FORMAT_VERSION})"
            ));
        }
        None => return Err("attribute format_version is missing or not an integer".into()),
    }
    let raw = attrs
        .get("aperture")
        .ok_or("attribute aperture (the dataset metadata) is missing")?;
    let meta: VisDatasetMeta =
        serde_json::from_value(raw.clone()).map_err(|e| format!("attribute aperture: {e}"))?;
    meta.validate().map_err(|e| e.to_string())?;
    Ok(meta)
}

/// `e` from `VisBlock::validate` as an error about window `w`, naming the field.
fn block_error(w: usize, e: ImagingError) -> FormatError {
    let (field, reason) = match e {
        ImagingError::InvalidParameter { name, reason } => (name, reason),
        ImagingError::ShapeMismatch {
            name,
            expected,
            got,
        } => (name, format!("shape {got}, expected {expected}")),
        ImagingError::NonFinite { name, index } => {
            (name, format!("non-finite value at element {index}"))
        }
        ImagingError::Unsupported(reason) => ("block".into(), reason),
    };
    FormatError::Window {
        window: w,
        field,
        reason,
    }
}

/// An array and its expected shape, chunk shape and data type.
type ArrayCheck<'a> = (&'a str, &'a ZArray, &'a [u64], &'a [u64], &'a DataType);

/// The buffers of a chunk [`VisDataset::write_chunk`] wrote, for reuse (`None`: kept by
/// the store).
#[derive(Debug)]
pub struct ChunkBuffers<V, W> {
    pub vis: Option<Vec<V>>,
    pub weight: Option<Vec<W>>,
    pub flag: Option<Vec<bool>>,
}

/// One array's part of a window, for one time chunk.
#[derive(Debug, Clone, Copy)]
enum Part {
    Vis,
    Weight,
    Flag,
    Uvw,
}

/// A decoded chunk, as stored (widened when placed into the block).
enum Decoded {
    Vis32(usize, Vec<Complex32>),
    Vis64(usize, Vec<Complex64>),
    Weight32(usize, Vec<f32>),
    Weight64(usize, Vec<f64>),
    Flag(usize, Vec<bool>),
    Uvw(usize, Vec<f64>),
}

impl VisDataset {
    pub fn meta(&self) -> &VisDatasetMeta {
        &self.meta
    }

    /// Adds `key` to the metadata's `extra` before [`VisDataset::commit`], e.g. an import
    /// manifest whose counts are known only once the windows are written.
    pub(crate) fn set_extra(&mut self, key: &str, value: Value) {
        self.meta.extra.insert(key.to_owned(), value);
    }

    pub fn nwindows(&self) -> usize {
        self.meta.nwindows()
    }

    /// The object store and prefix the dataset lives at.
    pub fn location(&self) -> (&Arc<dyn ObjectStore>, &Path) {
        (&self.store, &self.prefix)
    }

    /// The full object-store key of `key` (relative to the dataset), e.g. for messages.
    pub fn key(&self, key: &str) -> String {
        full_key(&self.prefix, key)
    }

    /// Writes the group metadata (with the dataset metadata as attributes): after this,
    /// the dataset exists for [`open_dataset`].
    pub(crate) async fn commit(&self) -> Result<(), FormatError> {
        let key = self.key(GROUP_KEY);
        let mut attrs = Map::new();
        attrs.insert("format".into(), json!(FORMAT));
        attrs.insert("format_version".into(), json!(FORMAT_VERSION));
        attrs.insert(
            "description".into(),
            json!(
                "aperture visibilities, laid out like the xradio MSv4 VISIBILITY schema; \
                   one frequency window per chunk column"
            ),
        );
        attrs.insert(
            "aperture".into(),
            serde_json::to_value(&self.meta).map_err(|e| FormatError::Zarr {
                key: key.clone(),
                message: format!("cannot encode the metadata: {e}"),
            })?,
        );
        // Compact JSON written directly (zarrs pretty-prints, one line per antenna id):
        // the Zarr v3 group document is just these three keys.
        let doc = json!({"zarr_format": 3, "node_type": "group", "attributes": attrs});
        let bytes = serde_json::to_vec(&doc).map_err(|e| FormatError::Zarr {
            key: key.clone(),
            message: format!("cannot encode the metadata: {e}"),
        })?;
        self.store
            .put(&self.prefix.clone().join(GROUP_KEY), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| FormatError::Zarr {
                key,
                message: format!("cannot write: {e}"),
            })
    }

    /// Checks the data arrays' shapes, chunks and types against the metadata.
    fn check_arrays(&self) -> Result<(), FormatError> {
        let m = &self.meta;
        let (nt, nbl, nchan) = (m.ntime as u64, m.nbaseline as u64, m.nchan() as u64);
        let (tc, wc) = (m.time_chunk as u64, m.nchan_window() as u64);
        let (vis_t, weight_t) = layout::vis_types(m.vis_dtype);
        let data = [nt, nbl, nchan, 1];
        let chunk = [tc, nbl, wc, 1];
        let u8_t = zarrs::array::data_type::uint8();
        let f64_t = zarrs::array::data_type::float64();
        let bool_t = zarrs::array::data_type::bool();
        let checks: [ArrayCheck<'_>; 5] = [
            (names::VISIBILITY, &self.vis, &data, &chunk, &vis_t),
            (names::WEIGHT, &self.weight, &data, &chunk, &weight_t),
            (names::FLAG, &self.flag, &data, &chunk, &bool_t),
            (names::UVW, &self.uvw, &[nt, nbl, 3], &[tc, nbl, 3], &f64_t),
            (
                names::WINDOW_COMPLETE,
                &self.done,
                &[m.nwindows() as u64],
                &[1],
                &u8_t,
            ),
        ];
        for (name, a, shape, chunk, dtype) in checks {
            let bad = |message: String| FormatError::Zarr {
                key: self.key(&meta_key(name)),
                message,
            };
            if a.shape() != shape {
                return Err(bad(format!(
                    "shape {:?} disagrees with the dataset metadata, which needs {shape:?}",
                    a.shape()
                )));
            }
            let got: Vec<u64> = a
                .chunk_shape(&vec![0; shape.len()])
                .map_err(|e| bad(format!("chunk grid: {e}")))?
                .iter()
                .map(|n| n.get())
                .collect();
            if got != chunk {
                return Err(bad(format!(
                    "chunk shape {got:?}; the dataset metadata needs {chunk:?} \
                     (one frequency window per chunk)"
                )));
            }
            if a.data_type() != dtype {
                return Err(bad(format!(
                    "data type {:?}; expected {:?}",
                    a.data_type(),
                    dtype
                )));
            }
        }
        Ok(())
    }

    /// Writes the coordinate arrays (once, at creation).
    async fn write_coordinates(&self, coords: &[(&str, ZArray)]) -> Result<(), FormatError> {
        let m = &self.meta;
        let opts = write_options();
        let arr = |name: &str| &coords.iter().find(|(n, _)| *n == name).expect("built").1;
        let err = |a: &ZArray, idx: &[u64], e: zarrs::array::ArrayError| FormatError::Zarr {
            key: self.key(a.chunk_key(idx).as_str()),
            message: format!("cannot write: {e}"),
        };
        let ints = |v: &[u32]| -> Vec<i32> {
            // validate() checked every antenna fits int32.
            v.iter()
                .map(|&a| i32::try_from(a).unwrap_or(i32::MAX))
                .collect()
        };
        let mut jobs: Vec<futures::future::BoxFuture<'_, Result<(), FormatError>>> = Vec::new();
        for tc in 0..m.n_time_chunks() {
            let a = arr(names::TIME);
            let mut t = m.time_s[m.time_chunk_range(tc)].to_vec();
            t.resize(m.time_chunk, 0.0);
            jobs.push(Box::pin(async move {
                let idx = [tc as u64];
                a.async_store_chunk_opt(&idx, t, &opts)
                    .await
                    .map_err(|e| err(a, &idx, e))
            }));
        }
        for (name, values) in [
            (
                names::BASELINE_ID,
                (0..m.nbaseline)
                    .map(|b| i32::try_from(b).unwrap_or(i32::MAX))
                    .collect::<Vec<i32>>(),
            ),
            (names::ANTENNA1, ints(&m.ant1)),
            (names::ANTENNA2, ints(&m.ant2)),
        ] {
            let a = arr(name);
            jobs.push(Box::pin(async move {
                a.async_store_chunk_opt(&[0], values, &opts)
                    .await
                    .map_err(|e| err(a, &[0], e))
            }));
        }
        for (w, win) in m.windows.iter().enumerate() {
            let a = arr(names::FREQUENCY);
            let f = win.freq_hz.clone();
            jobs.push(Box::pin(async move {
                let idx = [w as u64];
                a.async_store_chunk_opt(&idx, f, &opts)
                    .await
                    .map_err(|e| err(a, &idx, e))
            }));
        }
        for (name, labels) in [
            (names::POLARIZATION, &POLARIZATIONS[..]),
            (names::UVW_LABEL, &UVW_LABELS[..]),
        ] {
            let a = arr(name);
            let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
            jobs.push(Box::pin(async move {
                a.async_store_chunk_opt(&[0], labels, &opts)
                    .await
                    .map_err(|e| err(a, &[0], e))
            }));
        }
        stream::iter(jobs)
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    fn check_window_index(&self, w: usize) -> Result<(), FormatError> {
        if w >= self.nwindows() {
            return Err(FormatError::Window {
                window: w,
                field: "window".into(),
                reason: format!(
                    "the dataset has {} windows (0..={})",
                    self.nwindows(),
                    self.nwindows() - 1
                ),
            });
        }
        Ok(())
    }

    /// Checks that `block` is window `w`: shapes, channel frequencies, row order (times
    /// and antennas), phase centre, and the block's own consistency.
    fn check_block(&self, w: usize, block: &VisBlock) -> Result<(), FormatError> {
        let m = &self.meta;
        let win = &m.windows[w];
        let bad = |field: &str, reason: String| FormatError::Window {
            window: w,
            field: field.into(),
            reason,
        };
        let (nrows, nchan) = (m.nrows(), win.nchan);
        if block.n_rows() != nrows {
            return Err(bad(
                "uvw_r",
                format!(
                    "{} rows; the dataset has {} times x {} baselines = {nrows}",
                    block.n_rows(),
                    m.ntime,
                    m.nbaseline
                ),
            ));
        }
        if block.n_chan() != nchan {
            return Err(bad(
                "freq_c",
                format!("{} channels; the window has {nchan}", block.n_chan()),
            ));
        }
        for (name, shape) in [
            ("vis_rc", block.vis_rc.dim()),
            ("weight_rc", block.weight_rc.dim()),
            ("flag_rc", block.flag_rc.dim()),
        ] {
            if shape != (nrows, nchan) {
                return Err(bad(
                    name,
                    format!("shape {shape:?}; the window needs ({nrows}, {nchan})"),
                ));
            }
        }
        block.validate().map_err(|e| block_error(w, e))?;
        for (c, (&got, &want)) in block.freq_c.iter().zip(&win.freq_hz).enumerate() {
            if (got - want).abs() > FREQ_RTOL * want {
                return Err(bad(
                    &format!("freq_c[{c}]"),
                    format!("{got} Hz; the window's channel {c} is {want} Hz"),
                ));
            }
        }
        let nbl = m.nbaseline;
        for r in 0..nrows {
            let (t, b) = (r / nbl, r % nbl);
            let want = m.time_s[t];
            if (block.time_r[r] - want).abs() > TIME_TOL * want.abs().max(1.0) {
                return Err(bad(
                    &format!("time_r[{r}]"),
                    format!(
                        "{} s; row {r} is time {t} ({want} s) of the dataset, rows being time-major",
                        block.time_r[r]
                    ),
                ));
            }
            if (block.ant1_r[r], block.ant2_r[r]) != (m.ant1[b], m.ant2[b]) {
                return Err(bad(
                    &format!("ant1_r/ant2_r[{r}]"),
                    format!(
                        "antennas {}-{}; row {r} is baseline {b} ({}-{}) of the dataset",
                        block.ant1_r[r], block.ant2_r[r], m.ant1[b], m.ant2[b]
                    ),
                ));
            }
        }
        let (p, q) = (block.phase_centre, m.phase_centre);
        let dra = (p.ra - q.ra + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
            - std::f64::consts::PI;
        if dra.abs() > PHASE_CENTRE_TOL || (p.dec - q.dec).abs() > PHASE_CENTRE_TOL {
            return Err(bad(
                "phase_centre",
                format!(
                    "({}, {}) deg; the dataset is phased to ({}, {}) deg",
                    p.ra.to_degrees(),
                    p.dec.to_degrees(),
                    q.ra.to_degrees(),
                    q.dec.to_degrees()
                ),
            ));
        }
        Ok(())
    }

    /// Writes frequency window `w` from `block` (rows time-major over the dataset's times
    /// and baselines, channels those of the window). Only the window's own chunks are
    /// written (and `UVW`, when it was not given at creation), so windows may be written
    /// concurrently; writing a window again replaces it. The completion marker is erased
    /// first and written last. Complex64 datasets round vis and weights to f32.
    pub async fn write_window(&self, w: usize, block: &VisBlock) -> Result<(), FormatError> {
        self.check_window_index(w)?;
        self.check_block(w, block)?;
        let marker = [w as u64];
        let marker_key = self.key(self.done.chunk_key(&marker).as_str());
        self.done
            .async_erase_chunk(&marker)
            .await
            .map_err(|e| FormatError::Zarr {
                key: marker_key.clone(),
                message: format!("window {w}: cannot erase the completion marker: {e}"),
            })?;
        let mut parts = vec![Part::Vis, Part::Weight, Part::Flag];
        if !self.meta.uvw_at_create {
            parts.push(Part::Uvw);
        }
        let jobs: Vec<(usize, Part)> = (0..self.meta.n_time_chunks())
            .flat_map(|tc| parts.iter().map(move |&p| (tc, p)))
            .collect();
        stream::iter(jobs)
            .map(|(tc, part)| self.write_part(w, tc, part, block))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        self.done
            .async_store_chunk_opt(&marker, vec![1u8], &write_options())
            .await
            .map_err(|e| FormatError::Zarr {
                key: marker_key,
                message: format!("window {w}: cannot write the completion marker: {e}"),
            })
    }

    /// Rows of time chunk `tc` and the element count of a whole chunk of `per_row`.
    fn chunk_rows(&self, tc: usize, per_row: usize) -> (std::ops::Range<usize>, usize) {
        let t = self.meta.time_chunk_range(tc);
        let nbl = self.meta.nbaseline;
        (
            t.start * nbl..t.end * nbl,
            self.meta.time_chunk * nbl * per_row,
        )
    }

    /// Encodes `data` as chunk `idx` of `a`, exactly as `Array::async_store_chunk_opt`
    /// with [`write_options`] would, and stores it ([`put::store_chunk`]: on tokio's
    /// blocking pool, so the chunks in flight encode on every core); returns the buffer
    /// for reuse when the store gave it back.
    async fn store<T: PlainElement>(
        &self,
        a: &ZArray,
        idx: &[u64],
        w: Option<usize>,
        data: Vec<T>,
    ) -> Result<Option<Vec<T>>, FormatError> {
        let err = |e: String| FormatError::Zarr {
            key: self.key(a.chunk_key(idx).as_str()),
            message: match w {
                Some(w) => format!("window {w}: cannot write: {e}"),
                None => format!("cannot write: {e}"),
            },
        };
        let key = self.key(a.chunk_key(idx).as_str());
        put::store_chunk(&self.store, &key, a, idx, data, &write_options())
            .await
            .map_err(err)
    }

    async fn write_uvw_chunk(
        &self,
        w: Option<usize>,
        tc: usize,
        uvw_r: &[UvwMetres],
    ) -> Result<(), FormatError> {
        let (rows, len) = self.chunk_rows(tc, 3);
        let data = uvw_chunk(uvw_r, rows, len);
        self.store(&self.uvw, &[tc as u64, 0, 0], w, data)
            .await
            .map(drop)
    }

    async fn write_part(
        &self,
        w: usize,
        tc: usize,
        part: Part,
        block: &VisBlock,
    ) -> Result<(), FormatError> {
        let idx = [tc as u64, 0, w as u64, 0];
        let (rows, len) = self.chunk_rows(tc, self.meta.nchan_window());
        let c64 = self.meta.vis_dtype == VisDtype::Complex64;
        match part {
            Part::Vis if c64 => {
                let zero = Complex32::new(0.0, 0.0);
                let data = chunk_of(block.vis_rc.view(), rows, len, zero, narrow_c);
                self.store(&self.vis, &idx, Some(w), data).await.map(drop)
            }
            Part::Vis => {
                let zero = Complex64::new(0.0, 0.0);
                let data = chunk_of(block.vis_rc.view(), rows, len, zero, |v| v);
                self.store(&self.vis, &idx, Some(w), data).await.map(drop)
            }
            Part::Weight if c64 => {
                let data = chunk_of(block.weight_rc.view(), rows, len, 0.0f32, |v| v as f32);
                self.store(&self.weight, &idx, Some(w), data)
                    .await
                    .map(drop)
            }
            Part::Weight => {
                let data = chunk_of(block.weight_rc.view(), rows, len, 0.0f64, |v| v);
                self.store(&self.weight, &idx, Some(w), data)
                    .await
                    .map(drop)
            }
            Part::Flag => {
                let data = chunk_of(block.flag_rc.view(), rows, len, true, |v| v);
                self.store(&self.flag, &idx, Some(w), data).await.map(drop)
            }
            Part::Uvw => self.write_uvw_chunk(Some(w), tc, &block.uvw_r).await,
        }
    }

    /// Writes time chunk `tc` of window `w`: `vis`, `weight` and `flag` are the chunk's
    /// elements, `[time][baseline][channel]` over `time_chunk` integrations in C order,
    /// padded past the last integration (complex64 + f32 or complex128 + f64, as the
    /// dataset stores them). The three chunks are encoded on the blocking pool and
    /// stored concurrently. The window's completion marker is not touched: erase it
    /// before ([`VisDataset::erase_window_marker`]) and set it once every chunk is
    /// written ([`VisDataset::mark_window_complete`]). Returns the three buffers, for
    /// the next chunk, as far as the store gave them back (see [`put`]).
    pub async fn write_chunk<V: PlainElement, W: PlainElement>(
        &self,
        w: usize,
        tc: usize,
        vis: Vec<V>,
        weight: Vec<W>,
        flag: Vec<bool>,
    ) -> Result<ChunkBuffers<V, W>, FormatError> {
        self.check_window_index(w)?;
        let (_, len) = self.chunk_rows(tc, self.meta.nchan_window());
        if tc >= self.meta.n_time_chunks() {
            return Err(FormatError::Window {
                window: w,
                field: "time chunk".into(),
                reason: format!("{tc}; the dataset has {}", self.meta.n_time_chunks()),
            });
        }
        for (name, n) in [
            ("vis", vis.len()),
            ("weight", weight.len()),
            ("flag", flag.len()),
        ] {
            if n != len {
                return Err(FormatError::Window {
                    window: w,
                    field: name.into(),
                    reason: format!("{n} elements; time chunk {tc} holds {len}"),
                });
            }
        }
        let idx = [tc as u64, 0, w as u64, 0];
        let (vis, weight, flag) = futures::try_join!(
            self.store(&self.vis, &idx, Some(w), vis),
            self.store(&self.weight, &idx, Some(w), weight),
            self.store(&self.flag, &idx, Some(w), flag),
        )?;
        Ok(ChunkBuffers { vis, weight, flag })
    }

    /// Whether time chunk `tc` of window `w` is stored in all three data arrays (chunks
    /// are stored whole, by one put each, so a chunk present is a chunk written).
    pub async fn chunk_stored(&self, w: usize, tc: usize) -> Result<bool, FormatError> {
        let idx = [tc as u64, 0, w as u64, 0];
        for a in [&self.vis, &self.weight, &self.flag] {
            let key = self.key(a.chunk_key(&idx).as_str());
            match self.store.head(&Path::from(key.as_str())).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => {
                    return Err(FormatError::Zarr {
                        key,
                        message: format!("window {w}: cannot look the chunk up: {e}"),
                    });
                }
            }
        }
        Ok(true)
    }

    /// Flagged samples of the stored time chunk `tc` of window `w` (its real
    /// integrations; the padding is not counted).
    pub async fn chunk_flagged(&self, w: usize, tc: usize) -> Result<u64, FormatError> {
        let idx = [tc as u64, 0, w as u64, 0];
        let flag: Vec<bool> = self.fetch(&self.flag, &idx, w).await?;
        let (rows, _) = self.chunk_rows(tc, self.meta.nchan_window());
        let n = (rows.len() * self.meta.nchan_window()).min(flag.len());
        Ok(flag[..n].iter().filter(|&&f| f).count() as u64)
    }

    /// Erases window `w`'s completion marker (before its chunks are rewritten).
    pub async fn erase_window_marker(&self, w: usize) -> Result<(), FormatError> {
        self.check_window_index(w)?;
        let marker = [w as u64];
        self.done
            .async_erase_chunk(&marker)
            .await
            .map_err(|e| FormatError::Zarr {
                key: self.key(self.done.chunk_key(&marker).as_str()),
                message: format!("window {w}: cannot erase the completion marker: {e}"),
            })
    }

    /// Marks window `w` complete: call only once all its chunks are written.
    pub async fn mark_window_complete(&self, w: usize) -> Result<(), FormatError> {
        self.check_window_index(w)?;
        let marker = [w as u64];
        self.done
            .async_store_chunk_opt(&marker, vec![1u8], &write_options())
            .await
            .map_err(|e| FormatError::Zarr {
                key: self.key(self.done.chunk_key(&marker).as_str()),
                message: format!("window {w}: cannot write the completion marker: {e}"),
            })
    }

    /// Whether window `w` has been completely written (reads its marker only).
    pub async fn window_complete(&self, w: usize) -> Result<bool, FormatError> {
        self.check_window_index(w)?;
        let idx = [w as u64];
        let got = self
            .done
            .async_retrieve_chunk_if_exists::<Vec<u8>>(&idx)
            .await
            .map_err(|e| FormatError::Zarr {
                key: self.key(self.done.chunk_key(&idx).as_str()),
                message: format!("window {w}: cannot read the completion marker: {e}"),
            })?;
        Ok(got.is_some_and(|v| v.first() == Some(&1)))
    }

    /// Reads frequency window `w`: its chunks of `VISIBILITY`, `WEIGHT`, `FLAG`, the `UVW`
    /// chunks and its completion marker; times, antennas, frequencies and the phase
    /// centre come from the metadata. An unwritten window is
    /// [`FormatError::MissingWindow`]; a missing, corrupt or undecodable chunk is
    /// [`FormatError::Zarr`] naming the window and the chunk's full key.
    pub async fn read_window(&self, w: usize) -> Result<VisBlock, FormatError> {
        if !self.window_complete(w).await? {
            return Err(FormatError::MissingWindow {
                window: w,
                key: self.key(self.done.chunk_key(&[w as u64]).as_str()),
            });
        }
        let m = &self.meta;
        let (nrows, nchan, nbl) = (m.nrows(), m.nchan_window(), m.nbaseline);
        let jobs: Vec<(usize, Part)> = (0..m.n_time_chunks())
            .flat_map(|tc| {
                [Part::Vis, Part::Weight, Part::Flag, Part::Uvw]
                    .into_iter()
                    .map(move |p| (tc, p))
            })
            .collect();
        let mut vis = vec![Complex64::new(0.0, 0.0); nrows * nchan];
        let mut weight = vec![0.0; nrows * nchan];
        let mut flag = vec![true; nrows * nchan];
        let mut uvw = vec![UvwMetres::default(); nrows];
        let mut parts = stream::iter(jobs)
            .map(|(tc, part)| self.read_part(w, tc, part))
            .buffer_unordered(CONCURRENCY);
        while let Some(part) = parts.try_next().await? {
            let place = |tc: usize, per_row: usize| {
                let (rows, _) = self.chunk_rows(tc, per_row);
                (
                    rows.start * per_row..rows.end * per_row,
                    rows.len() * per_row,
                )
            };
            match part {
                Decoded::Vis32(tc, v) => {
                    let (dst, n) = place(tc, nchan);
                    for (d, s) in vis[dst].iter_mut().zip(&v[..n]) {
                        *d = widen_c(*s);
                    }
                }
                Decoded::Vis64(tc, v) => {
                    let (dst, n) = place(tc, nchan);
                    vis[dst].copy_from_slice(&v[..n]);
                }
                Decoded::Weight32(tc, v) => {
                    let (dst, n) = place(tc, nchan);
                    for (d, s) in weight[dst].iter_mut().zip(&v[..n]) {
                        *d = f64::from(*s);
                    }
                }
                Decoded::Weight64(tc, v) => {
                    let (dst, n) = place(tc, nchan);
                    weight[dst].copy_from_slice(&v[..n]);
                }
                Decoded::Flag(tc, v) => {
                    let (dst, n) = place(tc, nchan);
                    flag[dst].copy_from_slice(&v[..n]);
                }
                Decoded::Uvw(tc, v) => {
                    let (rows, _) = self.chunk_rows(tc, 3);
                    for (r, p) in rows.zip(v.chunks_exact(3)) {
                        uvw[r] = UvwMetres::new(p[0], p[1], p[2]);
                    }
                }
            }
        }
        let shape = (nrows, nchan);
        let as_2d = |what: &'static str| {
            move |e: ndarray::ShapeError| FormatError::Window {
                window: w,
                field: what.into(),
                reason: e.to_string(),
            }
        };
        let block = VisBlock {
            uvw_r: uvw,
            freq_c: m.windows[w].freq_hz.clone(),
            vis_rc: Array2::from_shape_vec(shape, vis).map_err(as_2d("vis_rc"))?,
            weight_rc: Array2::from_shape_vec(shape, weight).map_err(as_2d("weight_rc"))?,
            flag_rc: Array2::from_shape_vec(shape, flag).map_err(as_2d("flag_rc"))?,
            ant1_r: (0..nrows).map(|r| m.ant1[r % nbl]).collect(),
            ant2_r: (0..nrows).map(|r| m.ant2[r % nbl]).collect(),
            time_r: (0..nrows).map(|r| m.time_s[r / nbl]).collect(),
            phase_centre: m.phase_centre,
        };
        block.validate().map_err(|e| block_error(w, e))?;
        Ok(block)
    }

    /// Retrieves and decodes one chunk; a missing chunk (the window being marked
    /// complete) or a failed decode is an error naming the window and the key.
    async fn fetch<T: ElementOwned + Send + Sync>(
        &self,
        a: &ZArray,
        idx: &[u64],
        w: usize,
    ) -> Result<Vec<T>, FormatError> {
        let key = || self.key(a.chunk_key(idx).as_str());
        match a.async_retrieve_chunk_if_exists::<Vec<T>>(idx).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(FormatError::Zarr {
                key: key(),
                message: format!(
                    "window {w}: chunk is missing, although the window is marked complete"
                ),
            }),
            Err(e) => Err(FormatError::Zarr {
                key: key(),
                message: format!("window {w}: cannot read or decode the chunk (corrupt?): {e}"),
            }),
        }
    }

    async fn read_part(&self, w: usize, tc: usize, part: Part) -> Result<Decoded, FormatError> {
        let idx = [tc as u64, 0, w as u64, 0];
        let c64 = self.meta.vis_dtype == VisDtype::Complex64;
        Ok(match part {
            Part::Vis if c64 => Decoded::Vis32(tc, self.fetch(&self.vis, &idx, w).await?),
            Part::Vis => Decoded::Vis64(tc, self.fetch(&self.vis, &idx, w).await?),
            Part::Weight if c64 => Decoded::Weight32(tc, self.fetch(&self.weight, &idx, w).await?),
            Part::Weight => Decoded::Weight64(tc, self.fetch(&self.weight, &idx, w).await?),
            Part::Flag => Decoded::Flag(tc, self.fetch(&self.flag, &idx, w).await?),
            Part::Uvw => Decoded::Uvw(tc, self.fetch(&self.uvw, &[tc as u64, 0, 0], w).await?),
        })
    }

    /// Writes every window of a whole-band block (rows on the dataset's grid, all
    /// channels), one window after another.
    pub async fn write_band(&self, block: &VisBlock) -> Result<(), FormatError> {
        if block.n_chan() != self.meta.nchan() {
            return Err(FormatError::invalid(
                "block",
                format!(
                    "{} channels; the dataset has {}",
                    block.n_chan(),
                    self.meta.nchan()
                ),
            ));
        }
        for (w, win) in self.meta.windows.iter().enumerate() {
            let part = super::meta::window_block(block, win)?;
            self.write_window(w, &part).await?;
        }
        Ok(())
    }
}
