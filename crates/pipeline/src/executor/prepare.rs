//! Preparing a job: resolve the output, gather facts about the input, plan, and write
//! `plan.json` — refusing a different spec on an existing output unless forced.

use thiserror::Error;

use super::survey::SurveyResult;
use crate::formats::zarr_vis::open_dataset;
use crate::plan::ms::MsSource;
use crate::plan::{InputFacts, PLAN_KEY, Plan, PlanError, PlanOptions, VIS_KEY, make_plan};
use crate::spec::ImagingJob;
use crate::storage::{StorageError, Store, StoreOptions};

/// Why a job cannot start.
#[derive(Debug, Error)]
pub enum PrepareError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The input dataset cannot be opened or described.
    #[error("spec.input.visibilities: {0}")]
    Input(String),
    /// The worker's survey of `spec.input.measurementSet` failed or does not fit the job.
    #[error("spec.input.measurementSet: {0}")]
    Survey(String),
    /// The output holds a different job.
    #[error(
        "{output} already holds job {job:?} with a different spec (plan digest {existing:.12} ≠ {new:.12}); \
         use --force to replace it, or choose another output"
    )]
    DifferentSpec {
        output: String,
        job: String,
        existing: String,
        new: String,
    },
}

/// Facts about the input of `job` (S3 settings from the environment).
pub async fn input_facts(job: &ImagingJob) -> Result<InputFacts, PrepareError> {
    input_facts_with(job, &StoreOptions::default()).await
}

/// [`input_facts`] with explicit object-store options (the operator's, from the job's
/// credentials Secret).
pub async fn input_facts_with(
    job: &ImagingJob,
    options: &StoreOptions,
) -> Result<InputFacts, PrepareError> {
    if let Some(sim) = &job.spec.input.simulate {
        return Ok(InputFacts::from_simulation(sim)?);
    }
    if let Some(ms) = &job.spec.input.measurement_set {
        return Ok(MsSource::open_blocking(ms).await?.facts());
    }
    let url = job.spec.input.visibilities.clone().unwrap_or_default();
    let store = Store::from_url_with(&url, options)?;
    let ds = open_dataset(store.object_store(), store.prefix())
        .await
        .map_err(|e| PrepareError::Input(format!("{url}: {e}")))?;
    let meta = ds.meta().clone();
    if meta.windows.is_empty() || meta.nrows() == 0 {
        return Err(PrepareError::Input(format!("{url}: the dataset is empty")));
    }
    let first = ds
        .read_window(0)
        .await
        .map_err(|e| PrepareError::Input(format!("{url}: {e}")))?;
    let (mut uv, mut w) = (0.0f64, 0.0f64);
    for p in &first.uvw_r {
        uv = uv.max(p.uv_length());
        w = w.max(p.w.abs());
    }
    let freqs = meta.freq_c();
    let nant = meta
        .ant1
        .iter()
        .chain(&meta.ant2)
        .copied()
        .max()
        .unwrap_or(0)
        + 1;
    Ok(InputFacts {
        nwindows: meta.windows.len() as u32,
        channels_per_window: meta.nchan_window() as u32,
        ntimes: meta.ntime as u32,
        nbaselines: meta.nbaseline as u32,
        nantennas: nant,
        freq_min_hz: freqs.iter().copied().fold(f64::MAX, f64::min),
        freq_max_hz: freqs.iter().copied().fold(0.0, f64::max),
        max_uv_m: uv,
        max_w_m: w,
        phase_centre: meta.phase_centre,
        station_diameter_m: meta.station_diameter_m.unwrap_or(38.0),
    })
}

/// Plans `job` onto `output` and stores the plan. With an existing plan of the same
/// spec the stored plan is returned (a resume); a different spec is refused unless
/// `force`, which deletes the old job's tasks, cycles, products and diagnostics first.
pub async fn prepare(
    job: &ImagingJob,
    output: &str,
    force: bool,
) -> Result<(Plan, Store), PrepareError> {
    prepare_with(job, output, force, &StoreOptions::default()).await
}

/// [`prepare`] with explicit object-store options for the output and the input. A
/// MeasurementSet input is opened here (so this process must be able to read it); the
/// operator, which cannot, plans from a worker's survey instead
/// ([`prepare_from_survey`]).
pub async fn prepare_with(
    job: &ImagingJob,
    output: &str,
    force: bool,
    options: &StoreOptions,
) -> Result<(Plan, Store), PrepareError> {
    let out = Store::from_url_with(output, options)?;
    if let Some(existing) = existing_plan(job, &out, force).await? {
        return Ok((existing, out));
    }
    // A MeasurementSet is opened once: its facts plan the job, and the dataset's layout
    // is created before plan.json is written (a plan present = a layout present).
    let ms = match &job.spec.input.measurement_set {
        Some(m) => Some(MsSource::open_blocking(m).await?),
        None => None,
    };
    let facts = match &ms {
        Some(src) => src.facts(),
        None => input_facts_with(job, options).await?,
    };
    let plan = plan_from_facts(job, &out, &facts)?;
    if let Some(src) = ms {
        create_ms_layout(&out, &plan.visibilities, src, options).await?;
    }
    out.put_json(PLAN_KEY, &plan).await?;
    Ok((plan, out))
}

/// Plans a job whose `spec.input.measurementSet` a worker has surveyed (the operator's
/// path: `survey` is `import/survey.json`, written by [`super::survey`] after it created
/// the dataset's layout and `import/dataset.json`, exactly as [`prepare_with`] does). An
/// existing plan of the same spec is returned (a resume); a different one is refused.
pub async fn prepare_from_survey(
    job: &ImagingJob,
    output: &str,
    survey: &SurveyResult,
    options: &StoreOptions,
) -> Result<(Plan, Store), PrepareError> {
    let out = Store::from_url_with(output, options)?;
    if let Some(existing) = existing_plan(job, &out, false).await? {
        return Ok((existing, out));
    }
    let facts = survey.facts_for(job).map_err(PrepareError::Survey)?;
    let plan = plan_from_facts(job, &out, facts)?;
    out.put_json(PLAN_KEY, &plan).await?;
    Ok((plan, out))
}

/// The plan already stored at `out` when it was made from the same spec (a resume);
/// `None` when there is none. A plan of another spec is refused unless `force`, which
/// deletes the old job's tasks, cycles, products and diagnostics first.
async fn existing_plan(
    job: &ImagingJob,
    out: &Store,
    force: bool,
) -> Result<Option<Plan>, PrepareError> {
    if !out.exists(PLAN_KEY).await? {
        return Ok(None);
    }
    let name = job.metadata.name.clone().unwrap_or_else(|| "job".into());
    let new_digest = crate::plan::spec_digest(&job.spec);
    let existing: Plan = out.get_json(PLAN_KEY).await?;
    if existing.spec_digest == new_digest && existing.job == name {
        return Ok(Some(existing));
    }
    if !force {
        return Err(PrepareError::DifferentSpec {
            output: out.url().to_string(),
            job: existing.job,
            existing: existing.spec_digest,
            new: new_digest,
        });
    }
    for prefix in [
        "tasks/",
        "cycles/",
        "weights/",
        "products/",
        "diagnostics/",
        "vis.zarr/",
        "predicted.zarr/",
        "import/",
    ] {
        for key in out.list(prefix).await? {
            out.delete(&key).await?;
        }
    }
    out.delete(PLAN_KEY).await?;
    Ok(None)
}

/// The plan of `job` on `out` from the input's facts, with its trace key (the
/// ImagingJob's uid, else a fresh value).
fn plan_from_facts(
    job: &ImagingJob,
    out: &Store,
    facts: &InputFacts,
) -> Result<Plan, PrepareError> {
    let name = job.metadata.name.clone().unwrap_or_else(|| "job".into());
    let visibilities = match &job.spec.input.visibilities {
        Some(v) => v.clone(),
        None => out.child(VIS_KEY).url().to_string(),
    };
    let mut plan = make_plan(
        &job.spec,
        facts,
        &PlanOptions {
            job: name,
            output: out.url().to_string(),
            visibilities,
        },
    )?;
    plan.trace_key = match &job.metadata.uid {
        Some(uid) if !uid.is_empty() => uid.clone(),
        _ => format!(
            "{}:{}:{}",
            out.url(),
            plan.job,
            aperture_telemetry::now_unix_nano()
        ),
    };
    Ok(plan)
}

/// Creates the layout of the dataset `src` is imported into at `vis_url` and records
/// `import/dataset.json` in `out` ([`crate::tasks::import::create_layout`]); shared by
/// the local planner and the operator's survey worker.
pub(super) async fn create_ms_layout(
    out: &Store,
    vis_url: &str,
    src: MsSource,
    options: &StoreOptions,
) -> Result<(), PrepareError> {
    let vis = Store::from_url_with(vis_url, options)?;
    // On a blocking thread with its own `block_on`: the layout writer's stream
    // combinators otherwise defeat rustc's proof that the operator's reconcile future
    // is Send ("Send is not general enough"), and block_on needs no Send.
    let (o, rt) = (out.clone(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        rt.block_on(crate::tasks::import::create_layout(&o, &vis, &src))
    })
    .await
    .map_err(|e| {
        PlanError::input(
            crate::plan::ms::FIELD,
            format!("creating the dataset layout failed: {e}"),
        )
    })??;
    Ok(())
}
