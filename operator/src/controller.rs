//! Running the controller: wait until ImagingJobs can be listed (the CRD is installed and
//! RBAC allows it), then watch ImagingJobs and the stage Jobs they own and reconcile
//! each change, until shutdown.
//!
//! A missing CRD or permission is not a crash: the operator keeps serving its probes,
//! `/readyz` answers 503 naming what the API server refused, the log says it at every
//! retry, and the list is retried with capped exponential backoff (1 s doubling to 60 s,
//! like client-go's reflector backoff) until it works; then the controller starts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aperture_pipeline::spec::ImagingJob;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use kube::runtime::controller::{self, Controller};
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::cluster::Cluster;
use crate::context::State;
use crate::error::kube_message;
use crate::reconcile::{error_policy, reconcile};

/// First wait before listing ImagingJobs again.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two tries.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// Why the controller cannot start (yet).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the ImagingJob CRD (imagingjobs.aperture.dev) is not installed in this cluster; \
         install it with `kubectl apply -f crds/imagingjob.yaml` (or the Helm chart)"
    )]
    CrdMissing,
    /// RBAC: the ServiceAccount may not list ImagingJobs.
    #[error(
        "forbidden to list imagingjobs.aperture.dev{scope}: the operator's ServiceAccount \
         needs list and watch on imagingjobs (the Helm chart's Role): {}",
        kube_message(.source)
    )]
    Forbidden {
        scope: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot list ImagingJobs{scope}: {}", kube_message(.source))]
    Api {
        scope: String,
        #[source]
        source: kube::Error,
    },
}

/// Lists ImagingJobs once: `Ok` when the CRD is installed and readable.
pub async fn check_crd(client: &Client, namespace: Option<&str>) -> Result<(), StartError> {
    let api: Api<ImagingJob> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let scope = || {
        namespace
            .map(|n| format!(" in namespace {n}"))
            .unwrap_or_default()
    };
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(StartError::CrdMissing),
        Err(kube::Error::Api(e)) if e.code == 403 => Err(StartError::Forbidden {
            scope: scope(),
            source: kube::Error::Api(e),
        }),
        Err(source) => Err(StartError::Api {
            scope: scope(),
            source,
        }),
    }
}

/// The waits between tries: `RETRY_FIRST`, doubling, capped at `RETRY_MAX`.
pub fn retry_delays() -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(RETRY_FIRST), |d| Some((*d * 2).min(RETRY_MAX)))
}

/// Lists ImagingJobs until it works (`true`) or `shutdown` resolves first (`false`),
/// waiting `delays` between tries. Each failure is logged and made `/readyz`'s reason.
pub async fn wait_for_crd(
    client: &Client,
    namespace: Option<&str>,
    state: &State,
    mut delays: impl Iterator<Item = Duration>,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let mut shutdown = std::pin::pin!(shutdown);
    for attempt in 1u64.. {
        let error = tokio::select! {
            biased;
            () = &mut shutdown => return false,
            r = check_crd(client, namespace) => match r {
                Ok(()) => return true,
                Err(e) => e,
            },
        };
        let wait = delays.next().unwrap_or(RETRY_MAX);
        tracing::error!(attempt, retry_in = ?wait, "{error}");
        state
            .readiness
            .controller_waiting(format!("{error} (attempt {attempt}; retrying in {wait:?})"));
        tokio::select! {
            biased;
            () = &mut shutdown => return false,
            () = tokio::time::sleep(wait) => {}
        }
    }
    false
}

/// Waits for the CRD, then watches and reconciles until `shutdown` resolves.
pub async fn run(
    client: Client,
    state: State,
    namespace: Option<String>,
    instance: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    if !wait_for_crd(
        &client,
        namespace.as_deref(),
        &state,
        retry_delays(),
        shutdown.clone(),
    )
    .await
    {
        tracing::info!("shut down before the controller started");
        return;
    }
    let (jobs, stage_jobs): (Api<ImagingJob>, Api<Job>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let ctx = state.to_context(Cluster::new(client, instance));
    state.readiness.controller_running();
    tracing::info!(
        scope = namespace.as_deref().unwrap_or("cluster"),
        "controller started"
    );
    Controller::new(jobs, watcher::Config::default().any_semantic())
        .owns(
            stage_jobs,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=aperture-operator"),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::clone(&ctx))
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(job = %obj.name, "reconciled"),
                // A watch that fails (RBAC revoked, API server away) is retried by the
                // watcher's own backoff; say so where an operator looks.
                Err(controller::Error::QueueError(e)) => {
                    tracing::warn!("watch failed, retrying with backoff: {e}");
                }
                Err(e) => tracing::debug!("reconcile error: {e}"),
            }
        })
        .await;
    state
        .readiness
        .controller_waiting("the controller has stopped");
    tracing::info!("controller stopped");
}
