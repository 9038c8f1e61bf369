//! The work of each task kind (simulate, MeasurementSet import, weights, invert/residual map, reduce,
//! deconvolve, restore), streaming one frequency window at a time, and the result
//! manifest each task writes last.

mod common;
mod deconvolve;
mod gains;
pub mod import;
mod manifest;
mod map;
mod moment_pass;
mod moments;
mod partial;
mod predict;
mod reduce;
mod restore;
mod simulate;
mod spans;
mod weights;
mod worker;

pub use common::{TaskEnv, load_plan};
pub use gains::StoredGains;
pub use manifest::{TaskManifest, host_name, peak_rss_bytes};
pub(crate) use map::{batch_budget_for, block_bytes_for};
pub use moments::Moments;
pub use partial::Partial;
pub use predict::PREDICTED_KEY;
pub use spans::{SPANS_PREFIX, span_key};
pub use worker::{
    Assignment, COMMITTED_LINE, WorkerTask, attempt_from_env, prestarted_worker_main,
    run_worker_task, task_index, worker_main, worker_task,
};

use thiserror::Error;
use tracing::Instrument;

use crate::FormatError;
use crate::plan::{Plan, TaskKind};
use crate::storage::StorageError;

/// Exit code of a worker whose task failed in a way a retry may fix.
pub const EXIT_RETRYABLE: u8 = 75;
/// Exit code of a worker whose task can never succeed (bad input, corrupt data).
pub const EXIT_PERMANENT: u8 = 65;

/// Why a task failed; the message names the task's object key or field.
#[derive(Debug, Error)]
pub enum TaskError {
    /// Storage unreachable or a transient backend error: retry.
    #[error("{0}")]
    Retryable(String),
    /// Bad input, corrupt data or a kernel error: retrying cannot help.
    #[error("{0}")]
    Permanent(String),
}

impl TaskError {
    pub fn corrupt(key: &str, reason: impl Into<String>) -> Self {
        Self::Permanent(format!("{key}: {}", reason.into()))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Retryable(_) => EXIT_RETRYABLE,
            Self::Permanent(_) => EXIT_PERMANENT,
        }
    }
}

impl From<StorageError> for TaskError {
    fn from(e: StorageError) -> Self {
        if e.is_transient() {
            Self::Retryable(e.to_string())
        } else {
            Self::Permanent(e.to_string())
        }
    }
}

impl From<FormatError> for TaskError {
    fn from(e: FormatError) -> Self {
        Self::Permanent(e.to_string())
    }
}

/// The span of one task attempt; [`run_task_in`] and [`worker_main`] fill in its
/// attributes (the names a person filters on in a trace viewer; docs/observability.md).
pub fn task_span(stage: &str, index: u32, attempt: u32) -> tracing::Span {
    use tracing::field::Empty;
    tracing::info_span!(
        "task",
        stage,
        // Integers as i64: tracing-opentelemetry records unsigned fields as strings.
        shard = i64::from(index),
        attempt = i64::from(attempt),
        job = Empty,
        kind = Empty,
        cycle = Empty,
        windows = Empty,
        visibilities = Empty,
        npix = Empty,
        wplanes = Empty,
        bytes_read = Empty,
        bytes_written = Empty,
        peak_rss_bytes = Empty,
        exit_code = Empty,
        host = Empty,
    )
}

/// Runs task `index` of `stage` and writes its manifest (last). Re-running a task that
/// is already done rewrites identical outputs.
pub async fn run_task(env: &TaskEnv, stage: &str, index: u32) -> Result<TaskManifest, TaskError> {
    let span = task_span(stage, index, 1);
    run_task_in(env, stage, index, 1, &span).await
}

/// [`run_task`] inside `span` (made by [`task_span`]), for attempt `attempt`.
pub async fn run_task_in(
    env: &TaskEnv,
    stage: &str,
    index: u32,
    attempt: u32,
    span: &tracing::Span,
) -> Result<TaskManifest, TaskError> {
    let st = env
        .plan
        .stage(stage)
        .ok_or_else(|| TaskError::Permanent(format!("the plan has no stage {stage:?}")))?
        .clone();
    if index >= st.tasks {
        return Err(TaskError::Permanent(format!(
            "stage {stage} has {} tasks; index {index} is out of range",
            st.tasks
        )));
    }
    span.record("job", env.plan.job.as_str());
    span.record("kind", st.kind.name());
    span.record("cycle", i64::from(st.cycle));
    span.record("npix", i64::from(env.plan.image.npix));
    span.record("wplanes", i64::from(env.plan.image.grid_planes));
    let body = async {
        let mut m = TaskManifest::start(&st, index);
        m.attempt = attempt;
        match st.kind {
            TaskKind::Simulate => simulate::run(env, &st, index, &mut m).await?,
            TaskKind::Import => import::run(env, &st, index, &mut m).await?,
            TaskKind::ImportCommit => import::run_commit(env, &st, index, &mut m).await?,
            TaskKind::Weights => weights::run(env, &st, index, &mut m).await?,
            TaskKind::Invert | TaskKind::Residual => map::run(env, &st, index, &mut m).await?,
            TaskKind::Reduce => reduce::run(env, &st, index, &mut m).await?,
            TaskKind::Deconvolve => deconvolve::run(env, &st, index, &mut m).await?,
            TaskKind::Restore => restore::run(env, &st, index, &mut m).await?,
            TaskKind::Predict => predict::run(env, &st, index, &mut m).await?,
        }
        m.finish();
        let key = Plan::manifest_key(stage, index);
        env.out
            .put_json(&key, &m)
            .instrument(tracing::info_span!("write", key = key.as_str()))
            .await?;
        Ok::<_, TaskError>(m)
    };
    let m = body.instrument(span.clone()).await?;
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    span.record("windows", i64::from(m.windows));
    span.record("visibilities", int(m.visibilities));
    span.record("bytes_read", int(m.bytes_in));
    span.record("bytes_written", int(m.bytes_out));
    span.record("peak_rss_bytes", int(m.peak_rss_bytes));
    span.record("host", m.host.as_str());
    Ok(m)
}

/// Caps glibc's malloc at two arenas. Each thread that allocates otherwise gets its own
/// arena, and a worker whose gridder starts a thread pool per call kept ~2× the memory it
/// uses (measured: 161 MB peak RSS for an invert task, 77 MB with one arena, at the same
/// speed). Workers call this first thing.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator tuning; M_ARENA_MAX is a valid option
        // and is set before the process starts any thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
