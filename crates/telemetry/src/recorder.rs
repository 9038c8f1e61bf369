//! The span recorder: a span processor that keeps every finished span of this process
//! in memory (bounded), so each run can write its spans under `diagnostics/` whether or
//! not a collector is configured.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::record::SpanRecord;

/// Spans kept at most per process (a task has tens to a few thousand).
pub const MAX_RECORDED_SPANS: usize = 200_000;

#[derive(Debug, Default)]
struct Inner {
    spans: Vec<SpanRecord>,
    dropped: u64,
}

/// Shared handle to the recorded spans.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    service: Arc<str>,
}

impl Recorder {
    pub fn new(service: &str) -> Self {
        Self {
            inner: Arc::default(),
            service: service.into(),
        }
    }

    /// Removes and returns the spans recorded so far, and how many were dropped over
    /// the bound.
    pub fn take(&self) -> (Vec<SpanRecord>, u64) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped = std::mem::take(&mut g.dropped);
        (std::mem::take(&mut g.spans), dropped)
    }

    /// A copy of the spans recorded so far.
    pub fn snapshot(&self) -> Vec<SpanRecord> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.spans.clone()
    }
}

impl SpanProcessor for Recorder {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let rec = SpanRecord::from_span_data(&span, &self.service);
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if g.spans.len() < MAX_RECORDED_SPANS {
            g.spans.push(rec);
        } else {
            g.dropped += 1;
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, _resource: &Resource) {}
}
