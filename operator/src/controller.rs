//! Running the controller: check the CRD is installed, then watch ImagingJobs and the
//! stage Jobs they own and reconcile each change, until a shutdown signal.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use aperture_pipeline::spec::ImagingJob;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::cluster::Cluster;
use crate::context::State;
use crate::reconcile::{error_policy, reconcile};

/// Why the controller cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the ImagingJob CRD (imagingjobs.aperture.dev) is not installed in this cluster; \
         install it with `kubectl apply -f crds/imagingjob.yaml` (or the Helm chart) and restart"
    )]
    CrdMissing,
    #[error("cannot list ImagingJobs{scope}: {source}")]
    Api {
        scope: String,
        #[source]
        source: kube::Error,
    },
}

/// Fails with a clear message when the CRD is not installed (or not readable).
pub async fn check_crd(client: &Client, namespace: Option<&str>) -> Result<(), StartError> {
    let api: Api<ImagingJob> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(StartError::CrdMissing),
        Err(source) => Err(StartError::Api {
            scope: namespace
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default(),
            source,
        }),
    }
}

/// Watches and reconciles until `shutdown` resolves (or SIGTERM/Ctrl-C).
pub async fn run(
    client: Client,
    state: State,
    namespace: Option<String>,
    instance: Option<String>,
) -> Result<(), StartError> {
    check_crd(&client, namespace.as_deref()).await?;
    let (jobs, stage_jobs): (Api<ImagingJob>, Api<Job>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let ctx = state.to_context(Cluster::new(client, instance));
    state.ready.store(true, Ordering::SeqCst);
    tracing::info!(
        scope = namespace.as_deref().unwrap_or("cluster"),
        "controller started"
    );
    Controller::new(jobs, watcher::Config::default().any_semantic())
        .owns(
            stage_jobs,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=aperture-operator"),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, Arc::clone(&ctx))
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(job = %obj.name, "reconciled"),
                Err(e) => tracing::debug!("reconcile error: {e}"),
            }
        })
        .await;
    state.ready.store(false, Ordering::SeqCst);
    tracing::info!("controller stopped");
    Ok(())
}
