//! Per-stage and per-cycle figures of a run: task times (min / median / max), load
//! imbalance (max / median, the SDP memo's straggler measure), estimated vs measured task
//! seconds, bytes moved, peak memory, and the flags for tasks outside the 1–100 s band
//! (DESIGN.md, "Execution model").

use std::collections::{BTreeMap, HashSet};

use super::bars::TaskBar;
use crate::plan::Plan;

/// A stage whose median task is shorter than this is flagged: per-task overhead
/// (process start, reading inputs) dominates below the design's 1–100 s band.
pub const TOO_SMALL_SECONDS: f64 = 1.0;

/// A stage whose slowest task takes more than this many times its median is flagged.
pub const IMBALANCE_LIMIT: f64 = 2.0;

/// Median of `xs` (mean of the middle two for an even count); `None` when empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some(0.5 * (v[n / 2 - 1] + v[n / 2])),
    }
}

/// One stage's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct StageStats {
    pub name: String,
    pub kind: &'static str,
    pub cycle: u32,
    pub deps: Vec<String>,
    /// Tasks in the plan (0 for a stage the plan does not know).
    pub planned: u32,
    /// Distinct task indices committed (with a manifest).
    pub done: u32,
    /// Failed attempts and the seconds they took.
    pub failed_attempts: u32,
    pub failed_seconds: f64,
    /// Sum of the committed tasks' seconds.
    pub task_seconds: f64,
    pub min: Option<f64>,
    pub median: Option<f64>,
    pub max: Option<f64>,
    /// The planner's estimate of one task.
    pub est_task_seconds: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub peak_rss_bytes: u64,
    /// First start and last end of any attempt, Unix seconds.
    pub first_start: Option<f64>,
    pub last_end: Option<f64>,
}

impl StageStats {
    /// Slowest over median task time.
    pub fn imbalance(&self) -> Option<f64> {
        match (self.max, self.median) {
            (Some(mx), Some(md)) if md > 0.0 => Some(mx / md),
            _ => None,
        }
    }

    /// Measured median over the planner's estimate.
    pub fn est_ratio(&self) -> Option<f64> {
        self.median
            .filter(|_| self.est_task_seconds > 0.0)
            .map(|m| m / self.est_task_seconds)
    }

    pub fn too_small(&self) -> bool {
        self.median.is_some_and(|m| m < TOO_SMALL_SECONDS)
    }

    pub fn imbalanced(&self) -> bool {
        self.imbalance().is_some_and(|r| r > IMBALANCE_LIMIT)
    }

    /// Wall span: first start to last end of its attempts (0 if none ran).
    pub fn wall(&self) -> f64 {
        match (self.first_start, self.last_end) {
            (Some(a), Some(b)) => (b - a).max(0.0),
            _ => 0.0,
        }
    }
}

fn stats_of(
    name: &str,
    kind: &'static str,
    cycle: u32,
    deps: Vec<String>,
    planned: u32,
    est: f64,
    bars: &[&TaskBar],
) -> StageStats {
    let ok: Vec<&&TaskBar> = bars.iter().filter(|b| !b.failed).collect();
    let secs: Vec<f64> = ok.iter().map(|b| b.seconds).collect();
    let done = ok.iter().map(|b| b.index).collect::<HashSet<_>>().len() as u32;
    StageStats {
        name: name.to_string(),
        kind,
        cycle,
        deps,
        planned,
        done,
        failed_attempts: bars.iter().filter(|b| b.failed).count() as u32,
        failed_seconds: bars.iter().filter(|b| b.failed).map(|b| b.seconds).sum(),
        task_seconds: secs.iter().sum(),
        min: secs.iter().copied().reduce(f64::min),
        median: median(&secs),
        max: secs.iter().copied().reduce(f64::max),
        est_task_seconds: est,
        bytes_in: ok.iter().map(|b| b.bytes_in).sum(),
        bytes_out: ok.iter().map(|b| b.bytes_out).sum(),
        peak_rss_bytes: bars.iter().map(|b| b.peak_rss_bytes).max().unwrap_or(0),
        first_start: bars.iter().map(|b| b.start_unix).reduce(f64::min),
        last_end: bars.iter().map(|b| b.end_unix()).reduce(f64::max),
    }
}

/// Figures for every stage of the plan, in plan order, then for any stage the bars name
/// that the plan does not (a plan rewritten under an old run), in order of appearance.
pub fn stage_stats(plan: &Plan, bars: &[TaskBar]) -> Vec<StageStats> {
    let mut by_stage: BTreeMap<&str, Vec<&TaskBar>> = BTreeMap::new();
    for b in bars {
        by_stage.entry(b.stage.as_str()).or_default().push(b);
    }
    let mut out: Vec<StageStats> = plan
        .stages
        .iter()
        .map(|s| {
            stats_of(
                &s.name,
                s.kind.name(),
                s.cycle,
                s.deps.clone(),
                s.tasks,
                s.est_task_seconds,
                by_stage.get(s.name.as_str()).map_or(&[][..], |v| v),
            )
        })
        .collect();
    let mut extra: Vec<&str> = Vec::new();
    for b in bars {
        if plan.stage(&b.stage).is_none() && !extra.contains(&b.stage.as_str()) {
            extra.push(&b.stage);
        }
    }
    for name in extra {
        let v = &by_stage[name];
        out.push(stats_of(name, v[0].kind, v[0].cycle, vec![], 0, 0.0, v));
    }
    out
}

/// One major cycle's figures (cycle 0: simulate, weights and the first invert; the
/// highest: restore).
#[derive(Debug, Clone, PartialEq)]
pub struct CycleStats {
    pub cycle: u32,
    /// Stages of the cycle that ran at least one attempt.
    pub stages_run: usize,
    pub tasks: u32,
    pub task_seconds: f64,
    /// First start to last end over the cycle's stages (0 if none ran).
    pub wall: f64,
}

/// Per-cycle figures from the stage figures, in cycle order.
pub fn cycle_stats(stages: &[StageStats]) -> Vec<CycleStats> {
    let mut by: BTreeMap<u32, Vec<&StageStats>> = BTreeMap::new();
    for s in stages {
        by.entry(s.cycle).or_default().push(s);
    }
    by.into_iter()
        .map(|(cycle, v)| {
            let first = v.iter().filter_map(|s| s.first_start).reduce(f64::min);
            let last = v.iter().filter_map(|s| s.last_end).reduce(f64::max);
            CycleStats {
                cycle,
                stages_run: v.iter().filter(|s| s.first_start.is_some()).count(),
                tasks: v.iter().map(|s| s.done).sum(),
                task_seconds: v.iter().map(|s| s.task_seconds).sum(),
                wall: match (first, last) {
                    (Some(a), Some(b)) => (b - a).max(0.0),
                    _ => 0.0,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{bar, failed_bar, small_plan};
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn stage_figures_match_hand_computed_values() {
        let plan = small_plan();
        // invert: tasks of 2, 3, 10 and 4 s (median 3.5, imbalance 10/3.5), one failed
        // attempt of 1.5 s; reduce level 1: one task of 0.5 s (too small).
        let bars = vec![
            bar("invert", 0, 100.0, 2.0),
            bar("invert", 1, 100.0, 3.0),
            bar("invert", 2, 101.0, 10.0),
            bar("invert", 3, 102.0, 4.0),
            failed_bar("invert", 1, 99.0, 1.5),
            bar("reduce-000-1", 0, 111.0, 0.5),
        ];
        let st = stage_stats(&plan, &bars);
        let inv = st.iter().find(|s| s.name == "invert").unwrap();
        assert_eq!((inv.planned, inv.done, inv.failed_attempts), (4, 4, 1));
        assert_eq!(inv.task_seconds, 19.0);
        assert_eq!(
            (inv.min, inv.median, inv.max),
            (Some(2.0), Some(3.5), Some(10.0))
        );
        assert!((inv.imbalance().unwrap() - 10.0 / 3.5).abs() < 1e-12);
        assert!(inv.imbalanced() && !inv.too_small());
        assert_eq!(inv.bytes_in, 4 * 1000);
        assert_eq!(inv.peak_rss_bytes, 10 << 20);
        // Wall span from the failed attempt's start (99) to the slowest end (111).
        assert_eq!(inv.wall(), 12.0);
        let red = st.iter().find(|s| s.name == "reduce-000-1").unwrap();
        assert!(red.too_small() && !red.imbalanced());
        let dec = st.iter().find(|s| s.name == "deconvolve-001").unwrap();
        assert_eq!((dec.done, dec.median, dec.wall()), (0, None, 0.0));
        assert_eq!(st.len(), plan.stages.len());
    }

    #[test]
    fn cycles_sum_their_stages() {
        let plan = small_plan();
        let bars = vec![
            bar("invert", 0, 100.0, 2.0),
            bar("reduce-000-1", 0, 103.0, 1.0),
            bar("deconvolve-001", 0, 105.0, 4.0),
            bar("residual-001", 0, 110.0, 3.0),
            bar("residual-001", 1, 110.0, 5.0),
        ];
        let cy = cycle_stats(&stage_stats(&plan, &bars));
        assert_eq!(cy[0].cycle, 0);
        assert_eq!((cy[0].tasks, cy[0].task_seconds, cy[0].wall), (2, 3.0, 4.0));
        assert_eq!(cy[1].cycle, 1);
        assert_eq!(
            (cy[1].tasks, cy[1].task_seconds, cy[1].wall),
            (3, 12.0, 10.0)
        );
    }
}
