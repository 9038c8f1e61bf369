//! The import stage of a job with `spec.input.measurementSet` (docs/measurement-sets.md):
//!
//! 1. the planner ([`create_layout`]) creates the Zarr arrays, coordinates and `UVW` of
//!    `<output>/vis.zarr` once, without the group metadata, and records the dataset's
//!    metadata and the import manifest in `import/dataset.json`;
//! 2. each `import` task re-opens the MS, reads its shard's windows (groups of windows of
//!    one spectral window per pass over the main table, as `aperture import ms` does) and
//!    writes them; windows are independent objects, so tasks run in any order and a
//!    re-run rewrites the same bytes;
//! 3. the `import-commit` task checks that every window is complete and writes the group
//!    metadata with the manifest (flagged counts summed from the import tasks' result
//!    manifests): only then is there a dataset, so no reader sees half of one.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use aperture_imaging::vis::VisBlock;
use aperture_ms::MeasurementSet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{TaskEnv, TaskError, TaskManifest};
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

/// What the reader thread sends.
enum Msg {
    Source(Box<MsSource>),
    Windows(Vec<(usize, VisBlock)>),
    Failed(TaskError),
}

/// The reader thread: opens the MS (casacore handles stay on this thread), resolves the
/// selection, sends it, then reads the groups of `windows` in order; stops when the
/// receiver is gone.
fn spawn_reader(
    spec: MeasurementSetSpec,
    windows: Range<usize>,
) -> (mpsc::Receiver<Msg>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1);
    let handle = std::thread::spawn(move || {
        let fail = |e: TaskError| {
            let _ = tx.blocking_send(Msg::Failed(e));
        };
        let perm = |e: aperture_ms::MsError| {
            TaskError::Permanent(format!("{}: {e}", crate::plan::ms::FIELD))
        };
        let sel = match spec.selection() {
            Ok(s) => s,
            Err(e) => return fail(TaskError::Permanent(e.to_string())),
        };
        let mut ms = match MeasurementSet::open(PathBuf::from(&spec.path)) {
            Ok(ms) => ms,
            Err(e) => return fail(perm(e)),
        };
        let plan = match ms.plan(&sel, spec.channels_per_window.map(|c| c as usize)) {
            Ok(p) => p,
            Err(e) => return fail(perm(e)),
        };
        let src = MsSource {
            meta: ms.meta().clone(),
            plan,
        };
        let groups = src.groups(windows, READ_BUFFER_BYTES);
        let plan = src.plan.clone();
        if tx.blocking_send(Msg::Source(Box::new(src))).is_err() {
            return;
        }
        for g in groups {
            match ms.read_windows(&plan, &g) {
                Ok(blocks) => {
                    if tx
                        .blocking_send(Msg::Windows(g.into_iter().zip(blocks).collect()))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => return fail(perm(e)),
            }
        }
    });
    (rx, handle)
}

/// An `import` task: reads shard `index`'s windows from the MS and writes them.
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
    let windows = shard.first_window as usize..(shard.first_window + shard.windows) as usize;
    let rec = record(env).await?;
    let (mut rx, reader) = spawn_reader(spec, windows.clone());
    let result = async {
        let t = Instant::now();
        let src = match rx.recv().instrument(tracing::info_span!("read")).await {
            Some(Msg::Source(s)) => s,
            Some(Msg::Failed(e)) => return Err(e),
            _ => {
                return Err(TaskError::Permanent(
                    "the MeasurementSet reader stopped".into(),
                ));
            }
        };
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
        let (mut flagged, mut done) = (0u64, 0usize);
        while done < windows.len() {
            let t = Instant::now();
            let blocks = match rx.recv().instrument(tracing::info_span!("read")).await {
                Some(Msg::Windows(b)) => b,
                Some(Msg::Failed(e)) => return Err(e),
                _ => {
                    return Err(TaskError::Permanent(
                        "the MeasurementSet reader stopped".into(),
                    ));
                }
            };
            m.read_seconds += t.elapsed().as_secs_f64();
            for (w, block) in &blocks {
                let t = Instant::now();
                flagged += block.flag_rc.iter().filter(|&&f| f).count() as u64;
                ds.write_window(*w, block)
                    .instrument(tracing::info_span!("write", window = *w as i64))
                    .await?;
                m.write_seconds += t.elapsed().as_secs_f64();
                m.windows += 1;
                m.visibilities += block.n_vis() as u64;
                m.bytes_out += (block.n_vis() * 13) as u64;
            }
            done += blocks.len();
        }
        m.result.insert("flagged_samples".into(), json!(flagged));
        Ok(())
    }
    .await;
    drop(rx);
    let _ = reader.join();
    result
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
