//! [`Report`]: everything the page shows, derived from a [`RunView`] without I/O — bars
//! and rows of the task stream, stage and cycle figures, the critical path, phase totals
//! and the tasks by peak memory.

use std::collections::HashSet;

use super::bars::{TaskBar, task_bars};
use super::critical::{CriticalPath, Node, critical_path};
use super::lanes::{Placed, Rows, assign_lanes, assign_rows};
use super::spans::{PhaseTotal, job_span, phase_totals};
use super::stats::{CycleStats, StageStats, cycle_stats, stage_stats};
use crate::diagnostics::RunView;

/// The derived figures of one run.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub view: &'a RunView,
    /// Time zero of the task stream (the job span's start, else the first task's), Unix
    /// seconds; equal to `generated_unix` when nothing ran yet.
    pub t0: f64,
    /// Wall time: from `t0` to the end of the job span or the last task, whichever is
    /// later.
    pub wall_seconds: f64,
    /// Bars sorted by start; `rows.row_of[i]` is bar `i`'s row.
    pub bars: Vec<TaskBar>,
    pub rows: Rows,
    /// The most attempts running at one instant (the worker slots in use).
    pub max_concurrent: usize,
    pub hosts: usize,
    pub pids: usize,
    pub stages: Vec<StageStats>,
    pub cycles: Vec<CycleStats>,
    /// Indices into `stages`; `None` if the plan's stage graph has a cycle.
    pub critical: Option<CriticalPath>,
    pub phases: Vec<PhaseTotal>,
    /// Committed bars by peak RSS, largest first (indices into `bars`; RSS > 0 only).
    pub by_memory: Vec<usize>,
}

impl<'a> Report<'a> {
    pub fn new(view: &'a RunView) -> Self {
        let bars = task_bars(&view.plan, &view.manifests, &view.spans);
        let job = job_span(&view.spans);
        let t0 = bars
            .iter()
            .map(|b| b.start_unix)
            .chain(job.map(|j| j.start_unix()))
            .reduce(f64::min)
            .unwrap_or(view.generated_unix);
        let end = bars
            .iter()
            .map(TaskBar::end_unix)
            .chain(job.map(|j| j.start_unix() + j.seconds()))
            .reduce(f64::max)
            .unwrap_or(t0);
        let rows = assign_rows(
            &bars
                .iter()
                .map(|b| Placed {
                    host: &b.host,
                    start: b.start_unix,
                    end: b.end_unix(),
                })
                .collect::<Vec<_>>(),
        );
        let (_, max_concurrent) = assign_lanes(
            &bars
                .iter()
                .map(|b| (b.start_unix, b.end_unix()))
                .collect::<Vec<_>>(),
        );
        let stages = stage_stats(&view.plan, &bars);
        let cycles = cycle_stats(&stages);
        let critical = critical_path(
            &stages
                .iter()
                .map(|s| Node {
                    name: &s.name,
                    deps: &s.deps,
                    weight: s.wall(),
                })
                .collect::<Vec<_>>(),
        );
        let mut by_memory: Vec<usize> = (0..bars.len())
            .filter(|&i| !bars[i].failed && bars[i].peak_rss_bytes > 0)
            .collect();
        by_memory.sort_by(|&a, &b| bars[b].peak_rss_bytes.cmp(&bars[a].peak_rss_bytes));
        Self {
            view,
            t0,
            wall_seconds: (end - t0).max(0.0),
            hosts: bars
                .iter()
                .filter(|b| !b.host.is_empty())
                .map(|b| b.host.as_str())
                .collect::<HashSet<_>>()
                .len(),
            pids: bars
                .iter()
                .filter(|b| b.pid != 0)
                .map(|b| (b.host.as_str(), b.pid))
                .collect::<HashSet<_>>()
                .len(),
            rows,
            max_concurrent,
            stages,
            cycles,
            critical,
            phases: phase_totals(&view.spans),
            by_memory,
            bars,
        }
    }

    /// Committed tasks and failed attempts.
    pub fn counts(&self) -> (usize, usize) {
        let failed = self.bars.iter().filter(|b| b.failed).count();
        (self.bars.len() - failed, failed)
    }

    /// The critical path's share of the wall time.
    pub fn critical_share(&self) -> Option<f64> {
        self.critical
            .as_ref()
            .filter(|_| self.wall_seconds > 0.0)
            .map(|c| c.seconds / self.wall_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{manifest, small_plan};
    use super::super::spans::tests::{span, with};
    use super::*;
    use crate::diagnostics::RunState;
    use aperture_telemetry::STATUS_ERROR;

    /// Spans start at 1.7e9 s (the fixture's epoch); manifests use the same clock.
    const T: f64 = 1_700_000_000.0;

    fn view() -> RunView {
        let plan = small_plan();
        let mut manifests = vec![
            manifest(&plan, "simulate", 0, T, 2.0),
            manifest(&plan, "simulate", 1, T, 2.0),
            manifest(&plan, "invert", 0, T + 2.0, 3.0),
            manifest(&plan, "invert", 1, T + 2.0, 5.0),
            manifest(&plan, "reduce-000-1", 0, T + 8.0, 1.0),
        ];
        manifests[3].attempt = 2;
        let mut failed = span("f", "st", "task", 1.0, 2.0);
        failed = with(
            with(with(failed, "stage", "invert"), "shard", 1_i64),
            "attempt",
            1_i64,
        );
        failed.status_code = STATUS_ERROR;
        failed.status_message = "exit status 137".into();
        let ok = with(
            with(
                with(span("t", "st", "task", 2.0, 7.0), "stage", "invert"),
                "shard",
                1_i64,
            ),
            "attempt",
            2_i64,
        );
        let spans = vec![
            span("j", "", "job", 0.0, 10.0),
            span("st", "j", "stage", 1.0, 7.0),
            failed,
            span("fr", "f", "read", 1.0, 1.5),
            ok,
            span("g", "t", "grid", 3.0, 6.0),
        ];
        RunView {
            plan,
            manifests,
            spans,
            state: RunState::Running,
            generated_unix: T + 11.0,
        }
    }

    #[test]
    fn bars_rows_and_figures_of_a_small_run() {
        let v = view();
        let r = Report::new(&v);
        assert_eq!(r.counts(), (5, 1));
        assert_eq!((r.t0, r.wall_seconds), (T, 10.0));
        // The failed attempt (start T+1) is drawn, with its own phases; the committed
        // invert/1 takes the grid time of its attempt-2 span.
        let f = r.bars.iter().find(|b| b.failed).unwrap();
        assert_eq!(
            (f.stage.as_str(), f.index, f.attempt),
            ("invert", 1, Some(1))
        );
        assert_eq!(f.kind, "invert");
        assert!((f.phases["read"] - 0.5).abs() < 1e-9);
        let inv1 = r
            .bars
            .iter()
            .find(|b| !b.failed && b.stage == "invert" && b.index == 1);
        assert!((inv1.unwrap().phases["grid"] - 3.0).abs() < 1e-9);
        // One host in the manifests (the failed span has none): worker-slot rows.
        // Open at T+2: invert/0, invert/1; at T+1..2: two simulates and the failure.
        assert!(!r.rows.by_host);
        assert_eq!((r.max_concurrent, r.rows.labels.len()), (3, 3));
        assert_eq!((r.hosts, r.pids), (1, 2));
        // Critical path: simulate (T..T+2, 2 s) → invert (T+1..T+7, 6 s) → reduce (1 s).
        let c = r.critical.as_ref().unwrap();
        let names: Vec<&str> = c.nodes.iter().map(|&i| r.stages[i].name.as_str()).collect();
        assert_eq!(names[..3], ["simulate", "invert", "reduce-000-1"]);
        assert!((c.seconds - 9.0).abs() < 1e-9);
        assert!((r.critical_share().unwrap() - 0.9).abs() < 1e-9);
        assert_eq!(
            r.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["read", "grid"]
        );
    }

    #[test]
    fn manifests_alone_are_enough() {
        let mut v = view();
        v.spans.clear();
        let r = Report::new(&v);
        assert_eq!(r.counts(), (5, 0));
        assert_eq!((r.t0, r.wall_seconds), (T, 9.0));
        assert!(r.phases.is_empty());
        assert_eq!(r.by_memory.len(), 5);
    }

    #[test]
    fn an_empty_run_renders_figures_without_tasks() {
        let mut v = view();
        v.spans.clear();
        v.manifests.clear();
        let r = Report::new(&v);
        assert_eq!((r.t0, r.wall_seconds, r.bars.len()), (T + 11.0, 0.0, 0));
        assert_eq!(r.critical.as_ref().map(|c| c.seconds), Some(0.0));
    }
}
