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
/// The object appears only when [`PartialUpload::finish`] completes.
pub struct PartialUpload {
    key_url: String,
    upload: Box<dyn MultipartUpload>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for PartialUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialUpload")
            .field("key_url", &self.key_url)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl TaskEnv {
    /// Starts the partial `key` holding images of these names and shapes (in order).
    pub async fn begin_partial(
        &self,
        key: &str,
        shapes: &[(String, [usize; 2])],
        scalars: &BTreeMap<String, f64>,
        neq: Option<&NormalEquations>,
        m: &mut TaskManifest,
    ) -> Result<PartialUpload, TaskError> {
        let key_url = self.out.key_url(key);
        let rel = ObjectPath::parse(key)
            .map_err(|e| TaskError::Permanent(format!("{key_url}: bad key: {e}")))?;
        let path: ObjectPath = self.out.prefix().parts().chain(rel.parts()).collect();
        let upload = self
            .out
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
        })
    }
}

impl PartialUpload {
    /// Appends the next image (as named at [`TaskEnv::begin_partial`]).
    pub async fn write(
        &mut self,
        img: PartImage<'_>,
        m: &mut TaskManifest,
    ) -> Result<(), TaskError> {
        let t = Instant::now();
        let images = [img];
        for chunk in PartEncoder::body(&images, MULTIPART_PART_SIZE) {
            m.bytes_out += chunk.len() as u64;
            self.buf.extend_from_slice(&chunk);
            if self.buf.len() >= MULTIPART_PART_SIZE {
                let rest = self.buf.split_off(MULTIPART_PART_SIZE);
                let part = std::mem::replace(&mut self.buf, rest);
                self.put(part).await?;
            }
        }
        m.write_seconds += t.elapsed().as_secs_f64();
        Ok(())
    }

    async fn put(&mut self, part: Vec<u8>) -> Result<(), TaskError> {
        match self.upload.put_part(PutPayload::from(part)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.upload.abort().await;
                Err(StorageError::from_object_store(self.key_url.clone(), e).into())
            }
        }
    }

    /// Sends what is left and completes the object.
    pub async fn finish(mut self, m: &mut TaskManifest) -> Result<(), TaskError> {
        let t = Instant::now();
        let last = std::mem::take(&mut self.buf);
        self.put(last).await?;
        if let Err(e) = self.upload.complete().await {
            let _ = self.upload.abort().await;
            return Err(StorageError::from_object_store(self.key_url.clone(), e).into());
        }
        m.write_seconds += t.elapsed().as_secs_f64();
        Ok(())
    }
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
