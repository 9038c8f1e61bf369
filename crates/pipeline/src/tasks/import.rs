//! The import stage of a job with `spec.input.measurementSet` (docs/measurement-sets.md):
//!
//! 1. the planner ([`create_layout`]) creates the Zarr arrays, coordinates and `UVW` of
//!    `<output>/vis.zarr` once, without the group metadata, and records the dataset's
//!    metadata and the import manifest in `import/dataset.json`;
//! 2. each `import` task re-opens the MS and streams its shard's windows into the
//!    dataset time chunk by time chunk, as `aperture import ms` does
//!    ([`crate::formats::ms_import`]); windows are independent objects, so tasks run in
//!    any order, and a re-run skips what an earlier attempt stored;
//! 3. the `import-commit` task checks that every window is complete and writes the group
//!    metadata with the manifest (flagged counts summed from the import tasks' result
//!    manifests): only then is there a dataset, so no reader sees half of one.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use super::{TaskEnv, TaskError, TaskManifest};
use crate::formats::ms_import::{MsImportError, MsReader, WriteOptions};
use crate::formats::zarr_vis::{VisDatasetMeta, create_arrays, delete_dataset, open_arrays};
use crate::plan::ms::{MsSource, READ_BUFFER_BYTES};
use crate::plan::{IMPORT_META_KEY, IMPORT_STAGE, Plan, Stage};
use crate::spec::MeasurementSetSpec;
use crate::storage::Store;
use crate::{FormatError, plan::PlanError};

/// `import/dataset.json`: what the planner decided the dataset is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// The dataset's metadata (as committed, less the manifest).
    pub meta: VisDatasetMeta,
    /// The import manifest; the commit fills in the flagged counts and seconds.
    pub imported_from: Value,
}

/// Creates the layout of the dataset `src` imports into at `vis` (removing the remains
/// of an earlier, unplanned attempt first) and writes [`ImportRecord`] to `out`.
pub async fn create_layout(out: &Store, vis: &Store, src: &MsSource) -> Result<(), PlanError> {
    let at = |e: FormatError| PlanError::input(crate::plan::ms::FIELD, e.to_string());
    let meta = src.dataset_meta().map_err(at)?;
    delete_dataset(vis.object_store(), vis.prefix())
        .await
        .map_err(at)?;
    let uvw = src.uvw_tb3();
    create_arrays(
        vis.object_store(),
        vis.prefix(),
        meta.clone(),
        Some(uvw.view()),
    )
    .await
    .map_err(at)?;
    let record = ImportRecord {
        meta,
        imported_from: src.manifest(0, 0.0),
    };
    out.put_json(IMPORT_META_KEY, &record)
        .await
        .map_err(|e| PlanError::input(crate::plan::ms::FIELD, e.to_string()))
}

fn spec(env: &TaskEnv) -> Result<MeasurementSetSpec, TaskError> {
    env.plan.spec.input.measurement_set.clone().ok_or_else(|| {
        TaskError::Permanent("import stage without spec.input.measurementSet".into())
    })
}

async fn record(env: &TaskEnv) -> Result<ImportRecord, TaskError> {
    Ok(env.out.get_json(IMPORT_META_KEY).await?)
}

/// `e` as a task error: the MeasurementSet's faults are permanent, the store's as
/// [`FormatError`]s are.
fn task_error(e: MsImportError) -> TaskError {
    match e {
        MsImportError::Ms(e) => TaskError::Permanent(format!("{}: {e}", crate::plan::ms::FIELD)),
        MsImportError::Format(e) => e.into(),
        e @ (MsImportError::ReaderStopped { .. } | MsImportError::PrefetchMismatch { .. }) => {
            TaskError::Permanent(e.to_string())
        }
    }
}

/// An `import` task: reads shard `index`'s windows from the MS and writes them, time
/// chunk by time chunk ([`MsReader`]); a re-run skips the windows and time chunks an
/// earlier attempt stored.
pub async fn run(
    env: &TaskEnv,
    _st: &Stage,
    index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let spec = spec(env)?;
    let shard = *env
        .plan
        .shards
        .get(index as usize)
        .ok_or_else(|| TaskError::Permanent(format!("the plan has no shard {index}")))?;
    let windows: Vec<usize> =
        (shard.first_window as usize..(shard.first_window + shard.windows) as usize).collect();
    let rec = record(env).await?;
    let sel = spec
        .selection()
        .map_err(|e| TaskError::Permanent(e.to_string()))?;
    let mut reader = MsReader::spawn(
        PathBuf::from(&spec.path),
        sel,
        spec.channels_per_window.map(|c| c as usize),
    );
    let t = Instant::now();
    let src = reader
        .source()
        .instrument(tracing::info_span!("read"))
        .await
        .map_err(task_error)?;
    m.read_seconds += t.elapsed().as_secs_f64();
    let now = src.dataset_meta()?;
    if now != rec.meta {
        return Err(TaskError::Permanent(format!(
            "{}: {}: the MeasurementSet (or its selection) no longer gives the dataset \
             planned in {IMPORT_META_KEY}; re-plan the job with --force",
            crate::plan::ms::FIELD,
            src.meta.path.display()
        )));
    }
    let ds = open_arrays(env.vis.object_store(), env.vis.prefix(), rec.meta).await?;
    let opts = WriteOptions {
        budget_bytes: READ_BUFFER_BYTES,
        resume: true,
    };
    let written = reader
        .write(&ds, &src.plan, &windows, opts, &mut |_| {})
        .instrument(tracing::info_span!("write", windows = windows.len() as i64))
        .await
        .map_err(task_error)?;
    drop(reader);
    m.read_seconds += written.read_wait_s;
    m.write_seconds += written.write_wait_s;
    m.windows += windows.len() as u32;
    m.visibilities += written.samples;
    m.bytes_out += written.samples * 13;
    m.result
        .insert("flagged_samples".into(), json!(written.flagged));
    m.result.insert(
        "chunks".into(),
        json!({"written": written.chunks_written, "skipped": written.chunks_skipped,
               "windows_skipped": written.windows_skipped, "passes": written.passes}),
    );
    Ok(())
}

/// The `import-commit` task: every window complete, the group metadata written with the
/// import manifest.
pub async fn run_commit(
    env: &TaskEnv,
    _st: &Stage,
    _index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    spec(env)?;
    let rec = record(env).await?;
    let import = env
        .plan
        .stage(IMPORT_STAGE)
        .ok_or_else(|| TaskError::Permanent(format!("the plan has no stage {IMPORT_STAGE:?}")))?;
    let (mut flagged, mut seconds) = (0u64, 0.0f64);
    for i in 0..import.tasks {
        let key = Plan::manifest_key(IMPORT_STAGE, i);
        let tm: TaskManifest = env.out.get_json(&key).await?;
        flagged += tm
            .result
            .get("flagged_samples")
            .and_then(Value::as_u64)
            .ok_or_else(|| TaskError::corrupt(&key, "no flagged_samples in the result"))?;
        seconds += tm.seconds;
    }
    let mut ds = open_arrays(env.vis.object_store(), env.vis.prefix(), rec.meta).await?;
    for w in 0..ds.nwindows() {
        if !ds.window_complete(w).await? {
            return Err(TaskError::Permanent(format!(
                "{}: window {w} was not written by the import stage",
                ds.key("")
            )));
        }
    }
    let mut manifest = rec.imported_from;
    let samples = manifest["samples"].as_u64().unwrap_or(0);
    manifest["flagged_samples"] = json!(flagged);
    manifest["flagged_fraction"] = json!(if samples > 0 {
        flagged as f64 / samples as f64
    } else {
        0.0
    });
    manifest["seconds"] = json!(seconds);
    ds.set_extra("imported_from", manifest);
    let t = Instant::now();
    ds.commit().await?;
    m.write_seconds += t.elapsed().as_secs_f64();
    m.windows = ds.nwindows() as u32;
    Ok(())
}
