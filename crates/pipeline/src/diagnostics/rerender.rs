//! Re-rendering a job's diagnostics from storage alone (`aperture report OUTPUT_URL`),
//! also for a job that failed or is still running.

use super::RunState;
use super::files::{RUN_KEY, RunRecord, RunSummary, Written, write_run_diagnostics};
use crate::executor::observe;
use crate::plan::{PLAN_KEY, Plan};
use crate::state::{Action, advance};
use crate::storage::{StorageError, Store};

/// Rewrites every file under `diagnostics/` from the plan, manifests and stored spans
/// at `out`; returns what was written and the state it found.
pub async fn rerender(out: &Store) -> Result<(Plan, Written, RunState), StorageError> {
    let plan: Plan = out.get_json(PLAN_KEY).await?;
    let (obs, manifests) = observe(&plan, out).await?;
    let record: Option<RunRecord> = if out.exists(RUN_KEY).await? {
        Some(out.get_json(RUN_KEY).await?)
    } else {
        None
    };
    // The run's own record wins (it knows about interrupts); else the state machine's
    // verdict on what storage holds.
    let state = match record.as_ref().map(|r| r.state.clone()) {
        Some(s @ (RunState::Succeeded | RunState::Failed { .. })) => s,
        _ => match advance(&plan, &obs).first() {
            Some(Action::Succeed) => RunState::Succeeded,
            Some(Action::Fail { reason }) => RunState::Failed {
                reason: reason.clone(),
            },
            _ => RunState::Running,
        },
    };
    // Without a record: first task start to last task end.
    let first = manifests
        .iter()
        .map(|m| m.started_unix)
        .fold(f64::INFINITY, f64::min);
    let last = manifests
        .iter()
        .map(|m| m.started_unix + m.seconds)
        .fold(0.0, f64::max);
    let wall = record
        .as_ref()
        .map_or((last - first).max(0.0), |r| r.wall_seconds);
    let run = RunSummary {
        state: state.clone(),
        wall_seconds: wall,
        nworkers: record.as_ref().map_or(1, |r| r.nworkers),
        own_spans: Vec::new(),
        service: "aperture".into(),
    };
    let written = write_run_diagnostics(&plan, out, &manifests, run).await?;
    Ok((plan, written, state))
}
