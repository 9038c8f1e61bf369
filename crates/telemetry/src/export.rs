//! The OTLP span exporter aperture installs: OTLP/HTTP (blocking client) or OTLP/gRPC
//! (tonic on a private one-thread runtime, since the batch processor's thread has no
//! async runtime of its own), wrapped so that a dead collector costs one warning and
//! never a task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::TelemetryError;
use crate::config::{Protocol, TelemetryConfig};

/// Export failures seen by this process.
#[derive(Debug, Default)]
pub struct ExportHealth {
    warned: AtomicBool,
    failures: AtomicU64,
    exported: AtomicU64,
}

impl ExportHealth {
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }
}

/// Delegates to the OTLP exporter; reports the first failure on stderr (once per
/// process) and always returns success to the SDK, so the batch processor neither
/// retries nor logs again.
#[derive(Debug)]
pub(crate) struct WarnOnce<E> {
    inner: E,
    endpoint: String,
    health: Arc<ExportHealth>,
}

impl<E: SpanExporter> SpanExporter for WarnOnce<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        match self.inner.export(batch).await {
            Ok(()) => {
                self.health.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.health.failures.fetch_add(1, Ordering::Relaxed);
                if !self.health.warned.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "warning: trace export to {} failed ({e}); the run goes on and its spans are kept under diagnostics/ (further export failures are not reported)",
                        self.endpoint
                    );
                }
            }
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _ = self.inner.shutdown_with_timeout(timeout);
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _ = self.inner.force_flush();
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A tonic exporter driven by its own runtime: `export` runs on the batch processor's
/// plain thread, where tonic would otherwise find no reactor.
#[derive(Debug)]
pub(crate) struct OnRuntime<E> {
    rt: tokio::runtime::Runtime,
    inner: E,
}

impl<E: SpanExporter> SpanExporter for OnRuntime<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let r = if tokio::runtime::Handle::try_current().is_ok() {
            Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                "gRPC export called inside an async runtime".into(),
            ))
        } else {
            self.rt.block_on(self.inner.export(batch))
        };
        std::future::ready(r)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// One attempt per batch: the SDK's default policy retries a refused connection three
/// times with backoff, which made every short-lived worker wait ~0.9 s at exit when the
/// collector is down. A lost batch is still in diagnostics/.
fn no_retries() -> RetryPolicy {
    RetryPolicy::default().with_max_retries(0)
}

/// The exporter for `cfg.endpoint` (the caller checked it is set).
pub(crate) enum Exporter {
    Http(WarnOnce<opentelemetry_otlp::SpanExporter>),
    Grpc(WarnOnce<OnRuntime<opentelemetry_otlp::SpanExporter>>),
}

pub(crate) fn build(
    cfg: &TelemetryConfig,
    endpoint: &str,
    health: Arc<ExportHealth>,
) -> Result<Exporter, TelemetryError> {
    let fail = |e: &dyn std::fmt::Display| TelemetryError::Exporter {
        endpoint: endpoint.to_string(),
        reason: e.to_string(),
    };
    match cfg.protocol {
        Protocol::HttpProtobuf => {
            // reqwest's blocking client starts (and on drop stops) a runtime of its own,
            // which tokio forbids inside an async context: build it on a plain thread.
            let (ep, timeout) = (endpoint.to_string(), cfg.timeout);
            let inner = std::thread::spawn(move || {
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(ep)
                    .with_timeout(timeout)
                    .with_retry_policy(no_retries())
                    .build()
            })
            .join()
            .map_err(|_| fail(&"the exporter builder panicked"))?
            .map_err(|e| fail(&e))?;
            Ok(Exporter::Http(WarnOnce {
                inner,
                endpoint: endpoint.to_string(),
                health,
            }))
        }
        Protocol::Grpc => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-grpc")
                .enable_all()
                .build()
                .map_err(|e| fail(&e))?;
            let built = {
                let _g = rt.enter();
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .with_timeout(cfg.timeout)
                    .with_retry_policy(no_retries())
                    .build()
            };
            let inner = match built {
                Ok(e) => e,
                Err(e) => {
                    // Dropping a runtime inside an async context panics; this does not.
                    rt.shutdown_background();
                    return Err(fail(&e));
                }
            };
            Ok(Exporter::Grpc(WarnOnce {
                inner: OnRuntime { rt, inner },
                endpoint: endpoint.to_string(),
                health,
            }))
        }
    }
}
