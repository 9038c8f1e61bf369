//! Which `tracing` spans become OpenTelemetry spans: aperture's INFO spans (stage, task,
//! window, read/write, weights, solve, reduce, gridder calls) always; its DEBUG spans
//! (per-w-plane grid / FFT / w-screen / degrid phases) up to a per-process budget, so a
//! task over thousands of windows cannot turn its trace into gigabytes. Never TRACE spans
//! (per-row FFT passes), and events only at WARN and ERROR.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, Filter};

/// Default DEBUG-span budget of one process (`APERTURE_TRACE_PHASE_SPANS`).
pub const DEFAULT_PHASE_SPANS: u64 = 5_000;

/// The per-process phase-span budget and what it turned away.
#[derive(Debug)]
pub struct PhaseBudget {
    remaining: AtomicU64,
    dropped: AtomicU64,
}

impl PhaseBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicU64::new(limit),
            dropped: AtomicU64::new(0),
        })
    }

    /// DEBUG spans not recorded because the budget was spent.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn take(&self) -> bool {
        let ok = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
            .is_ok();
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}

fn ours(m: &Metadata<'_>) -> bool {
    m.target().starts_with("aperture")
}

/// The per-layer filter of the OpenTelemetry layer.
#[derive(Debug, Clone)]
pub struct SpanFilter(pub Arc<PhaseBudget>);

impl<S> Filter<S> for SpanFilter {
    fn enabled(&self, m: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        if !ours(m) {
            return false;
        }
        if !m.is_span() {
            return *m.level() <= Level::WARN;
        }
        match *m.level() {
            Level::TRACE => false,
            Level::DEBUG => self.0.take(),
            _ => true,
        }
    }

    fn callsite_enabled(&self, m: &'static Metadata<'static>) -> Interest {
        if !ours(m) || (m.is_span() && *m.level() == Level::TRACE) {
            Interest::never()
        } else if m.is_span() && *m.level() == Level::DEBUG {
            // Decided per span: the budget changes.
            Interest::sometimes()
        } else if !m.is_span() && *m.level() > Level::WARN {
            Interest::never()
        } else {
            Interest::always()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_down_and_then_drops() {
        let b = PhaseBudget::new(2);
        assert!(b.take() && b.take());
        assert!(!b.take() && !b.take());
        assert_eq!(b.dropped(), 2);
    }
}
