//! The work of each task kind (simulate, weights, invert/residual map, reduce,
//! deconvolve, restore), streaming one frequency window at a time, and the result
//! manifest each task writes last.

mod common;
mod deconvolve;
mod gains;
mod manifest;
mod map;
mod moments;
mod partial;
mod predict;
mod reduce;
mod restore;
mod simulate;
mod weights;

pub use common::{TaskEnv, load_plan};
pub use gains::StoredGains;
pub use manifest::{TaskManifest, peak_rss_bytes};
pub use moments::Moments;
pub use partial::Partial;
pub use predict::PREDICTED_KEY;

use thiserror::Error;

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

/// Runs task `index` of `stage` and writes its manifest (last). Re-running a task that
/// is already done rewrites identical outputs.
pub async fn run_task(env: &TaskEnv, stage: &str, index: u32) -> Result<TaskManifest, TaskError> {
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
    let span = tracing::info_span!("task", stage = %stage, index, kind = ?st.kind);
    let _guard = span.enter();
    let mut m = TaskManifest::start(&st, index);
    match st.kind {
        TaskKind::Simulate => simulate::run(env, &st, index, &mut m).await?,
        TaskKind::Weights => weights::run(env, &st, index, &mut m).await?,
        TaskKind::Invert | TaskKind::Residual => map::run(env, &st, index, &mut m).await?,
        TaskKind::Reduce => reduce::run(env, &st, index, &mut m).await?,
        TaskKind::Deconvolve => deconvolve::run(env, &st, index, &mut m).await?,
        TaskKind::Restore => restore::run(env, &st, index, &mut m).await?,
        TaskKind::Predict => predict::run(env, &st, index, &mut m).await?,
    }
    m.finish();
    env.out
        .put_json(&Plan::manifest_key(stage, index), &m)
        .await?;
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

/// What a worker process does: load the plan, run one task, print a one-line error on
/// failure. Returns the process exit code (0, [`EXIT_RETRYABLE`] or [`EXIT_PERMANENT`]).
pub async fn worker_main(plan_url: &str, stage: &str, index: u32) -> u8 {
    let result = async {
        let env = load_plan(plan_url).await?;
        // A manifest present = task done (DESIGN.md, "Tasks are idempotent"): a
        // re-created Kubernetes Job re-runs every index, and the done ones end here.
        if env.out.exists(&Plan::manifest_key(stage, index)).await? {
            tracing::info!(stage, index, "task already done (manifest present)");
            return Ok(());
        }
        run_task(&env, stage, index).await.map(|_| ())
    }
    .await;
    match result {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("error: task {stage}/{index}: {e}");
            e.exit_code()
        }
    }
}

/// The task index from `--index` or, for Kubernetes Indexed Jobs, `JOB_COMPLETION_INDEX`.
pub fn task_index(arg: Option<u32>) -> Result<u32, String> {
    if let Some(i) = arg {
        return Ok(i);
    }
    match std::env::var("JOB_COMPLETION_INDEX") {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("JOB_COMPLETION_INDEX={v:?} is not a task index")),
        Err(_) => Err("give --index or set JOB_COMPLETION_INDEX".into()),
    }
}
