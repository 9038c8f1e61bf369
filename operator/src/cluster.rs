//! The Kubernetes-facing side of the controller, as one small client wrapper: every API
//! call a reconcile makes goes through [`Cluster`], so a mocked API server (tests) and a
//! real one drive exactly the same code.

use std::collections::BTreeMap;

use aperture_pipeline::spec::{ImagingJob, ImagingJobStatus};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::error::{Error, Result};
use crate::jobs::LABEL_JOB;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "aperture-operator";

/// A kube client plus an event recorder.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    recorder: Recorder,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// `instance` names this replica in the events it publishes.
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The ImagingJob API of one namespace.
    pub fn imaging_jobs(&self, ns: &str) -> Api<ImagingJob> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The stage Jobs of ImagingJob `name` (uid `uid`) in `ns`: those labelled with its
    /// name and owned by exactly this object (a re-created job of the same name does not
    /// see its predecessor's Jobs).
    pub async fn stage_jobs(&self, ns: &str, name: &str, uid: &str) -> Result<Vec<Job>> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let lp = ListParams::default().labels(&format!("{LABEL_JOB}={name}"));
        let jobs = api.list(&lp).await?;
        Ok(jobs
            .items
            .into_iter()
            .filter(|j| j.owner_references().iter().any(|o| o.uid == uid))
            .collect())
    }

    /// Creates or updates a stage Job by server-side apply (idempotent).
    pub async fn apply_job(&self, ns: &str, job: &Job) -> Result<Job> {
        let name = job
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingField("stage Job metadata.name"))?;
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        Ok(api.patch(&name, &pp, &Patch::Apply(job)).await?)
    }

    /// Deletes a stage Job and (in the background) its pods. A Job already gone is
    /// not an error.
    pub async fn delete_job(&self, ns: &str, name: &str) -> Result<()> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The data of Secret `name` in `ns` (string values), or `None` when it does not
    /// exist.
    pub async fn secret_data(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let Some(secret) = api.get_opt(name).await? else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        for (k, v) in secret.data.unwrap_or_default() {
            out.insert(k, String::from_utf8_lossy(&v.0).into_owned());
        }
        for (k, v) in secret.string_data.unwrap_or_default() {
            out.insert(k, v);
        }
        Ok(Some(out))
    }

    /// The termination message of the most recently failed pod of stage Job `job`
    /// (the worker's last stderr lines: `terminationMessagePolicy: FallbackToLogsOnError`).
    pub async fn failed_pod_message(&self, ns: &str, job: &str) -> Result<Option<String>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let lp = ListParams::default()
            .labels(&format!("batch.kubernetes.io/job-name={job}"))
            .fields("status.phase=Failed");
        let pods = api.list(&lp).await?;
        let mut best: Option<(String, String)> = None;
        for pod in pods.items {
            for cs in pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
            {
                let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
                    continue;
                };
                let when = t
                    .finished_at
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                let msg = match (&t.message, &t.reason) {
                    (Some(m), _) if !m.trim().is_empty() => {
                        format!("exit code {}: {}", t.exit_code, m.trim())
                    }
                    (_, Some(r)) => format!("exit code {} ({r})", t.exit_code),
                    _ => format!("exit code {}", t.exit_code),
                };
                if best.as_ref().is_none_or(|(w, _)| when > *w) {
                    best = Some((when, msg));
                }
            }
        }
        Ok(best.map(|(_, m)| m))
    }

    /// Replaces the status of an ImagingJob by server-side apply on the status
    /// subresource (fields the operator stops setting are removed). A `403` is
    /// [`Error::StatusForbidden`].
    pub async fn apply_status(
        &self,
        ns: &str,
        name: &str,
        status: &ImagingJobStatus,
    ) -> Result<()> {
        let api = self.imaging_jobs(ns);
        let body = json!({
            "apiVersion": ImagingJob::api_version(&()),
            "kind": ImagingJob::kind(&()),
            "status": status,
        });
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch_status(name, &pp, &Patch::Apply(&body)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 403 => {
                Err(Error::StatusForbidden(kube::Error::Api(s)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes a Kubernetes Event about `job`. Events are best effort: a refused
    /// event is logged, never fails the reconcile.
    pub async fn event(&self, job: &ImagingJob, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &job.object_ref(&())).await {
            tracing::warn!(job = %job.name_any(), reason, "event not published: {e}");
        }
    }
}

/// At most `max` bytes, cut at a character boundary, with an ellipsis when cut.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = max.saturating_sub(3);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str("...");
    s
}
