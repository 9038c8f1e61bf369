//! The task stream's bars: one per committed task (its manifest, with its phase times
//! from the matching `task` span) and one per failed attempt (an error `task` span, which
//! has no manifest).

use std::collections::{BTreeMap, HashMap, HashSet};

use aperture_telemetry::{STATUS_ERROR, SpanRecord};

use super::spans::phases_by_task;
use crate::plan::Plan;
use crate::tasks::TaskManifest;

/// One task attempt on the time line.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskBar {
    pub stage: String,
    pub index: u32,
    /// Stage kind (`invert`, `reduce`, …; `unknown` for a stage not in the plan).
    pub kind: &'static str,
    pub cycle: u32,
    /// Attempt number (1 = first run), when recorded.
    pub attempt: Option<u32>,
    pub start_unix: f64,
    pub seconds: f64,
    /// A failed attempt (an error `task` span), with the span's status message.
    pub failed: bool,
    pub error: String,
    pub exit_code: Option<i64>,
    /// Host or pod name (empty if unknown) and worker process id (0 if unknown).
    pub host: String,
    pub pid: u32,
    /// The manifest's read / compute / write split (failed attempts have none).
    pub split: Option<[f64; 3]>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub windows: u64,
    pub visibilities: u64,
    pub peak_rss_bytes: u64,
    /// Seconds per phase span under the task (empty without spans).
    pub phases: BTreeMap<String, f64>,
}

impl TaskBar {
    pub fn end_unix(&self) -> f64 {
        self.start_unix + self.seconds
    }
}

/// A finite, non-negative number of seconds (manifests from storage may hold anything).
fn clean(s: f64) -> f64 {
    if s.is_finite() && s > 0.0 { s } else { 0.0 }
}

fn attr_u64(s: &SpanRecord, k: &str) -> Option<u64> {
    s.attr(k)
        .and_then(|v| v.as_f64())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64)
}

fn attr_str(s: &SpanRecord, k: &str) -> String {
    s.attr(k).and_then(|v| v.as_str()).unwrap_or("").to_string()
}

/// Bars for the committed tasks (`manifests`, in order) followed by the failed attempts
/// found in `spans`, sorted by start time. A manifest takes the phase times of the
/// successful `task` span with its stage, index (`shard`) and attempt (when both
/// record one) that started closest to it. An error `task` span that matches a
/// manifest's stage, index and attempt is the same attempt and is not drawn twice.
pub fn task_bars(plan: &Plan, manifests: &[TaskManifest], spans: &[SpanRecord]) -> Vec<TaskBar> {
    let phases = phases_by_task(spans);
    let task_spans: Vec<&SpanRecord> = spans.iter().filter(|s| s.name == "task").collect();
    let mut ok_by_key: HashMap<(String, u64), Vec<&SpanRecord>> = HashMap::new();
    for s in task_spans.iter().filter(|s| s.status_code != STATUS_ERROR) {
        if let Some(shard) = attr_u64(s, "shard") {
            ok_by_key
                .entry((attr_str(s, "stage"), shard))
                .or_default()
                .push(s);
        }
    }
    let mut bars = Vec::with_capacity(manifests.len());
    let mut committed: HashSet<(String, u64, u64)> = HashSet::new();
    for m in manifests {
        committed.insert((m.stage.clone(), u64::from(m.index), u64::from(m.attempt)));
        let span = ok_by_key
            .get(&(m.stage.clone(), u64::from(m.index)))
            .and_then(|v| {
                v.iter()
                    .filter(|s| attr_u64(s, "attempt").is_none_or(|a| a == u64::from(m.attempt)))
                    .min_by(|a, b| {
                        (a.start_unix() - m.started_unix)
                            .abs()
                            .total_cmp(&(b.start_unix() - m.started_unix).abs())
                    })
            });
        bars.push(TaskBar {
            stage: m.stage.clone(),
            index: m.index,
            kind: m.kind.name(),
            cycle: m.cycle,
            attempt: Some(m.attempt),
            start_unix: if m.started_unix.is_finite() {
                m.started_unix
            } else {
                0.0
            },
            seconds: clean(m.seconds),
            failed: false,
            error: String::new(),
            exit_code: None,
            host: m.host.clone(),
            pid: m.pid,
            split: Some([
                clean(m.read_seconds),
                clean(m.compute_seconds),
                clean(m.write_seconds),
            ]),
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            windows: u64::from(m.windows),
            visibilities: m.visibilities,
            peak_rss_bytes: m.peak_rss_bytes,
            phases: span
                .and_then(|s| phases.get(&s.span_id))
                .cloned()
                .unwrap_or_default(),
        });
    }
    for s in task_spans.iter().filter(|s| s.status_code == STATUS_ERROR) {
        let stage = attr_str(s, "stage");
        let index = attr_u64(s, "shard").unwrap_or(0);
        let attempt = attr_u64(s, "attempt");
        if let Some(a) = attempt
            && committed.contains(&(stage.clone(), index, a))
        {
            continue;
        }
        let planned = plan.stage(&stage);
        bars.push(TaskBar {
            kind: planned.map_or("unknown", |p| p.kind.name()),
            cycle: attr_u64(s, "cycle")
                .map(|c| u32::try_from(c).unwrap_or(u32::MAX))
                .or(planned.map(|p| p.cycle))
                .unwrap_or(0),
            index: u32::try_from(index).unwrap_or(u32::MAX),
            stage,
            attempt: attempt.map(|a| u32::try_from(a).unwrap_or(u32::MAX)),
            start_unix: s.start_unix(),
            seconds: s.seconds(),
            failed: true,
            error: s.status_message.clone(),
            exit_code: s
                .attr("exit_code")
                .and_then(|v| v.as_f64())
                .map(|v| v as i64),
            host: attr_str(s, "host"),
            pid: 0,
            split: None,
            bytes_in: attr_u64(s, "bytes_read").unwrap_or(0),
            bytes_out: attr_u64(s, "bytes_written").unwrap_or(0),
            windows: attr_u64(s, "windows").unwrap_or(0),
            visibilities: attr_u64(s, "visibilities").unwrap_or(0),
            peak_rss_bytes: attr_u64(s, "peak_rss_bytes").unwrap_or(0),
            phases: phases.get(&s.span_id).cloned().unwrap_or_default(),
        });
    }
    bars.sort_by(|a, b| {
        a.start_unix
            .total_cmp(&b.start_unix)
            .then_with(|| a.stage.cmp(&b.stage))
            .then(a.index.cmp(&b.index))
    });
    bars
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{manifest, small_plan};
    use super::super::spans::tests::{span, with};
    use super::*;

    fn task(
        id: &str,
        stage: &str,
        shard: i64,
        attempt: i64,
        t: (f64, f64),
        failed: bool,
    ) -> SpanRecord {
        let mut s = with(
            with(
                with(span(id, "", "task", t.0, t.1), "stage", stage),
                "shard",
                shard,
            ),
            "attempt",
            attempt,
        );
        if failed {
            s.status_code = STATUS_ERROR;
            s.status_message = "exit status 1".into();
            s = with(with(s, "exit_code", 1_i64), "bytes_read", 4096_i64);
        }
        s
    }

    #[test]
    fn failed_attempts_come_from_error_spans_and_manifests_take_their_own_attempt() {
        let plan = small_plan();
        const T: f64 = 1_700_000_000.0;
        let mut m = manifest(&plan, "invert", 3, T + 10.0, 2.0);
        m.attempt = 3;
        let spans = vec![
            task("a1", "invert", 3, 1, (1.0, 2.0), true),
            task("a2", "invert", 3, 2, (3.0, 4.0), true),
            // Attempt 3 succeeded; a stray span of an earlier successful run of attempt
            // 1 started closer to the manifest but is not its attempt.
            task("a3", "invert", 3, 3, (8.0, 12.0), false),
            task("old", "invert", 3, 1, (10.0, 12.0), false),
            span("g3", "a3", "grid", 8.5, 11.0),
            span("gold", "old", "grid", 10.0, 10.5),
            // An error span that is the manifest's own attempt is not a second bar.
            task("dup", "invert", 3, 3, (8.0, 12.0), true),
            // A failed attempt of a stage the plan does not know.
            task("x", "mystery", 0, 1, (0.0, 0.5), true),
        ];
        let bars = task_bars(&plan, &[m], &spans);
        let summary: Vec<(&str, u32, Option<u32>, bool)> = bars
            .iter()
            .map(|b| (b.stage.as_str(), b.index, b.attempt, b.failed))
            .collect();
        assert_eq!(
            summary,
            [
                ("mystery", 0, Some(1), true),
                ("invert", 3, Some(1), true),
                ("invert", 3, Some(2), true),
                ("invert", 3, Some(3), false),
            ]
        );
        assert_eq!(bars[0].kind, "unknown");
        assert_eq!((bars[1].exit_code, bars[1].bytes_in), (Some(1), 4096));
        assert_eq!(bars[1].error, "exit status 1");
        assert!((bars[1].seconds - 1.0).abs() < 1e-9);
        assert!((bars[3].phases["grid"] - 2.5).abs() < 1e-9);
        assert_eq!(bars[3].host, "node-a");
    }
}
