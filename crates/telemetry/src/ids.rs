//! Trace identity of a job: the trace id derived from the job's identity, fixed span
//! ids for the job and stage spans (so a resumed run, the operator and every worker agree
//! on them without coordination), and W3C Trace Context `traceparent` strings
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>).

use std::cell::Cell;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use sha2::{Digest, Sha256};

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

/// The trace id of the job identified by `key` (a Kubernetes uid, or the plan's run id).
pub fn trace_id_for(key: &str) -> TraceId {
    let d = digest(&["aperture-trace", key]);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    if b == [0; 16] {
        b[15] = 1;
    }
    TraceId::from_bytes(b)
}

/// The span id of the span called `name` ("job", or a stage name) in trace `trace`.
pub fn span_id_for(trace: TraceId, name: &str) -> SpanId {
    let d = digest(&["aperture-span", &trace.to_string(), name]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    if b == [0; 8] {
        b[7] = 1;
    }
    SpanId::from_bytes(b)
}

/// Name of the job span in [`span_id_for`].
pub const JOB_SPAN: &str = "job";

/// `00-<trace>-<span>-01` (version 00, sampled).
pub fn traceparent(trace: TraceId, span: SpanId) -> String {
    format!("00-{trace}-{span}-01")
}

/// The `traceparent` the tasks of `stage` get: their parent is the stage span.
pub fn stage_traceparent(trace_key: &str, stage: &str) -> String {
    let t = trace_id_for(trace_key);
    traceparent(t, span_id_for(t, stage))
}

/// Parses a version-00 `traceparent`; `None` for anything malformed (the spec says
/// to ignore such a header and start a new trace).
pub fn parse_traceparent(s: &str) -> Option<SpanContext> {
    let mut it = s.trim().split('-');
    let (v, t, p, f) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || v != "00" || t.len() != 32 || p.len() != 16 || f.len() != 2 {
        return None;
    }
    let lower_hex = |x: &str| {
        x.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    };
    if !(lower_hex(t) && lower_hex(p) && lower_hex(f)) {
        return None;
    }
    let trace = TraceId::from_hex(t).ok()?;
    let span = SpanId::from_hex(p).ok()?;
    let flags = u8::from_str_radix(f, 16).ok()?;
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// An OpenTelemetry context whose (remote) parent is `traceparent`.
pub fn remote_context(traceparent: &str) -> Option<opentelemetry::Context> {
    parse_traceparent(traceparent)
        .map(|sc| opentelemetry::Context::new().with_remote_span_context(sc))
}

thread_local! {
    static NEXT_IDS: Cell<(Option<TraceId>, Option<SpanId>)> = const { Cell::new((None, None)) };
}

/// Random ids, except for the next span started on this thread inside
/// [`with_fixed_ids`]: the SDK's span builder ignores a caller's span id, and the job
/// and stage spans need theirs fixed.
#[derive(Debug, Default)]
pub struct FixedIdGenerator {
    random: RandomIdGenerator,
}

impl IdGenerator for FixedIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS
            .with(|c| {
                let (t, s) = c.get();
                c.set((None, s));
                t
            })
            .unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_IDS
            .with(|c| {
                let (t, s) = c.get();
                c.set((t, None));
                s
            })
            .unwrap_or_else(|| self.random.new_span_id())
    }
}

/// Runs `f` (which starts exactly one span) so that span gets `span` as its id and, when
/// it has no parent, `trace` as its trace id.
pub fn with_fixed_ids<R>(trace: TraceId, span: SpanId, f: impl FnOnce() -> R) -> R {
    NEXT_IDS.with(|c| c.set((Some(trace), Some(span))));
    let r = f();
    NEXT_IDS.with(|c| c.set((None, None)));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_valid() {
        let t = trace_id_for("uid-1");
        assert_eq!(t, trace_id_for("uid-1"));
        assert_ne!(t, trace_id_for("uid-2"));
        assert_ne!(span_id_for(t, "job"), span_id_for(t, "invert"));
        let tp = stage_traceparent("uid-1", "invert");
        let sc = parse_traceparent(&tp).unwrap();
        assert_eq!(sc.trace_id(), t);
        assert_eq!(sc.span_id(), span_id_for(t, "invert"));
        assert!(sc.is_sampled() && sc.is_remote());
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "00-zzf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
        assert!(
            parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_some()
        );
    }

    #[test]
    fn fixed_ids_apply_to_one_span_only() {
        let g = FixedIdGenerator::default();
        let (t, s) = (trace_id_for("x"), span_id_for(trace_id_for("x"), "job"));
        with_fixed_ids(t, s, || {
            assert_eq!(g.new_trace_id(), t);
            assert_eq!(g.new_span_id(), s);
            assert_ne!(g.new_span_id(), s);
        });
        assert_ne!(g.new_span_id(), s);
    }
}
