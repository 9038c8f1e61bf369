//! What a worker process does: one task named on its command line (Kubernetes pods,
//! `aperture worker --stage S --index I`), or one task assigned on standard input to a
//! worker the local executor started ahead of time (`--task-from-stdin`).

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::{TaskEnv, TaskError, load_plan, run_task_in, spans, task_span};
use crate::plan::Plan;

/// The line a worker started with `--task-from-stdin` prints on standard output once the
/// task's result manifest is committed (or found already committed): the executor may
/// count the task done and start dependants while the worker still stores its spans
/// and exits.
pub const COMMITTED_LINE: &str = "committed";

/// One task handed to a pre-started worker: a single JSON line on its standard input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub stage: String,
    pub index: u32,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// W3C traceparent of the stage span, the task span's parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Threads the task may use, replacing `spec.parallelism.threadsPerTask` (the local
    /// executor gives a stage with fewer tasks than free slots the idle slots' threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

/// The attempt number of this worker process: `APERTURE_ATTEMPT` (set by the local
/// executor) or, on Kubernetes, one more than `APERTURE_INDEX_FAILURES` (the pod's
/// `batch.kubernetes.io/job-index-failure-count` annotation through the downward API).
pub fn attempt_from_env() -> u32 {
    let num = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    num("APERTURE_ATTEMPT")
        .filter(|a| *a >= 1)
        .or_else(|| num("APERTURE_INDEX_FAILURES").map(|f| f.saturating_add(1)))
        .unwrap_or(1)
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

/// The task a worker's arguments ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerTask<'a> {
    /// `--stage S --index I` (or `JOB_COMPLETION_INDEX`).
    Named { stage: &'a str, index: u32 },
    /// `--task-from-stdin`: an [`Assignment`] line, once the plan is loaded.
    FromStdin,
}

/// Which task the worker arguments name; the error is for the user (exit 2).
pub fn worker_task(
    stage: Option<&str>,
    index: Option<u32>,
    from_stdin: bool,
) -> Result<WorkerTask<'_>, String> {
    match (stage, from_stdin) {
        (_, true) => Ok(WorkerTask::FromStdin),
        (Some(stage), false) => Ok(WorkerTask::Named {
            stage,
            index: task_index(index)?,
        }),
        (None, false) => Err("give --stage, or --task-from-stdin".into()),
    }
}

/// Runs `task` of the plan at `plan_url` ([`worker_main`] or
/// [`prestarted_worker_main`]) and returns the process exit code.
pub async fn run_worker_task(
    plan_url: &str,
    task: WorkerTask<'_>,
    recorder: Option<&aperture_telemetry::Recorder>,
) -> u8 {
    match task {
        WorkerTask::Named { stage, index } => worker_main(plan_url, stage, index, recorder).await,
        WorkerTask::FromStdin => prestarted_worker_main(plan_url, recorder).await,
    }
}

/// Where the worker's plan comes from: loaded inside the task span, or already loaded
/// (by a pre-started worker, before its assignment arrived).
enum PlanSource<'a> {
    Url(&'a str),
    Loaded(Box<Result<TaskEnv, TaskError>>),
}

/// What a worker process does: load the plan, run one task inside its `task` span
/// (parented under `TRACEPARENT`, the stage span, when set), print a one-line error on
/// failure, and store the spans `recorder` holds for the job's trace. Returns the
/// process exit code (0, [`super::EXIT_RETRYABLE`] or [`super::EXIT_PERMANENT`]).
pub async fn worker_main(
    plan_url: &str,
    stage: &str,
    index: u32,
    recorder: Option<&aperture_telemetry::Recorder>,
) -> u8 {
    let a = Assignment {
        stage: stage.to_string(),
        index,
        attempt: attempt_from_env(),
        traceparent: std::env::var("TRACEPARENT").ok(),
        threads: None,
    };
    run_assigned(PlanSource::Url(plan_url), &a, recorder, false).await
}

/// A worker started ahead of its task: it loads the plan (so that work is off the
/// critical path), then waits for one [`Assignment`] line on standard input and runs
/// it as [`worker_main`] would, printing [`COMMITTED_LINE`] once the manifest is
/// committed. End of input before a line means the executor did not need this worker:
/// exit 0 having done nothing. A line that is not an assignment exits 2.
pub async fn prestarted_worker_main(
    plan_url: &str,
    recorder: Option<&aperture_telemetry::Recorder>,
) -> u8 {
    let env = load_plan(plan_url).await;
    // A blocking read: this process has nothing else to do until the line arrives.
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => return 0,
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: reading the task assignment from standard input: {e}");
            return super::EXIT_RETRYABLE;
        }
    }
    let a: Assignment = match serde_json::from_str(line.trim()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "error: standard input {:?} is not a task assignment: {e}",
                line.trim()
            );
            return 2;
        }
    };
    run_assigned(PlanSource::Loaded(Box::new(env)), &a, recorder, true).await
}

async fn run_assigned(
    plan: PlanSource<'_>,
    a: &Assignment,
    recorder: Option<&aperture_telemetry::Recorder>,
    announce: bool,
) -> u8 {
    let (stage, index) = (a.stage.as_str(), a.index);
    let span = task_span(stage, index, a.attempt);
    if let Some(tp) = &a.traceparent
        && !aperture_telemetry::set_remote_parent(&span, tp)
    {
        tracing::warn!("TRACEPARENT={tp:?} is not a W3C traceparent; starting a new trace");
    }
    let mut out = None;
    let result = async {
        let mut env = match plan {
            PlanSource::Url(url) => load_plan(url).await?,
            PlanSource::Loaded(env) => (*env)?,
        };
        if let Some(t) = a.threads {
            env.plan.spec.parallelism.threads_per_task = t;
        }
        out = Some(env.out.clone());
        // A manifest present = task done (DESIGN.md, "Tasks are idempotent"): a
        // re-created Kubernetes Job re-runs every index, and the done ones end here.
        if env.out.exists(&Plan::manifest_key(stage, index)).await? {
            tracing::info!(stage, index, "task already done (manifest present)");
            return Ok(false);
        }
        run_task_in(&env, stage, index, a.attempt, &tracing::Span::current())
            .await
            .map(|_| true)
    }
    .instrument(span.clone())
    .await;
    let (code, ran) = match result {
        Ok(ran) => {
            if announce {
                // The executor reads this line; if it is gone, the exit code still tells.
                let mut so = std::io::stdout().lock();
                let _ = writeln!(so, "{COMMITTED_LINE}").and_then(|()| so.flush());
            }
            (0, ran)
        }
        Err(e) => {
            let msg = format!("task {stage}/{index}: {e}");
            aperture_telemetry::set_error(&span, &msg);
            eprintln!("error: {msg}");
            (e.exit_code(), true)
        }
    };
    span.record("exit_code", i64::from(code));
    drop(span);
    if let (Some(rec), Some(out), true) = (recorder, out, ran) {
        spans::store(&out, rec, stage, index, a.attempt).await;
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_round_trip_and_refuse_unknown_fields() {
        let a = Assignment {
            stage: "residual-002".into(),
            index: 3,
            attempt: 2,
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            threads: Some(2),
        };
        let line = serde_json::to_string(&a).expect("serialise");
        assert!(!line.contains('\n'), "one line: {line}");
        assert_eq!(serde_json::from_str::<Assignment>(&line).expect("parse"), a);
        let bare: Assignment =
            serde_json::from_str(r#"{"stage":"invert","index":0,"attempt":1}"#).expect("parse");
        assert_eq!((bare.traceparent, bare.threads), (None, None));
        let err = serde_json::from_str::<Assignment>(
            r#"{"stage":"invert","index":0,"attempt":1,"thread":2}"#,
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("thread"), "{err}");
    }

    #[test]
    fn worker_arguments_name_one_task() {
        assert_eq!(
            worker_task(Some("invert"), Some(3), false),
            Ok(WorkerTask::Named {
                stage: "invert",
                index: 3
            })
        );
        assert_eq!(worker_task(None, None, true), Ok(WorkerTask::FromStdin));
        let e = worker_task(None, Some(1), false).expect_err("no task named");
        assert!(
            e.contains("--stage") && e.contains("--task-from-stdin"),
            "{e}"
        );
    }
}
