//! What every run leaves under `diagnostics/` (timings tables, the job's trace as OTLP
//! JSON, the HTML report), built from the task manifests and span records in storage,
//! so it can be re-rendered for a job that failed or is still running.

mod files;
pub mod report;
mod rerender;
mod trace;
mod view;

pub use files::{
    RUN_KEY, RunFigures, RunRecord, RunSummary, TIMINGS_COLUMNS, Written, write_run_diagnostics,
};
pub use rerender::rerender;
pub use trace::{assemble, derived, load_stored_spans, task_of};
pub use view::{RunState, RunView};
