//! Reading the span tree (job → stage → task → phases, issue #8): which `task` span a
//! phase span belongs to, seconds per phase per task, and phase totals over the run.

use std::collections::{BTreeMap, HashMap};

use aperture_telemetry::SpanRecord;

/// The phase span names under a task, in the order a task runs them.
pub const PHASES: [&str; 9] = [
    "read", "weights", "grid", "fft", "wscreen", "degrid", "solve", "reduce", "write",
];

/// Parent links followed at most this far (a malformed trace may hold a loop).
const MAX_DEPTH: usize = 256;

fn is_phase(name: &str) -> bool {
    PHASES.contains(&name)
}

/// The root `job` span (no parent), if recorded.
pub fn job_span(spans: &[SpanRecord]) -> Option<&SpanRecord> {
    spans
        .iter()
        .filter(|s| s.name == "job" && s.parent_span_id.is_empty())
        .max_by(|a, b| a.seconds().total_cmp(&b.seconds()))
}

/// Where each counted phase span belongs.
struct Attribution<'a> {
    /// Phase span and the id of its enclosing `task` span (None if no task span above it
    /// was recorded).
    counted: Vec<(&'a SpanRecord, Option<&'a str>)>,
}

/// Walks every phase span up to its nearest `task` span. A phase span inside another
/// span of the same phase name (e.g. `grid` within `grid`) is not counted, so nested
/// instrumentation does not count time twice; phases of different names may nest (a
/// `fft` inside `grid`) and each keeps its own time.
fn attribute(spans: &[SpanRecord]) -> Attribution<'_> {
    let by_id: HashMap<&str, &SpanRecord> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut counted = Vec::new();
    'spans: for s in spans.iter().filter(|s| is_phase(&s.name)) {
        let mut parent = s.parent_span_id.as_str();
        let mut task = None;
        for _ in 0..MAX_DEPTH {
            let Some(p) = by_id.get(parent) else { break };
            if p.name == s.name {
                continue 'spans;
            }
            if p.name == "task" {
                task = Some(p.span_id.as_str());
                break;
            }
            parent = p.parent_span_id.as_str();
        }
        counted.push((s, task));
    }
    Attribution { counted }
}

/// Seconds per phase name under each `task` span, keyed by the task span's id.
pub fn phases_by_task(spans: &[SpanRecord]) -> HashMap<String, BTreeMap<String, f64>> {
    let mut out: HashMap<String, BTreeMap<String, f64>> = HashMap::new();
    for (s, task) in attribute(spans).counted {
        if let Some(t) = task {
            *out.entry(t.to_string())
                .or_default()
                .entry(s.name.clone())
                .or_default() += s.seconds();
        }
    }
    out
}

/// Seconds of one phase over the whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseTotal {
    pub name: String,
    pub seconds: f64,
    /// Spans counted.
    pub spans: usize,
}

/// Seconds per phase name over all phase spans (also those whose task span was lost),
/// in [`PHASES`] order; phases never seen are left out.
pub fn phase_totals(spans: &[SpanRecord]) -> Vec<PhaseTotal> {
    let mut acc: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (s, _) in attribute(spans).counted {
        let e = acc.entry(s.name.as_str()).or_default();
        e.0 += s.seconds();
        e.1 += 1;
    }
    PHASES
        .iter()
        .filter_map(|p| {
            acc.get(p).map(|&(seconds, n)| PhaseTotal {
                name: (*p).to_string(),
                seconds,
                spans: n,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aperture_telemetry::AttrValue;

    /// A span lasting `start_s`…`end_s` seconds after a fixed epoch.
    pub(crate) fn span(id: &str, parent: &str, name: &str, start_s: f64, end_s: f64) -> SpanRecord {
        const EPOCH: u64 = 1_700_000_000_000_000_000;
        SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: name.into(),
            start_unix_nano: EPOCH + (start_s * 1e9).round() as u64,
            end_unix_nano: EPOCH + (end_s * 1e9).round() as u64,
            attributes: BTreeMap::new(),
            status_code: 0,
            status_message: String::new(),
            service: "test".into(),
        }
    }

    pub(crate) fn with(mut s: SpanRecord, k: &str, v: impl Into<AttrValue>) -> SpanRecord {
        s.attributes.insert(k.into(), v.into());
        s
    }

    fn trace() -> Vec<SpanRecord> {
        vec![
            span("j", "", "job", 0.0, 20.0),
            span("s", "j", "stage", 0.0, 10.0),
            span("t1", "s", "task", 0.0, 10.0),
            span("r1", "t1", "read", 0.0, 2.0),
            // grid inside a window span, with an fft inside it and a nested grid that
            // must not count twice.
            span("w1", "t1", "window", 2.0, 9.0),
            span("g1", "w1", "grid", 2.0, 8.0),
            span("g1b", "g1", "grid", 3.0, 4.0),
            span("f1", "g1", "fft", 6.0, 7.5),
            span("x1", "t1", "write", 9.0, 10.0),
            span("t2", "s", "task", 1.0, 4.0),
            span("r2", "t2", "read", 1.0, 1.5),
            // A phase whose task span was lost: counts in the totals only.
            span("r3", "lost", "read", 5.0, 5.25),
        ]
    }

    #[test]
    fn phases_go_to_their_nearest_task() {
        let by = phases_by_task(&trace());
        let t1 = &by["t1"];
        assert_eq!(t1.len(), 4);
        assert!((t1["read"] - 2.0).abs() < 1e-9);
        assert!((t1["grid"] - 6.0).abs() < 1e-9);
        assert!((t1["fft"] - 1.5).abs() < 1e-9);
        assert!((t1["write"] - 1.0).abs() < 1e-9);
        assert!((by["t2"]["read"] - 0.5).abs() < 1e-9);
        assert_eq!(by.len(), 2);
    }

    #[test]
    fn totals_cover_every_phase_span_once_in_phase_order() {
        let t = phase_totals(&trace());
        let names: Vec<&str> = t.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["read", "grid", "fft", "write"]);
        assert!((t[0].seconds - 2.75).abs() < 1e-9);
        assert_eq!(t[0].spans, 3);
        assert!((t[1].seconds - 6.0).abs() < 1e-9);
        assert_eq!(t[1].spans, 1);
    }

    #[test]
    fn the_job_span_is_the_root_and_loops_do_not_hang() {
        let mut spans = trace();
        assert_eq!(job_span(&spans).map(|s| s.span_id.as_str()), Some("j"));
        // a ↔ b parent loop above a phase span.
        spans.push(span("a", "b", "window", 0.0, 1.0));
        spans.push(span("b", "a", "window", 0.0, 1.0));
        spans.push(span("p", "a", "grid", 0.0, 1.0));
        assert_eq!(phase_totals(&spans)[1].spans, 2);
    }
}
