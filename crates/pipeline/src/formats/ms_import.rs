//! A MeasurementSet streamed into a Zarr visibility dataset time chunk by time chunk,
//! for `aperture import ms` and the job's `import` stage alike (docs/measurement-sets.md).
//!
//! A reader thread ([`MsReader`]) owns the casacore tables: it opens the MS, resolves
//! the selection and sends it ([`MsReader::source`]); then [`MsReader::write`] tells it
//! which windows and time chunks to read and writes each time chunk of every window as
//! soon as it arrives (the chunks are already laid out as the store's, in its
//! precision), while the reader reads the next rows (under the casacore lock) and a
//! second thread forms Stokes I. A window's completion marker is erased before its
//! first chunk and set only after its last, so a killed import never has a window
//! marked complete that is not.
//!
//! Memory is bounded by [`CHUNK_BUFFERS`] time chunks of the windows read in one pass
//! (one being decoded, one waiting, [`IN_FLIGHT`] being written), plus the reader's raw
//! row blocks and casacore's tile cache: not by the MS's rows. A written chunk's
//! buffers go back to the reader ([`ChunkPool`]), which decodes the next chunks into
//! them rather than into fresh memory (docs/performance.md). Windows whose time chunk
//! would not fit in the budget are read in several passes (groups of windows).
//!
//! **Resume.** Chunks are stored whole (one put each), so a chunk present in all three
//! data arrays is a chunk written: with [`WriteOptions::resume`], windows marked
//! complete and time chunks already stored for every window of a pass are skipped (their
//! flagged counts are read back), and only the rest is read and written.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use aperture_ms::chunks::PoolElement;
use aperture_ms::windows::{WindowPlan, group_windows};
use aperture_ms::{
    ChunkPool, ChunkValues, MeasurementSet, MsError, Plan as MsPlan, Precision, Selection,
};
use aperture_ms::{TimeChunk, WindowChunk};
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::Value;
use tokio::sync::mpsc;

use super::bundle::VisDtype;
use super::zarr_vis::{ChunkBuffers, PENDING_IMPORT_KEY, VisDataset, VisDatasetMeta};
use crate::FormatError;
use crate::plan::ms::MsSource;

/// Time chunks being written at once.
pub const IN_FLIGHT: usize = 2;
/// Time chunks of a pass in memory at once: one being decoded, one waiting, and
/// [`IN_FLIGHT`] being written. A pass's windows are chosen so that this many time
/// chunks fit in [`WriteOptions::budget_bytes`].
pub const CHUNK_BUFFERS: usize = IN_FLIGHT + 2;
/// Windows of one time chunk encoded at once.
const WINDOW_CONCURRENCY: usize = 4;

/// Why a streamed import failed.
#[derive(Debug, thiserror::Error)]
pub enum MsImportError {
    /// The MeasurementSet (or the selection) is at fault.
    #[error(transparent)]
    Ms(#[from] MsError),
    /// Writing the dataset failed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The reader thread ended without saying why (it panicked).
    #[error("{path}: the MeasurementSet reader stopped", path = path.display())]
    ReaderStopped { path: PathBuf },
    /// The dataset needs other windows or time chunks than [`MsReader::prefetch`] sent
    /// the reader (a dataset that was not fresh).
    #[error(
        "{path}: the dataset already holds part of this import, but its reading was \
         started as for a fresh one",
        path = path.display()
    )]
    PrefetchMismatch { path: PathBuf },
}

/// How [`MsReader::write`] writes.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Memory for the time chunks in flight, bytes (see [`CHUNK_BUFFERS`]).
    pub budget_bytes: usize,
    /// Skip windows marked complete and time chunks already stored.
    pub resume: bool,
}

/// What [`MsReader::write`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    /// Flagged samples of the windows asked for (skipped chunks counted from the store).
    pub flagged: u64,
    /// Samples read and written by this call.
    pub samples: u64,
    /// Window time chunks written, and skipped because they were already stored.
    pub chunks_written: usize,
    pub chunks_skipped: usize,
    /// Windows skipped whole (marked complete).
    pub windows_skipped: usize,
    /// Passes over the main table.
    pub passes: usize,
    /// Seconds spent waiting for the reader, and for writes to finish.
    pub read_wait_s: f64,
    pub write_wait_s: f64,
}

/// Progress of [`MsReader::write`]: time chunks (of every window of a pass) written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub samples: u64,
}

/// What the reader should read after the selection: passes of (windows, time chunks).
struct Order {
    passes: Vec<(Vec<usize>, Vec<usize>)>,
    time_chunk: usize,
    precision: Precision,
}

enum Msg {
    Source(Box<MsSource>),
    Chunk(TimeChunk),
    Failed(MsError),
}

/// The reader thread of one MeasurementSet; see the module documentation.
#[derive(Debug)]
pub struct MsReader {
    path: PathBuf,
    /// Buffers of written chunks, for the reader to fill again.
    pool: Arc<ChunkPool>,
    rx: mpsc::Receiver<Msg>,
    order: Option<std::sync::mpsc::Sender<Order>>,
    /// The passes sent ahead by [`MsReader::prefetch`].
    prefetched: Option<Vec<(Vec<usize>, Vec<usize>)>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Source(_) => "Source",
            Self::Chunk(_) => "Chunk",
            Self::Failed(_) => "Failed",
        })
    }
}

impl MsReader {
    /// Starts the reader thread: it opens the MS at `path` and resolves `sel` into
    /// windows of `channels_per_window` channels (see [`MeasurementSet::plan`]).
    pub fn spawn(path: PathBuf, sel: Selection, channels_per_window: Option<usize>) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let (order_tx, order_rx) = std::sync::mpsc::channel::<Order>();
        let p = path.clone();
        let pool = Arc::new(ChunkPool::default());
        let buffers = pool.clone();
        let body = move || {
            let fail = |e| {
                let _ = tx.blocking_send(Msg::Failed(e));
            };
            let mut ms = match MeasurementSet::open(&p) {
                Ok(ms) => ms,
                Err(e) => return fail(e),
            };
            let plan = match ms.plan(&sel, channels_per_window) {
                Ok(plan) => plan,
                Err(e) => return fail(e),
            };
            let src = MsSource {
                meta: ms.meta().clone(),
                plan: plan.clone(),
            };
            if tx.blocking_send(Msg::Source(Box::new(src))).is_err() {
                return;
            }
            let Ok(order) = order_rx.recv() else {
                return;
            };
            let chunk_tx = tx.clone();
            let mut sink = move |c: TimeChunk| chunk_tx.blocking_send(Msg::Chunk(c)).is_ok();
            for (windows, chunks) in &order.passes {
                if let Err(e) = ms.read_time_chunks(
                    &plan,
                    windows,
                    (order.time_chunk, chunks),
                    (order.precision, &buffers),
                    &mut sink,
                ) {
                    return fail(e);
                }
                if tx.is_closed() {
                    return;
                }
            }
        };
        // Named, as is its decoding thread, for profiles (docs/performance.md).
        let handle = std::thread::Builder::new()
            .name("ms-read".into())
            .spawn(body)
            .ok();
        Self {
            path,
            pool,
            rx,
            order: Some(order_tx),
            prefetched: None,
            handle,
        }
    }

    /// Starts reading windows `windows` of `plan` for a fresh dataset of layout `m`
    /// (every time chunk of every window) before the dataset is created, so that creating
    /// it overlaps the first reads. [`MsReader::write`] then checks that the dataset
    /// needs exactly these passes. Does nothing after the order went out.
    pub fn prefetch(
        &mut self,
        m: &VisDatasetMeta,
        plan: &MsPlan,
        windows: &[usize],
        budget_bytes: usize,
    ) {
        let precision = precision_of(m);
        let all: Vec<usize> = (0..m.n_time_chunks()).collect();
        let passes: Vec<(Vec<usize>, Vec<usize>)> =
            groups(plan, windows, m, precision, budget_bytes)
                .into_iter()
                .map(|g| (g, all.clone()))
                .collect();
        let order = Order {
            passes: passes.clone(),
            time_chunk: m.time_chunk,
            precision,
        };
        if let Some(tx) = self.order.take()
            && tx.send(order).is_ok()
        {
            self.prefetched = Some(passes);
        }
    }

    fn stopped(&self) -> MsImportError {
        MsImportError::ReaderStopped {
            path: self.path.clone(),
        }
    }

    /// The MS's subtables and the resolved selection (the first thing the reader sends).
    pub async fn source(&mut self) -> Result<MsSource, MsImportError> {
        match self.rx.recv().await {
            Some(Msg::Source(s)) => Ok(*s),
            Some(Msg::Failed(e)) => Err(e.into()),
            _ => Err(self.stopped()),
        }
    }

    /// Reads windows `windows` of `plan` (the plan [`MsReader::source`] returned) and
    /// writes them into `ds`, whose grid and windows are the plan's, time chunk by time
    /// chunk; marks each window complete after its last chunk. `progress` is called after
    /// each time chunk. Call once.
    pub async fn write(
        &mut self,
        ds: &VisDataset,
        plan: &MsPlan,
        windows: &[usize],
        opts: WriteOptions,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Written, MsImportError> {
        let m = ds.meta();
        let precision = precision_of(m);
        let ntc = m.n_time_chunks();
        let mut out = Written::default();
        let mut passes: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
        for group in groups(plan, windows, m, precision, opts.budget_bytes) {
            let mut pending = Vec::new();
            for w in group {
                if opts.resume && ds.window_complete(w).await? {
                    for tc in 0..ntc {
                        out.flagged += ds.chunk_flagged(w, tc).await?;
                    }
                    out.windows_skipped += 1;
                } else {
                    pending.push(w);
                }
            }
            if pending.is_empty() {
                continue;
            }
            let mut chunks = Vec::new();
            for tc in 0..ntc {
                let mut stored = opts.resume;
                for &w in &pending {
                    if !stored {
                        break;
                    }
                    stored = ds.chunk_stored(w, tc).await?;
                }
                if stored {
                    for &w in &pending {
                        out.flagged += ds.chunk_flagged(w, tc).await?;
                    }
                    out.chunks_skipped += pending.len();
                } else {
                    chunks.push(tc);
                }
            }
            for &w in &pending {
                ds.erase_window_marker(w).await?;
                if chunks.is_empty() {
                    ds.mark_window_complete(w).await?;
                }
            }
            if !chunks.is_empty() {
                passes.push((pending, chunks));
            }
        }
        out.passes = passes.len();
        let total: usize = passes.iter().map(|p| p.1.len()).sum();
        let mut remaining = vec![0usize; m.nwindows()];
        for (ws, chunks) in &passes {
            for &w in ws {
                remaining[w] = chunks.len();
            }
        }
        let sent = match self.prefetched.take() {
            // The reader is already reading these passes.
            Some(ahead) if ahead == passes => Some(true),
            Some(_) => {
                return Err(MsImportError::PrefetchMismatch {
                    path: self.path.clone(),
                });
            }
            None => {
                let order = Order {
                    passes,
                    time_chunk: m.time_chunk,
                    precision,
                };
                self.order.take().map(|tx| tx.send(order).is_ok())
            }
        };
        if total == 0 {
            return Ok(out);
        }
        if sent != Some(true) {
            return Err(self.stopped());
        }
        let mut inflight = FuturesUnordered::new();
        let (mut received, mut done) = (0usize, 0usize);
        loop {
            while received < total && inflight.len() < IN_FLIGHT {
                let t = Instant::now();
                let chunk = match self.rx.recv().await {
                    Some(Msg::Chunk(c)) => c,
                    Some(Msg::Failed(e)) => return Err(e.into()),
                    _ => return Err(self.stopped()),
                };
                out.read_wait_s += t.elapsed().as_secs_f64();
                received += 1;
                inflight.push(write_time_chunk(ds, chunk, &self.pool));
            }
            let t = Instant::now();
            let Some(written) = inflight.next().await else {
                break;
            };
            out.write_wait_s += t.elapsed().as_secs_f64();
            let (ws, samples, flagged) = written?;
            for w in ws {
                remaining[w] -= 1;
                if remaining[w] == 0 {
                    ds.mark_window_complete(w).await?;
                }
                out.chunks_written += 1;
            }
            out.samples += samples;
            out.flagged += flagged;
            done += 1;
            progress(Progress {
                done,
                total,
                samples: out.samples,
            });
        }
        Ok(out)
    }
}

impl Drop for MsReader {
    fn drop(&mut self) {
        self.order.take();
        self.rx.close();
        // Unblock a reader waiting for room in the channel.
        while self.rx.try_recv().is_ok() {}
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The sample precision of a dataset's visibilities.
fn precision_of(m: &VisDatasetMeta) -> Precision {
    match m.vis_dtype {
        VisDtype::Complex64 => Precision::Single,
        VisDtype::Complex128 => Precision::Double,
    }
}

/// The windows `windows` of `plan` in passes: consecutive windows of one spectral window
/// whose [`CHUNK_BUFFERS`] time chunks fit in `budget` bytes (one window at least).
fn groups(
    plan: &MsPlan,
    windows: &[usize],
    m: &VisDatasetMeta,
    precision: Precision,
    budget: usize,
) -> Vec<Vec<usize>> {
    let subset: Vec<WindowPlan> = windows.iter().map(|&w| plan.windows[w].clone()).collect();
    let per_channel = m
        .time_chunk
        .saturating_mul(m.nbaseline)
        .saturating_mul(precision.sample_bytes());
    group_windows(&subset, per_channel, budget / CHUNK_BUFFERS)
        .into_iter()
        .map(|g| g.into_iter().map(|i| windows[i]).collect())
        .collect()
}

/// Writes every window's part of `chunk`, giving its buffers back to `pool`; returns the
/// windows, samples and flagged samples written.
async fn write_time_chunk(
    ds: &VisDataset,
    chunk: TimeChunk,
    pool: &ChunkPool,
) -> Result<(Vec<usize>, u64, u64), MsImportError> {
    let tc = chunk.index;
    let per_window = (chunk.times.len() * ds.meta().nbaseline) as u64;
    let nchan = ds.meta().nchan_window() as u64;
    let ws: Vec<usize> = chunk.windows.iter().map(|w| w.window).collect();
    let flagged = chunk.windows.iter().map(|w| w.flagged).sum();
    let samples = per_window * nchan * ws.len() as u64;
    stream::iter(chunk.windows)
        .map(|wc: WindowChunk| async move {
            match wc.values {
                ChunkValues::Single { vis, weight } => {
                    let b = ds.write_chunk(wc.window, tc, vis, weight, wc.flag).await?;
                    give_back(pool, b);
                }
                ChunkValues::Double { vis, weight } => {
                    let b = ds.write_chunk(wc.window, tc, vis, weight, wc.flag).await?;
                    give_back(pool, b);
                }
            }
            Ok::<(), FormatError>(())
        })
        .buffer_unordered(WINDOW_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok((ws, samples, flagged))
}

/// Gives the buffers a chunk write returned to `pool`.
fn give_back<V: PoolElement, W: PoolElement>(pool: &ChunkPool, b: ChunkBuffers<V, W>) {
    b.vis.into_iter().for_each(|v| pool.give(v));
    b.weight.into_iter().for_each(|v| pool.give(v));
    b.flag.into_iter().for_each(|v| pool.give(v));
}

/// The keys of an import manifest that say what was imported (not how long it took or
/// what it found): a re-run with the same identity resumes or finds nothing to do.
const IDENTITY_KEYS: [&str; 9] = [
    "measurement_set",
    "column",
    "selection",
    "weights",
    "rows",
    "grid",
    "channels",
    "windows",
    "samples",
];

/// What an import is: the dataset's metadata with `extra` reduced to the identity of
/// its `imported_from` manifest. Two imports with equal identities write the same bytes.
pub fn import_identity(meta: &VisDatasetMeta) -> Value {
    let mut v = serde_json::to_value(meta).unwrap_or(Value::Null);
    let manifest = meta.extra.get("imported_from");
    let ident: serde_json::Map<String, Value> = IDENTITY_KEYS
        .iter()
        .filter_map(|&k| Some((k.to_owned(), manifest?.get(k)?.clone())))
        .collect();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "extra".into(),
            serde_json::json!({"imported_from": Value::Object(ident)}),
        );
    }
    v
}

fn pending_key(prefix: &Path) -> Path {
    prefix.clone().join(PENDING_IMPORT_KEY)
}

/// The identity recorded by an import in progress at `prefix`, if any.
pub async fn read_pending(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<Option<Value>, FormatError> {
    let key = pending_key(prefix);
    let err = |message: String| FormatError::Zarr {
        key: key.to_string(),
        message,
    };
    match store.get(&key).await {
        Ok(r) => {
            let bytes = r
                .bytes()
                .await
                .map_err(|e| err(format!("cannot read: {e}")))?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| err(format!("not an import record: {e}")))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(err(format!("cannot read: {e}"))),
    }
}

/// Records `identity` ([`import_identity`]) as the import in progress at `prefix`.
pub async fn write_pending(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    identity: &Value,
) -> Result<(), FormatError> {
    let key = pending_key(prefix);
    let bytes = serde_json::to_vec(identity).map_err(|e| FormatError::Zarr {
        key: key.to_string(),
        message: format!("cannot encode: {e}"),
    })?;
    store
        .put(&key, bytes.into())
        .await
        .map(|_| ())
        .map_err(|e| FormatError::Zarr {
            key: key.to_string(),
            message: format!("cannot write: {e}"),
        })
}

/// Removes the record of the import at `prefix` (once the dataset is committed).
pub async fn remove_pending(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<(), FormatError> {
    let key = pending_key(prefix);
    match store.delete(&key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(FormatError::Zarr {
            key: key.to_string(),
            message: format!("cannot delete: {e}"),
        }),
    }
}

#[cfg(all(test, feature = "ms"))]
mod tests {
    use super::*;
    use crate::formats::zarr_vis::create_dataset;
    use crate::plan::ms::{dataset_meta, uvw_tb3};

    #[tokio::test]
    async fn writing_other_windows_than_prefetched_is_refused() {
        // The reader is sent every window of the fixture (windows of 2 channels), then
        // asked to write only the first: the passes differ, which is an error naming the
        // MS, and nothing is written.
        let ms =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/ms/low-linear.ms");
        let mut reader = MsReader::spawn(ms.clone(), Selection::default(), Some(2));
        let MsSource { meta, plan } = reader.source().await.unwrap();
        assert!(plan.windows.len() >= 2, "{}", plan.windows.len());
        let m = dataset_meta(&meta, &plan, VisDtype::Complex64, None).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let prefix = Path::from("ds");
        let ds = create_dataset(store.clone(), &prefix, &m, Some(uvw_tb3(&plan).view()))
            .await
            .unwrap();
        let all: Vec<usize> = (0..plan.windows.len()).collect();
        let budget_bytes = 64 << 20;
        reader.prefetch(&m, &plan, &all, budget_bytes);
        let opts = WriteOptions {
            budget_bytes,
            resume: false,
        };
        let mut progressed = 0;
        let err = reader
            .write(&ds, &plan, &all[..1], opts, &mut |_| progressed += 1)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, MsImportError::PrefetchMismatch { path } if *path == ms),
            "{err:?}"
        );
        assert!(err.to_string().contains("low-linear.ms"), "{err}");
        assert_eq!(progressed, 0);
        for tc in 0..m.n_time_chunks() {
            assert!(!ds.chunk_stored(0, tc).await.unwrap(), "chunk {tc} written");
        }
    }
}
