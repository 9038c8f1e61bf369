//! The operator's HTTP server (axum): `/metrics` for Prometheus, `/healthz` for the
//! liveness probe and `/readyz` for the readiness probe.
//!
//! Probe semantics follow the Kubernetes documentation on liveness and readiness
//! probes (<https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/>):
//! `/healthz` answers 200 as long as the process serves requests; `/readyz` answers
//! 200 only once the controller has found the CRD and started, 503 before.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Content type of the OpenMetrics text format, as Prometheus negotiates it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the handlers read.
#[derive(Clone, Debug)]
pub struct ServerState {
    /// The registry `/metrics` encodes.
    pub metrics: Arc<Metrics>,
    /// Set by the controller once it has found the CRD and started.
    pub ready: Arc<AtomicBool>,
}

/// The routes, without a listener (for embedding or in-process tests).
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serve the routes on `listener` until `shutdown` resolves, then stop accepting
/// connections and finish the open ones (axum's graceful shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ServerState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the controller has not yet found the ImagingJob CRD and started",
        )
    }
}
