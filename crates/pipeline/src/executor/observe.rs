//! Observing a job from storage: the result manifests present are the tasks done.

use crate::plan::{Plan, TaskKind};
use crate::state::Observed;
use crate::storage::{StorageError, Store};
use crate::tasks::TaskManifest;

/// Succeeded tasks (and deconvolution outcomes) as the manifests in `out` record them.
pub async fn observe(
    plan: &Plan,
    out: &Store,
) -> Result<(Observed, Vec<TaskManifest>), StorageError> {
    let mut obs = Observed::default();
    let mut manifests = Vec::new();
    for key in out.list("tasks/").await? {
        let Some(rest) = key.strip_prefix("tasks/") else {
            continue;
        };
        let Some((stage, file)) = rest.split_once('/') else {
            continue;
        };
        let Some(idx) = file
            .strip_suffix(".json")
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(st) = plan.stage(stage) else {
            continue;
        };
        if idx >= st.tasks {
            continue;
        }
        let m: TaskManifest = out.get_json(&key).await?;
        let o = obs.stage_mut(stage);
        o.succeeded.insert(idx);
        if st.kind == TaskKind::Deconvolve {
            o.converged = m.result.get("converged").and_then(|v| v.as_bool());
        }
        manifests.push(m);
    }
    Ok((obs, manifests))
}
