//! An in-process executor: runs a plan's tasks one after another in this process through
//! the same state machine. For tests and debugging (no process isolation, no
//! parallelism); `aperture run` uses [`super::run_local`].

use crate::plan::TaskKind;
use crate::state::{Action, advance};
use crate::tasks::{TaskEnv, TaskError, TaskManifest, run_task};

use super::observe;

/// Runs every remaining task of `env.plan`; returns the manifests of the tasks it ran,
/// or the first failure (after `plan.max_attempts` attempts of a retryable one).
pub async fn run_inline(env: &TaskEnv) -> Result<Vec<TaskManifest>, TaskError> {
    let (mut obs, _) = observe(&env.plan, &env.out).await?;
    let mut ran = Vec::new();
    loop {
        let actions = advance(&env.plan, &obs);
        let mut progressed = false;
        for a in &actions {
            match a {
                Action::Succeed => return Ok(ran),
                Action::Fail { reason } => return Err(TaskError::Permanent(reason.clone())),
                Action::Run { stage, indices } => {
                    for &i in indices {
                        match run_task(env, stage, i).await {
                            Ok(m) => {
                                let o = obs.stage_mut(stage);
                                o.succeeded.insert(i);
                                if m.kind == TaskKind::Deconvolve {
                                    o.converged =
                                        m.result.get("converged").and_then(|v| v.as_bool());
                                }
                                ran.push(m);
                            }
                            Err(TaskError::Retryable(msg)) => {
                                let o = obs.stage_mut(stage);
                                *o.failures.entry(i).or_default() += 1;
                                o.last_error.insert(i, msg);
                            }
                            Err(e) => return Err(e),
                        }
                        progressed = true;
                    }
                }
                Action::Skip { .. } => {}
            }
        }
        if !progressed {
            return Err(TaskError::Permanent("internal: no task can run".into()));
        }
    }
}
