//! The job state machine: one pure function from (plan, observed task states, result
//! facts) to actions. It has no I/O; the local executor and the operator apply its
//! actions (DESIGN.md, "State machine").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, TaskKind};

/// What an executor has observed of one stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageObs {
    /// Tasks whose result manifest exists.
    pub succeeded: BTreeSet<u32>,
    /// Tasks currently running.
    pub running: BTreeSet<u32>,
    /// Failed attempts per task (a later success supersedes them).
    pub failures: BTreeMap<u32, u32>,
    /// A task that failed in a way retrying cannot fix, with the reason.
    pub permanent: Option<(u32, String)>,
    /// Last failure message per task, for the failure reason.
    pub last_error: BTreeMap<u32, String>,
    /// For deconvolve stages: the residual was already below the threshold when the
    /// stage started (the job has converged).
    pub converged: Option<bool>,
}

/// Observations of every stage, by stage name (missing = nothing observed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub stages: BTreeMap<String, StageObs>,
}

impl Observed {
    pub fn stage(&self, name: &str) -> Option<&StageObs> {
        self.stages.get(name)
    }

    pub fn stage_mut(&mut self, name: &str) -> &mut StageObs {
        self.stages.entry(name.to_string()).or_default()
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Start these tasks of a stage (none of them is running or done).
    Run { stage: String, indices: Vec<u32> },
    /// The stage will not run: the job converged before its cycle.
    Skip { stage: String, reason: String },
    /// Every stage is done or skipped.
    Succeed,
    /// The job cannot finish.
    Fail { reason: String },
}

/// Where a job stands, for status and progress displays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The major cycle being worked on.
    pub cycle: u32,
    /// The cycle whose deconvolution found the residual below threshold, if any.
    pub converged_at: Option<u32>,
    pub done_tasks: u64,
    pub total_tasks: u64,
}

/// The first cycle whose deconvolve stage reports convergence.
pub fn converged_at(plan: &Plan, obs: &Observed) -> Option<u32> {
    plan.stages
        .iter()
        .filter(|s| s.kind == TaskKind::Deconvolve)
        .filter(|s| {
            obs.stage(&s.name)
                .is_some_and(|o| o.converged == Some(true) && o.succeeded.len() as u32 == s.tasks)
        })
        .map(|s| s.cycle)
        .min()
}

/// Stages skipped because the job converged at cycle `c`: every skippable stage of
/// cycle ≥ c except the deconvolve stage that found convergence.
pub fn skipped_stages(plan: &Plan, obs: &Observed) -> BTreeSet<String> {
    let Some(c) = converged_at(plan, obs) else {
        return BTreeSet::new();
    };
    plan.stages
        .iter()
        .filter(|s| s.skippable && s.cycle >= c)
        .filter(|s| !(s.kind == TaskKind::Deconvolve && s.cycle == c))
        .map(|s| s.name.clone())
        .collect()
}

/// Whether stage `name` has all its tasks succeeded.
fn complete(plan: &Plan, obs: &Observed, name: &str) -> bool {
    let Some(stage) = plan.stage(name) else {
        return false;
    };
    obs.stage(name)
        .is_some_and(|o| (0..stage.tasks).all(|i| o.succeeded.contains(&i)))
}

/// The next actions for `plan` given `obs`. Pure and deterministic: the same inputs
/// always give the same actions, so executors may call it as often as they like.
pub fn advance(plan: &Plan, obs: &Observed) -> Vec<Action> {
    for stage in &plan.stages {
        let Some(o) = obs.stage(&stage.name) else {
            continue;
        };
        if let Some((i, why)) = &o.permanent
            && !o.succeeded.contains(i)
        {
            return vec![Action::Fail {
                reason: format!("task {}/{i} failed permanently: {why}", stage.name),
            }];
        }
        for (i, n) in &o.failures {
            if *n >= plan.max_attempts && !o.succeeded.contains(i) && !o.running.contains(i) {
                let last = o
                    .last_error
                    .get(i)
                    .map(String::as_str)
                    .unwrap_or("no message");
                return vec![Action::Fail {
                    reason: format!(
                        "task {}/{i} failed {n} times (maxAttempts {}); last error: {last}",
                        stage.name, plan.max_attempts
                    ),
                }];
            }
        }
    }
    let skipped = skipped_stages(plan, obs);
    let mut actions = Vec::new();
    let mut all_done = true;
    for stage in &plan.stages {
        if skipped.contains(&stage.name) {
            actions.push(Action::Skip {
                stage: stage.name.clone(),
                reason: "converged: the residual is below the threshold".into(),
            });
            continue;
        }
        if complete(plan, obs, &stage.name) {
            continue;
        }
        all_done = false;
        let ready = stage
            .deps
            .iter()
            .all(|d| skipped.contains(d) || complete(plan, obs, d));
        if !ready {
            continue;
        }
        let o = obs.stage(&stage.name);
        let indices: Vec<u32> = (0..stage.tasks)
            .filter(|i| o.is_none_or(|o| !o.succeeded.contains(i) && !o.running.contains(i)))
            .collect();
        if !indices.is_empty() {
            actions.push(Action::Run {
                stage: stage.name.clone(),
                indices,
            });
        }
    }
    if all_done {
        actions.retain(|a| !matches!(a, Action::Skip { .. }));
        actions.insert(0, Action::Succeed);
        actions.truncate(1);
        return actions;
    }
    actions
}

/// A summary of where the job stands.
pub fn progress(plan: &Plan, obs: &Observed) -> Progress {
    let skipped = skipped_stages(plan, obs);
    let mut done = 0u64;
    let mut total = 0u64;
    let mut cycle = 0;
    for s in &plan.stages {
        if skipped.contains(&s.name) {
            continue;
        }
        total += u64::from(s.tasks);
        let n = obs.stage(&s.name).map_or(0, |o| o.succeeded.len() as u64);
        done += n.min(u64::from(s.tasks));
        if n > 0 || obs.stage(&s.name).is_some_and(|o| !o.running.is_empty()) {
            cycle = cycle.max(s.cycle.min(plan.major_cycles()));
        }
    }
    Progress {
        cycle,
        converged_at: converged_at(plan, obs),
        done_tasks: done,
        total_tasks: total,
    }
}

#[cfg(test)]
mod tests;
