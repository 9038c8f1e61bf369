//! `spec.calibration`: RASCIL's calibration context chain (T, G, B) with per-term
//! first cycle, phase-only flag and solution interval.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A calibration term.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum SolutionTerm {
    /// Phase-only scalar, shared by all frequencies (solved globally).
    T,
    /// Amplitude and phase per frequency window.
    G,
    /// Per channel (bandpass).
    B,
}

impl SolutionTerm {
    pub fn letter(self) -> char {
        match self {
            Self::T => 'T',
            Self::G => 'G',
            Self::B => 'B',
        }
    }
}

/// Controls of one term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TermSpec {
    /// First major cycle (1-based) in which this term is solved.
    #[schemars(range(min = 1))]
    pub first_cycle: u32,
    #[serde(default)]
    pub phase_only: bool,
    /// Solution interval in seconds, 1e-3 … 1e9 (omitted = the whole observation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1e-3, max = 1e9))]
    pub interval_seconds: Option<f64>,
    /// Convergence tolerance of the solver, 1e-15 … 1.
    #[serde(default = "d_tol")]
    #[schemars(range(min = 1e-15, max = 1.0))]
    pub tolerance: f64,
    /// Solver iterations at most (≥ 1).
    #[serde(default = "d_max_iter")]
    #[schemars(range(min = 1))]
    pub max_iterations: u32,
}

fn d_tol() -> f64 {
    1e-8
}
fn d_max_iter() -> u32 {
    200
}

impl TermSpec {
    fn new(first_cycle: u32, phase_only: bool) -> Self {
        Self {
            first_cycle,
            phase_only,
            interval_seconds: None,
            tolerance: d_tol(),
            max_iterations: d_max_iter(),
        }
    }
}

/// Self-calibration of `ical`: the terms solved (`context`, e.g. `TG`) and each term's
/// controls (`T`, `G`, `B`), as `{context: TG, T: {...}, G: {...}, referenceAntenna: 0}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalibrationSpec {
    /// Terms solved, in order (used by `ical` only): each of T, G, B at most once.
    #[serde(default = "d_context")]
    #[schemars(extend("enum" = CONTEXTS))]
    pub context: String,
    #[serde(rename = "T", default = "d_t")]
    pub t: TermSpec,
    #[serde(rename = "G", default = "d_g")]
    pub g: TermSpec,
    #[serde(rename = "B", default = "d_b")]
    pub b: TermSpec,
    #[serde(default)]
    pub reference_antenna: u32,
}

/// Every legal `context`: each term at most once, in any order (the schema's `enum`;
/// `validate.rs` checks the same letter by letter).
const CONTEXTS: [&str; 16] = [
    "", "T", "G", "B", "TG", "GT", "TB", "BT", "GB", "BG", "TGB", "TBG", "GTB", "GBT", "BTG", "BGT",
];

fn d_context() -> String {
    "TG".into()
}
fn d_t() -> TermSpec {
    TermSpec::new(1, true)
}
/// G starts a cycle after T: amplitude solutions against a model still missing the flux
/// that phase errors decorrelated would lock in a wrong flux scale.
fn d_g() -> TermSpec {
    TermSpec::new(3, false)
}
fn d_b() -> TermSpec {
    TermSpec::new(4, false)
}

impl Default for CalibrationSpec {
    fn default() -> Self {
        Self {
            context: d_context(),
            t: d_t(),
            g: d_g(),
            b: d_b(),
            reference_antenna: 0,
        }
    }
}

impl CalibrationSpec {
    /// The terms of the context in order; invalid letters are reported by validation.
    pub fn terms(&self) -> Vec<SolutionTerm> {
        self.context
            .chars()
            .filter_map(|c| match c {
                'T' => Some(SolutionTerm::T),
                'G' => Some(SolutionTerm::G),
                'B' => Some(SolutionTerm::B),
                _ => None,
            })
            .collect()
    }

    pub fn term(&self, t: SolutionTerm) -> &TermSpec {
        match t {
            SolutionTerm::T => &self.t,
            SolutionTerm::G => &self.g,
            SolutionTerm::B => &self.b,
        }
    }

    /// Terms active in major cycle `cycle` (1-based).
    pub fn active_in(&self, cycle: u32) -> Vec<SolutionTerm> {
        self.terms()
            .into_iter()
            .filter(|t| self.term(*t).first_cycle <= cycle)
            .collect()
    }
}
