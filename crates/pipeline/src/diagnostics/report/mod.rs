//! `report.html`: a self-contained page of a run's diagnostics (issue #8, part 3) — the
//! task stream, per-stage and per-cycle figures, the critical path, load imbalance, data
//! moved, peak memory per task, phase totals and the job's parameters. Built from the
//! plan and task manifests alone when no spans were recorded.

mod bars;
mod critical;
mod escape;
#[cfg(test)]
mod fixture;
mod html;
mod lanes;
mod model;
mod spans;
mod stats;
mod units;

pub use bars::TaskBar;
pub use critical::{CriticalPath, Node, critical_path};
pub use lanes::{Placed, Rows, assign_lanes, assign_rows};
pub use model::Report;
pub use spans::{PHASES, PhaseTotal};
pub use stats::{CycleStats, IMBALANCE_LIMIT, StageStats, TOO_SMALL_SECONDS, median};

use super::RunView;

/// Renders the report page.
pub fn render(view: &RunView) -> String {
    html::page(&Report::new(view))
}
