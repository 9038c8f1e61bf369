//! The reduce task: sums the k partials of the level below into one tree node.

use std::time::Instant;

use super::{Partial, TaskEnv, TaskError, TaskManifest};
use crate::plan::{Plan, Stage};

pub async fn run(
    env: &TaskEnv,
    st: &Stage,
    index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let r = st
        .reduce
        .as_ref()
        .ok_or_else(|| TaskError::Permanent(format!("stage {} is not a reduce stage", st.name)))?;
    let mut acc = Partial::default();
    for key in env.plan.reduce_inputs(&r.tree, r.level, r.inputs, index) {
        let p = env.read_partial(&key, m).await?;
        let t = Instant::now();
        tracing::info_span!("reduce", input = %key)
            .in_scope(|| acc.add(&p, &env.out.key_url(&key)))?;
        m.compute_seconds += t.elapsed().as_secs_f64();
    }
    env.write_partial(&Plan::reduce_key(&r.tree, r.level, index), &acc, m)
        .await
}
