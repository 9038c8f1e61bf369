//! What every task needs: the plan, the output and visibility stores, and helpers to read
//! and write partials and to rebuild the image geometry and gridder options from the plan.

use std::collections::BTreeMap;
use std::time::Instant;

use aperture_imaging::calib::NormalEquations;
use aperture_imaging::gridder::{GridderOptions, Precision};
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::weighting::{WeightingScheme, WeightingSpec};
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use tracing::Instrument;

use super::partial::{PartEncoder, PartImage, encode_header};
use super::{Partial, TaskError, TaskManifest};
use crate::formats::zarr_vis::{VisDataset, open_dataset};
use crate::plan::{PLAN_KEY, Plan};
use crate::spec::{CleanAlgorithm, PipelineKind, PrecisionSpec, WeightingKind};
use crate::storage::{MULTIPART_PART_SIZE, StorageError, Store};

/// A task's world.
#[derive(Debug, Clone)]
pub struct TaskEnv {
    pub plan: Plan,
    /// The job's output location.
    pub out: Store,
    /// The visibility dataset's location.
    pub vis: Store,
}

/// Reads `plan.json` from the job output at `url` (or the plan file's own URL).
pub async fn load_plan(url: &str) -> Result<TaskEnv, TaskError> {
    let trimmed = url.trim_end_matches('/');
    let out_url = trimmed
        .strip_suffix(&format!("/{PLAN_KEY}"))
        .unwrap_or(trimmed);
    let out = Store::from_url(out_url)?;
    let plan: Plan = out.get_json(PLAN_KEY).await?;
    let vis = Store::from_url(&plan.visibilities)?;
    Ok(TaskEnv { plan, out, vis })
}

impl TaskEnv {
    pub fn geometry(&self) -> Result<ImageGeometry, TaskError> {
        let im = &self.plan.image;
        ImageGeometry::square(
            im.npix as usize,
            im.cell_rad,
            im.phase_centre,
            im.ref_freq_hz,
            im.bandwidth_hz,
        )
        .map_err(|e| TaskError::Permanent(format!("plan image geometry: {e}")))
    }

    /// Threads this task may use: `spec.parallelism.threadsPerTask` (0 = all cores), which
    /// the local executor raises for a stage with fewer tasks than free worker slots (the
    /// assignment's `threads`, written into this process's copy of the plan).
    pub fn threads(&self) -> usize {
        match self.plan.spec.parallelism.threads_per_task {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }

    pub fn gridder(&self) -> GridderOptions {
        let spec = &self.plan.spec;
        GridderOptions {
            epsilon: spec.image.epsilon,
            precision: match spec.image.precision {
                PrecisionSpec::Single => Precision::F32,
                PrecisionSpec::Double => Precision::F64,
            },
            wstacking: true,
            threads: spec.parallelism.threads_per_task as usize,
        }
    }

    pub fn weighting(&self) -> WeightingSpec {
        let w = &self.plan.spec.image.weighting;
        let scheme = match w.kind {
            WeightingKind::Natural => WeightingScheme::Natural,
            WeightingKind::Uniform => WeightingScheme::Uniform,
            WeightingKind::Robust => WeightingScheme::Briggs { robust: w.robust },
        };
        let spec = WeightingSpec::new(scheme);
        match self.plan.spec.image.taper_arcsec {
            Some(a) => spec.with_taper((a / 3600.0).to_radians()),
            None => spec,
        }
    }

    /// Taylor terms carried through the cycles (1 unless msmfs; 1 for the invert
    /// pipeline, whose products are the dirty image and PSF of moment 0).
    pub fn nmoment(&self) -> usize {
        let d = &self.plan.spec.deconvolution;
        if d.algorithm == CleanAlgorithm::Msmfs && self.plan.spec.pipeline != PipelineKind::Invert {
            d.nmoment as usize
        } else {
            1
        }
    }

    pub async fn dataset(&self) -> Result<VisDataset, TaskError> {
        Ok(open_dataset(self.vis.object_store(), self.vis.prefix()).await?)
    }

    /// Reads the partial at `key`: a large one image by image ([`Partial::read_ranged`]),
    /// so its bytes and its images are never held whole together.
    pub async fn read_partial(
        &self,
        key: &str,
        m: &mut TaskManifest,
    ) -> Result<Partial, TaskError> {
        let t = Instant::now();
        let span = tracing::info_span!("read", key);
        let url = self.out.key_url(key);
        let p = match self.out.head(key).instrument(span.clone()).await? {
            Some(len) if len > MULTIPART_PART_SIZE as u64 => {
                m.bytes_in += len;
                let read = |r: std::ops::Range<u64>| async move {
                    Ok::<_, TaskError>(self.out.get_range(key, r).await?)
                };
                Partial::read_ranged(len, &url, read)
                    .instrument(span)
                    .await?
            }
            _ => {
                let bytes = self.out.get(key).instrument(span).await?;
                m.bytes_in += bytes.len() as u64;
                Partial::from_bytes(&bytes, &url)?
            }
        };
        m.read_seconds += t.elapsed().as_secs_f64();
        Ok(p)
    }

    /// Σ scale · image over the named images of the partial at `key`
    /// ([`Partial::read_sum_ranged`]): one image is held, not the terms.
    pub async fn read_partial_sum(
        &self,
        key: &str,
        terms: &[(String, f64)],
        m: &mut TaskManifest,
    ) -> Result<ndarray::Array2<f64>, TaskError> {
        let t = Instant::now();
        let span = tracing::info_span!("read", key);
        let url = self.out.key_url(key);
        let len = self
            .out
            .head(key)
            .instrument(span.clone())
            .await?
            .ok_or_else(|| TaskError::corrupt(&url, "is missing".to_string()))?;
        let read = |r: std::ops::Range<u64>| async move {
            Ok::<_, TaskError>(self.out.get_range(key, r).await?)
        };
        let img = Partial::read_sum_ranged(len, &url, terms, super::partial::READ_PIECE, read)
            .instrument(span)
            .await?;
        m.bytes_in += len;
        m.read_seconds += t.elapsed().as_secs_f64();
        Ok(img)
    }

    pub async fn write_partial(
        &self,
        key: &str,
        p: &Partial,
        m: &mut TaskManifest,
    ) -> Result<(), TaskError> {
        self.write_images(key, &p.images(), &p.scalars, p.neq.as_ref(), m)
            .await
    }

    /// Writes a partial of `images` (each scaled as it is written) with `scalars` and
    /// `neq`, streamed in [`MULTIPART_PART_SIZE`] parts: no byte copy of the images is
    /// ever whole in memory.
    pub async fn write_images(
        &self,
        key: &str,
        images: &[PartImage<'_>],
        scalars: &BTreeMap<String, f64>,
        neq: Option<&NormalEquations>,
        m: &mut TaskManifest,
    ) -> Result<(), TaskError> {
        let t = Instant::now();
        let enc = PartEncoder::new(images, scalars, neq, MULTIPART_PART_SIZE);
        let len = enc.total_len();
        m.bytes_out += len as u64;
        let span = tracing::info_span!("write", key, bytes = len as i64);
        self.out
            .put_parts(key, enc.map(Bytes::from))
            .instrument(span)
            .await?;
        m.write_seconds += t.elapsed().as_secs_f64();
        Ok(())
    }
}

/// A partial written while it is made: its header first, then each image as soon as it
/// exists, in multipart parts, so an image can be freed before the next is computed.
/// [`PartialUpload::flush`] sends what is buffered, so nothing is held while the next
/// image is made. The object appears only when [`PartialUpload::finish`] completes.
pub struct PartialUpload {
    key_url: String,
    upload: Box<dyn MultipartUpload>,
    buf: Vec<u8>,
    /// Bytes of each part sent so far.
    part_sizes: Vec<usize>,
}

/// The smallest part S3 accepts, except the last of an upload ("Amazon S3 multipart
/// upload limits", docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Bytes encoded at a time before they are appended to the part being filled.
const ENCODE_CHUNK: usize = 1 << 20;

impl std::fmt::Debug for PartialUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialUpload")
            .field("key_url", &self.key_url)
            .field("buffered", &self.buf.len())
            .field("part_sizes", &self.part_sizes)
            .finish_non_exhaustive()
    }
}

impl PartialUpload {
    /// Starts the partial `key` of `store` (a task's output store) holding images of
    /// these names and shapes (in order).
    pub async fn begin(
        store: &Store,
        key: &str,
        shapes: &[(String, [usize; 2])],
        scalars: &BTreeMap<String, f64>,
        neq: Option<&NormalEquations>,
        m: &mut TaskManifest,
    ) -> Result<PartialUpload, TaskError> {
        let key_url = store.key_url(key);
        let rel = ObjectPath::parse(key)
            .map_err(|e| TaskError::Permanent(format!("{key_url}: bad key: {e}")))?;
        let path: ObjectPath = store.prefix().parts().chain(rel.parts()).collect();
        let upload = store
            .object_store()
            .put_multipart(&path)
            .await
            .map_err(|e| StorageError::from_object_store(key_url.clone(), e))?;
        let buf = encode_header(shapes, scalars, neq);
        m.bytes_out += buf.len() as u64;
        Ok(PartialUpload {
            key_url,
            upload,
            buf,
            part_sizes: Vec::new(),
        })
    }

    /// Appends the next image (as named at [`PartialUpload::begin`]). Parts of
    /// [`MULTIPART_PART_SIZE`] are sent once at least [`MIN_PART_SIZE`] more is buffered
    /// behind them, so that [`PartialUpload::flush`] can always send what is left as a
    /// part S3 accepts.
    pub async fn write(
        &mut self,
        img: PartImage<'_>,
        m: &mut TaskManifest,
    ) -> Result<(), TaskError> {
        let t = Instant::now();
        let images = [img];
        for chunk in PartEncoder::body(&images, ENCODE_CHUNK) {
            m.bytes_out += chunk.len() as u64;
            self.buf.extend_from_slice(&chunk);
            if self.buf.len() >= MULTIPART_PART_SIZE + MIN_PART_SIZE {
                let part = self.buf[..MULTIPART_PART_SIZE].to_vec();
                self.buf.drain(..MULTIPART_PART_SIZE);
                self.put(part).await?;
            }
        }
        m.write_seconds += t.elapsed().as_secs_f64();
        Ok(())
    }

    /// Sends everything buffered when it makes a part S3 accepts (at least
    /// [`MIN_PART_SIZE`], which always holds after an image of that size or more) and
    /// frees the buffer, so nothing of the images written so far is held; a smaller rest
    /// stays buffered for the next image.
    pub async fn flush(&mut self, m: &mut TaskManifest) -> Result<(), TaskError> {
        if self.buf.len() < MIN_PART_SIZE {
            self.buf.shrink_to_fit();
            return Ok(());
        }
        let t = Instant::now();
        let part = std::mem::take(&mut self.buf);
        self.put(part).await?;
        m.write_seconds += t.elapsed().as_secs_f64();
        Ok(())
    }

    async fn put(&mut self, part: Vec<u8>) -> Result<(), TaskError> {
        let len = part.len();
        match self.upload.put_part(PutPayload::from(part)).await {
            Ok(()) => {
                self.part_sizes.push(len);
                Ok(())
            }
            Err(e) => {
                let _ = self.upload.abort().await;
                Err(StorageError::from_object_store(self.key_url.clone(), e).into())
            }
        }
    }

    /// Sends what is left and completes the object; returns the bytes of each part sent.
    pub async fn finish(mut self, m: &mut TaskManifest) -> Result<Vec<usize>, TaskError> {
        let t = Instant::now();
        let last = std::mem::take(&mut self.buf);
        // An empty last part only when there is no other: S3 needs at least one.
        if !last.is_empty() || self.part_sizes.is_empty() {
            self.put(last).await?;
        }
        if let Err(e) = self.upload.complete().await {
            let _ = self.upload.abort().await;
            return Err(StorageError::from_object_store(self.key_url.clone(), e).into());
        }
        m.write_seconds += t.elapsed().as_secs_f64();
        Ok(std::mem::take(&mut self.part_sizes))
    }
}

/// Hands the allocator's free memory back to the system (glibc's malloc_trim(3), which
/// also releases free pages inside its heaps), so that what earlier phases freed
/// (decoded chunks, upload parts, the previous gridder call's buffers) is not still
/// resident beside the next grid. Called before each gridder call of a map task: up to
/// 14 MiB at 2048² (issue #4's memory bound).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free allocator memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes glibc serve every allocation of at least 4 MiB with its own mapping, returned
/// to the system when freed (mallopt(3) `M_MMAP_THRESHOLD`; fixing it also stops glibc
/// from raising it up to 32 MiB after such blocks are freed, which sends later
/// window-sized arrays, read pieces and upload parts into heaps that stay resident).
/// Smaller blocks (the FFT's per-task buffers) stay in the heap, reused without page
/// faults.
pub fn large_blocks_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; M_MMAP_THRESHOLD is a valid option.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// The environment variable that turns on [`mem_mark`].
pub const MEM_TRACE_ENV: &str = "APERTURE_MEM_TRACE";

/// With `APERTURE_MEM_TRACE` set, prints to stderr the process's resident memory
/// (`VmRSS`), its peak so far (`VmHWM`, proc(5)) and glibc's live heap bytes (in-use arena
/// bytes plus mmapped blocks, mallinfo2(3)) at the named phase of a task: what is alive
/// at a worker's peak (issue #4's memory bound). Nothing otherwise.
pub fn mem_mark(phase: &str) {
    if std::env::var_os(MEM_TRACE_ENV).is_none() {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let mib = 1024.0 * 1024.0;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let live = {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let mi = unsafe { libc::mallinfo2() };
        (mi.uordblks + mi.hblkhd) as f64 / mib
    };
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let live = f64::NAN;
    eprintln!(
        "mem {phase}: rss {:.1} MiB (anon {:.1}, file {:.1}), hwm {:.1} MiB, heap live {live:.1} MiB",
        kib("VmRSS:") / 1024.0,
        kib("RssAnon:") / 1024.0,
        kib("RssFile:") / 1024.0,
        kib("VmHWM:") / 1024.0,
    );
}

/// A kernel error inside a task: permanent, naming the task.
pub fn kernel(what: &str, e: impl std::fmt::Display) -> TaskError {
    TaskError::Permanent(format!("{what}: {e}"))
}

/// Reads window `w` of `ds` inside a `read` span, counting its time and bytes in `m`
/// (the byte estimate: complex64 visibility, f32 weight and flag per sample).
pub async fn read_window(
    ds: &VisDataset,
    w: u32,
    m: &mut TaskManifest,
) -> Result<aperture_imaging::vis::VisBlock, TaskError> {
    let t = Instant::now();
    let block = ds
        .read_window(w as usize)
        .instrument(tracing::info_span!("read", window = i64::from(w)))
        .await?;
    m.read_seconds += t.elapsed().as_secs_f64();
    m.bytes_in += (block.n_vis() * 13) as u64;
    Ok(block)
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::plan::{Stage, TaskKind};

    fn manifest() -> TaskManifest {
        let st = Stage {
            name: "invert".into(),
            kind: TaskKind::Invert,
            tasks: 1,
            deps: Vec::new(),
            cycle: 0,
            tree: None,
            reduce: None,
            skippable: false,
            est_task_seconds: 1.0,
        };
        TaskManifest::start(&st, 0)
    }

    /// A partial written image by image with flushes in between reads back as the
    /// materialised partial; every part but the last is one S3 accepts, and a flush
    /// leaves less than a part buffered (nothing after an image of a part or more).
    #[test]
    fn flushed_upload_equals_the_materialised_partial() {
        let store = Store::from_url("memory://flush-test").expect("memory store");
        // 11.4 MiB (flushed whole), 0.2 MiB (too small to flush: kept), 15.3 MiB.
        let sizes = [(1000usize, 1500usize), (100, 250), (2000, 1000)];
        let imgs: Vec<Array2<f64>> = sizes
            .iter()
            .enumerate()
            .map(|(k, &(ny, nx))| Array2::from_shape_fn((ny, nx), |(y, x)| (y * nx + x + k) as f64))
            .collect();
        let names = ["d0", "d1", "p0"];
        let scales = [1.0, 0.25, -2.0];
        let mut want = Partial::default();
        for ((n, a), s) in names.iter().zip(&imgs).zip(scales) {
            want.arrays.insert(n.to_string(), a.mapv(|v| v * s));
        }
        want.scalars.insert("sumwt".into(), 3.5);
        let shapes: Vec<(String, [usize; 2])> = names
            .iter()
            .zip(&sizes)
            .map(|(n, &(ny, nx))| (n.to_string(), [ny, nx]))
            .collect();
        let mut m = manifest();
        let parts = futures::executor::block_on(async {
            let mut up =
                PartialUpload::begin(&store, "p.bin", &shapes, &want.scalars, None, &mut m).await?;
            for ((name, data), scale) in names.iter().zip(&imgs).zip(scales) {
                up.write(PartImage { name, data, scale }, &mut m).await?;
                up.flush(&mut m).await?;
                // An image of a part or more leaves nothing behind; a smaller rest
                // waits for the next image.
                let held = up.buf.len();
                assert!(held < MIN_PART_SIZE, "{name}: {held} bytes held");
                if data.len() * 8 >= MIN_PART_SIZE {
                    assert_eq!(held, 0, "{name}");
                }
            }
            up.finish(&mut m).await
        })
        .expect("upload");
        let (last, rest) = parts.split_last().expect("parts");
        assert!(rest.iter().all(|&p| p >= MIN_PART_SIZE), "{parts:?}");
        assert!(*last > 0, "{parts:?}");
        assert!(parts.len() >= 3, "{parts:?}");
        let bytes = futures::executor::block_on(store.get("p.bin")).expect("object");
        assert_eq!(bytes.len(), want.to_bytes().len());
        assert_eq!(Partial::from_bytes(&bytes, "p.bin").expect("parses"), want);
    }
}
