//! Observing a job on the cluster, as pure functions: stage Jobs' status (completed and
//! failed indexes, pod counts, conditions) plus the ImagingJob's own durable status
//! become the state machine's [`Observed`]. Nothing here reads per-task objects, so the
//! cost of a reconcile does not grow with the number of tasks.

use std::collections::{BTreeMap, BTreeSet};

use aperture_pipeline::plan::{Plan, TaskKind};
use aperture_pipeline::spec::ImagingJobStatus;
use aperture_pipeline::state::{Observed, StageObs};
use aperture_pipeline::tasks::EXIT_PERMANENT;
use k8s_openapi::api::batch::v1::Job;

use crate::jobs::LABEL_STAGE;

/// Where a stage Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Pods are pending or running.
    Running,
    /// Every index succeeded (`Complete` condition).
    Complete,
    /// The Job failed (`Failed` condition) with this reason and message.
    Failed { reason: String, message: String },
}

/// What one stage Job says about its stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageJobView {
    /// The Job's name.
    pub name: String,
    /// The plan stage it runs (label `aperture.dev/stage`).
    pub stage: String,
    /// Indexes that succeeded (`status.completedIndexes`).
    pub completed: BTreeSet<u32>,
    /// Indexes that failed for good (`status.failedIndexes`, with backoffLimitPerIndex).
    pub failed_indexes: BTreeSet<u32>,
    /// Pods running or pending.
    pub active: u32,
    /// Pods that failed, retried ones included.
    pub failed_pods: u32,
    pub state: JobState,
}

/// Parses an index list as the Job controller writes it: `"1,3-5,7"` (empty = none).
pub fn parse_indexes(s: &str) -> Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u32 = a.parse().map_err(|_| format!("bad index {a:?} in {s:?}"))?;
        let b: u32 = b.parse().map_err(|_| format!("bad index {b:?} in {s:?}"))?;
        if b < a {
            return Err(format!("descending range {part:?} in {s:?}"));
        }
        if b - a > 1_000_000 {
            return Err(format!("range {part:?} too large in {s:?}"));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// The view of one stage Job, or `None` for a Job without a stage label.
pub fn job_view(job: &Job) -> Option<StageJobView> {
    let stage = job.metadata.labels.as_ref()?.get(LABEL_STAGE)?.clone();
    let name = job.metadata.name.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    // A malformed index list is treated as empty: the stage then looks unfinished
    // and the state machine waits instead of acting on garbage.
    let completed = status
        .completed_indexes
        .as_deref()
        .map(|s| parse_indexes(s).unwrap_or_default())
        .unwrap_or_default();
    let failed_indexes = status
        .failed_indexes
        .as_deref()
        .map(|s| parse_indexes(s).unwrap_or_default())
        .unwrap_or_default();
    let mut state = JobState::Running;
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => state = JobState::Complete,
            "Failed" => {
                state = JobState::Failed {
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                };
                break;
            }
            _ => {}
        }
    }
    Some(StageJobView {
        name,
        stage,
        completed,
        failed_indexes,
        active: status.active.unwrap_or(0).max(0) as u32,
        failed_pods: status.failed.unwrap_or(0).max(0) as u32,
        state,
    })
}

/// Whether a pod failure message says the worker exited with its permanent-failure
/// code (a retry cannot help).
pub fn is_permanent_message(msg: &str) -> bool {
    msg.starts_with(&format!("exit code {EXIT_PERMANENT}"))
}

/// The state machine's view of a job:
/// - stages the durable status records as complete are complete (their Jobs may have
///   been deleted by `ttlSecondsAfterFinished`);
/// - otherwise a stage's Job gives its succeeded indexes; while the Job runs, every
///   other index counts as running (Kubernetes retries them within
///   `backoffLimitPerIndex`, so the state machine must not start them again);
/// - a failed index has used all its attempts (or failed permanently), with `reason`;
/// - `converged` holds, per deconvolve stage, what its manifest said.
pub fn observed(
    plan: &Plan,
    status: &ImagingJobStatus,
    views: &BTreeMap<String, StageJobView>,
    converged: &BTreeMap<String, bool>,
    failure_reason: &BTreeMap<String, String>,
) -> Observed {
    let mut obs = Observed::default();
    for stage in &plan.stages {
        let all: BTreeSet<u32> = (0..stage.tasks).collect();
        let recorded = status
            .stages
            .get(&stage.name)
            .is_some_and(|c| c.complete() && c.total == stage.tasks);
        let mut o = StageObs::default();
        if recorded {
            o.succeeded = all;
        } else if let Some(v) = views.get(&stage.name) {
            o.succeeded = v
                .completed
                .iter()
                .copied()
                .filter(|i| *i < stage.tasks)
                .collect();
            let reason = failure_reason
                .get(&stage.name)
                .cloned()
                .or_else(|| match &v.state {
                    JobState::Failed { reason, message } => Some(format!("{reason}: {message}")),
                    _ => None,
                })
                .unwrap_or_else(|| "the stage Job failed".into());
            let mut failed: BTreeSet<u32> = v
                .failed_indexes
                .iter()
                .copied()
                .filter(|i| !o.succeeded.contains(i))
                .collect();
            if failed.is_empty()
                && matches!(v.state, JobState::Failed { .. })
                && let Some(first) = all.difference(&o.succeeded).next()
            {
                // Failed as a whole (deadline, backoff limit) without a failed index.
                failed.insert(*first);
            }
            for i in &failed {
                o.failures.insert(*i, plan.max_attempts);
                o.last_error.insert(*i, reason.clone());
            }
            if let Some(i) = failed.first()
                && is_permanent_message(&reason)
            {
                o.permanent = Some((*i, reason.clone()));
            }
            if v.state == JobState::Running {
                o.running = all
                    .difference(&o.succeeded)
                    .filter(|i| !failed.contains(i))
                    .copied()
                    .collect();
            }
        } else {
            continue;
        }
        if stage.kind == TaskKind::Deconvolve {
            o.converged = converged.get(&stage.name).copied();
        }
        obs.stages.insert(stage.name.clone(), o);
    }
    obs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_parse_like_the_job_controller_writes_them() {
        assert_eq!(parse_indexes("").unwrap(), BTreeSet::new());
        assert_eq!(
            parse_indexes("1,3-5,7").unwrap(),
            [1, 3, 4, 5, 7].into_iter().collect()
        );
        assert_eq!(parse_indexes("0-0").unwrap(), [0].into_iter().collect());
        assert!(parse_indexes("5-3").is_err());
        assert!(parse_indexes("a").is_err());
        assert!(parse_indexes("1-x").is_err());
    }

    #[test]
    fn permanent_failures_are_recognised_by_the_worker_exit_code() {
        assert!(is_permanent_message("exit code 65: error: task x/0: bad"));
        assert!(!is_permanent_message("exit code 75: retry"));
        assert!(!is_permanent_message("exit code 137 (OOMKilled)"));
    }
}
