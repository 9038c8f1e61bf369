//! The operator's HTTP server (axum): `/metrics` for Prometheus, `/healthz` for the
//! liveness probe and `/readyz` for the readiness probe.
//!
//! Probe semantics follow the Kubernetes documentation on liveness and readiness
//! probes (<https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/>):
//! `/healthz` answers 200 as long as the process serves requests; `/readyz` answers
//! 200 only while the controller runs (it has listed ImagingJobs) and leader election
//! works, else 503 with the reason (e.g. the RBAC permission the API server refused).
//! A missing permission therefore shows as a not-ready pod whose probe says why, not as
//! a crash loop.

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::leader::LeaderHandle;
use crate::metrics::Metrics;

/// Content type of the OpenMetrics text format, as Prometheus negotiates it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the handlers read.
#[derive(Clone, Debug)]
pub struct ServerState {
    /// The registry `/metrics` encodes.
    pub metrics: Arc<Metrics>,
    /// What `/readyz` reports.
    pub readiness: Readiness,
}

/// Whether the operator is ready, and if not why: the controller's state (set by
/// [`controller::run`](crate::controller::run)) and the last leader-election round's
/// problem (read from the [`LeaderHandle`]). Cheap to clone; clones share the state.
#[derive(Clone, Debug)]
pub struct Readiness {
    /// `Ok` while the controller runs; else why it does not.
    controller: Arc<Mutex<Result<(), String>>>,
    leader: LeaderHandle,
}

/// Why the controller is not running before it first tries.
pub const NOT_STARTED: &str =
    "the controller has not yet listed ImagingJobs (found the ImagingJob CRD) and started";

impl Readiness {
    /// Not ready until [`controller_running`](Self::controller_running).
    pub fn new(leader: LeaderHandle) -> Self {
        Self {
            controller: Arc::new(Mutex::new(Err(NOT_STARTED.into()))),
            leader,
        }
    }

    /// The controller watches and reconciles.
    pub fn controller_running(&self) {
        self.set_controller(Ok(()));
    }

    /// The controller does not run (yet, or any more), because of `reason`.
    pub fn controller_waiting(&self, reason: impl Into<String>) {
        self.set_controller(Err(reason.into()));
    }

    fn set_controller(&self, state: Result<(), String>) {
        if let Ok(mut c) = self.controller.lock() {
            *c = state;
        }
    }

    /// `Ok` when ready, else every reason it is not, one per line.
    pub fn check(&self) -> Result<(), String> {
        let mut reasons = Vec::new();
        match self.controller.lock() {
            Ok(c) => {
                if let Err(r) = &*c {
                    reasons.push(r.clone());
                }
            }
            Err(_) => reasons.push("the readiness state is poisoned".into()),
        }
        if let Some(p) = self.leader.problem() {
            reasons.push(format!("leader election fails: {p}"));
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("\n"))
        }
    }
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

async fn readyz(State(state): State<ServerState>) -> (StatusCode, String) {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leader::LeaseProblem;

    #[test]
    fn ready_only_while_the_controller_runs_and_leader_election_works() {
        let leader = LeaderHandle::new();
        let r = Readiness::new(leader.clone());
        assert_eq!(r.check(), Err(NOT_STARTED.to_string()));
        r.controller_running();
        assert_eq!(r.check(), Ok(()));
        leader.set_problem(Some(LeaseProblem {
            message: "Lease ns/l: create failed: 403 Forbidden".into(),
            forbidden: true,
        }));
        assert_eq!(
            r.check(),
            Err("leader election fails: Lease ns/l: create failed: 403 Forbidden".into())
        );
        r.controller_waiting("forbidden to list imagingjobs.aperture.dev");
        let both = r.check().unwrap_err();
        assert_eq!(both.lines().count(), 2, "{both}");
        leader.set_problem(None);
        r.controller_running();
        assert_eq!(r.check(), Ok(()));
    }
}
