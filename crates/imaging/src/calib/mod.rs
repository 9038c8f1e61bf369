//! Antenna-based complex gain calibration: StEFCal-family solver, T/G/B solution types,
//! solution intervals, gain tables, applying and corrupting gains.
//!
//! Convention (as RASCIL's): a row with ant1 = p, ant2 = q holds
//! V_pq = g_p · conj(g_q) · M_pq, M the model visibility. Solution types (RASCIL
//! `calibration_context`): T scalar phase-only, one phase per antenna shared by every
//! frequency; G amplitude and phase per frequency window; B per channel. Solutions are
//! formed per time interval.
//!
//! The flow is [`NormalEquations::accumulate`] (per block; partial sums combine with
//! [`NormalEquations::add`]) → [`solve`] → [`GainTable`] → [`apply_gains`].
//! Autocorrelations are not used.

mod apply;
mod layout;
mod normal;
mod random;
mod solve;
mod spec;
mod stefcal;
mod table;

pub use apply::{ApplyMode, ApplyReport, WeightUpdate, apply_gains, baseline_gain};
pub use layout::{FREQ_REL_TOL, FreqCells, SolutionLayout, TIME_REL_TOL, time_intervals};
pub use normal::{NormalEquations, n_pairs, pair_index};
pub use random::{RandomGainSpec, random_gains};
pub use solve::solve;
pub use spec::{DEFAULT_MAX_ITER, DEFAULT_TOL, SolutionType, SolveSpec};
pub use table::{GainTable, SolutionStats, UNIT_MODULUS_TOL};
