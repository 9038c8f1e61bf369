//! Building an ImagingJob's status, as pure functions: per-stage counts, progress,
//! conditions (`Planned`, `Progressing`, `Ready`, `Failed`, `SpecChangeRefused`) with
//! Kubernetes' transition-time semantics. The result is O(stages) in size.

use std::collections::{BTreeMap, BTreeSet};

use aperture_pipeline::plan::Plan;
use aperture_pipeline::spec::{ImagingJobStatus, StageCounts};
use aperture_pipeline::state::{Observed, Progress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::observe::StageJobView;

pub const PLANNED: &str = "Planned";
pub const PROGRESSING: &str = "Progressing";
pub const READY: &str = "Ready";
pub const FAILED: &str = "Failed";
pub const SPEC_CHANGE_REFUSED: &str = "SpecChangeRefused";

/// Sets condition `type_` (adding it if missing). `lastTransitionTime` changes only when
/// the status flips, as the Kubernetes API conventions require; reason, message and
/// observedGeneration are always updated.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = crate::cluster::truncate(message.to_string(), 1024);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = now.clone();
        }
        c.status = status;
        c.reason = reason.into();
        c.message = message;
        c.observed_generation = generation;
    } else {
        conditions.push(Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: now.clone(),
        });
    }
}

/// Whether condition `type_` is present and true.
pub fn condition_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Task counts of every plan stage: succeeded from the observation, running and failed
/// pods from the stage's Job (kept from the previous status once the Job is gone).
pub fn stage_counts(
    plan: &Plan,
    obs: &Observed,
    views: &BTreeMap<String, StageJobView>,
    skipped: &BTreeSet<String>,
    previous: &BTreeMap<String, StageCounts>,
) -> BTreeMap<String, StageCounts> {
    plan.stages
        .iter()
        .map(|s| {
            let prev = previous.get(&s.name).copied().unwrap_or_default();
            let o = obs.stage(&s.name);
            let v = views.get(&s.name);
            let counts = StageCounts {
                total: s.tasks,
                succeeded: o.map_or(0, |o| o.succeeded.len() as u32).min(s.tasks),
                failed: v.map_or(prev.failed, |v| v.failed_pods.max(prev.failed)),
                running: v.map_or(0, |v| v.active),
                skipped: skipped.contains(&s.name),
            };
            (s.name.clone(), counts)
        })
        .collect()
}

/// `done/total` tasks.
pub fn progress_text(p: &Progress) -> String {
    format!("{}/{}", p.done_tasks, p.total_tasks)
}

/// Names of the stages with pods running, for the `Progressing` message.
pub fn running_stages(counts: &BTreeMap<String, StageCounts>) -> Vec<&str> {
    counts
        .iter()
        .filter(|(_, c)| c.running > 0)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// A status with bounded size: refuses nothing, but the caller's tests check that a
/// 5500-window, 10-cycle plan stays far below etcd's 1.5 MiB object limit.
pub fn encoded_size(status: &ImagingJobStatus) -> usize {
    serde_json::to_vec(status).map_or(0, |v| v.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut c = Vec::new();
        set_condition(&mut c, READY, false, "Running", "a", Some(1), &t(10));
        set_condition(&mut c, READY, false, "Running", "b", Some(2), &t(20));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, t(10));
        assert_eq!(c[0].message, "b");
        assert_eq!(c[0].observed_generation, Some(2));
        set_condition(&mut c, READY, true, "Succeeded", "done", Some(2), &t(30));
        assert_eq!(c[0].last_transition_time, t(30));
        assert!(condition_true(&c, READY));
        assert!(!condition_true(&c, FAILED));
    }
}
