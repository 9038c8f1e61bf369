//! Executors of the job state machine. `prepare` turns a manifest into a stored plan
//! (shared by every executor); `local` runs the plan's tasks as worker processes.

mod inline;
mod local;
mod observe;
mod prepare;
pub mod survey;

pub use crate::diagnostics::RunFigures;
pub use inline::run_inline;
pub use local::{Event, LocalOptions, RunOutcome, run_local};
pub use observe::observe;
pub use prepare::{
    PrepareError, input_facts, input_facts_with, prepare, prepare_from_survey, prepare_with,
};
