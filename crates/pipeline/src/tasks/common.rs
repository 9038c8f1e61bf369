//! What every task needs: the plan, the output and visibility stores, and helpers to read
//! and write partials and to rebuild the image geometry and gridder options from the plan.

use std::time::Instant;

use aperture_imaging::gridder::{GridderOptions, Precision};
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::weighting::{WeightingScheme, WeightingSpec};
use bytes::Bytes;
use tracing::Instrument;

use super::{Partial, TaskError, TaskManifest};
use crate::formats::zarr_vis::{VisDataset, open_dataset};
use crate::plan::{PLAN_KEY, Plan};
use crate::spec::{CleanAlgorithm, PipelineKind, PrecisionSpec, WeightingKind};
use crate::storage::Store;

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

    pub async fn read_partial(
        &self,
        key: &str,
        m: &mut TaskManifest,
    ) -> Result<Partial, TaskError> {
        let t = Instant::now();
        let bytes = self
            .out
            .get(key)
            .instrument(tracing::info_span!("read", key))
            .await?;
        m.bytes_in += bytes.len() as u64;
        let p = Partial::from_bytes(&bytes, &self.out.key_url(key))?;
        m.read_seconds += t.elapsed().as_secs_f64();
        Ok(p)
    }

    pub async fn write_partial(
        &self,
        key: &str,
        p: &Partial,
        m: &mut TaskManifest,
    ) -> Result<(), TaskError> {
        let t = Instant::now();
        let bytes = Bytes::from(p.to_bytes());
        m.bytes_out += bytes.len() as u64;
        let span = tracing::info_span!("write", key, bytes = bytes.len() as i64);
        if bytes.len() > 64 << 20 {
            self.out.put_large(key, bytes).instrument(span).await?;
        } else {
            self.out.put(key, bytes).instrument(span).await?;
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
