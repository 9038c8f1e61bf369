//! The reduce task: sums the k partials of the level below into one tree node; and
//! [`read_root`], with which the one task that reads a tree's root sums its inputs.

use std::time::Instant;

use super::{Partial, TaskEnv, TaskError, TaskManifest};
use crate::plan::{Plan, Stage};

/// Reads `keys` and sums them, counting read and compute time in `m`.
async fn sum_of(
    env: &TaskEnv,
    keys: &[String],
    m: &mut TaskManifest,
) -> Result<Partial, TaskError> {
    let mut acc = Partial::default();
    for key in keys {
        let p = env.read_partial(key, m).await?;
        let t = Instant::now();
        tracing::info_span!("reduce", input = %key)
            .in_scope(|| acc.add(&p, &env.out.key_url(key)))?;
        m.compute_seconds += t.elapsed().as_secs_f64();
    }
    Ok(acc)
}

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
    let keys = env.plan.reduce_inputs(&r.tree, r.level, r.inputs, index);
    let acc = sum_of(env, &keys, m).await?;
    env.write_partial(&Plan::reduce_key(&r.tree, r.level, index), &acc, m)
        .await
}

/// The root of `tree` (`Plan::root_inputs`: the root object, or the root node's inputs
/// summed here) and what to call it in messages: the root's URL, or the URLs of its
/// inputs joined by " + ".
pub async fn read_root(
    env: &TaskEnv,
    tree: &str,
    m: &mut TaskManifest,
) -> Result<(Partial, String), TaskError> {
    let keys = env.plan.root_inputs(tree);
    let what = keys
        .iter()
        .map(|k| env.out.key_url(k))
        .collect::<Vec<_>>()
        .join(" + ");
    if let [key] = keys.as_slice() {
        return Ok((env.read_partial(key, m).await?, what));
    }
    Ok((sum_of(env, &keys, m).await?, what))
}
