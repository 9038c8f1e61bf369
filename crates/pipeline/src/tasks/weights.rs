//! The weights task: the uv-cell density of a shard's windows, summed by a tree into the
//! global density that uniform and Briggs weighting need.

use std::time::Instant;

use aperture_imaging::weighting::{UvDensity, UvGrid};

use super::common::{kernel, read_window};
use super::{Partial, TaskEnv, TaskError, TaskManifest};
use crate::plan::{Plan, Stage};

pub const DENSITY: &str = "density";

pub async fn run(
    env: &TaskEnv,
    st: &Stage,
    index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let geom = env.geometry()?;
    let grid = UvGrid::for_image(&geom).map_err(|e| kernel("uv grid", e))?;
    let mut density = UvDensity::zeros(grid);
    let ds = env.dataset().await?;
    for w in env.plan.shards[index as usize].window_range() {
        let block = read_window(&ds, w, m).await?;
        let t = Instant::now();
        density
            .accumulate(&block)
            .map_err(|e| kernel(&format!("window {w}"), e))?;
        m.compute_seconds += t.elapsed().as_secs_f64();
        m.windows += 1;
        m.visibilities += block.n_vis() as u64;
    }
    let (_, density_vu) = density.into_parts();
    let mut p = Partial::default();
    p.arrays.insert(DENSITY.into(), density_vu);
    let tree = st.tree.clone().unwrap_or_else(|| "weights".into());
    env.write_partial(&Plan::partial_key(&tree, index), &p, m)
        .await
}

/// The global density (root of the weights tree), if the plan has one.
pub async fn global_density(
    env: &TaskEnv,
    m: &mut TaskManifest,
) -> Result<Option<UvDensity>, TaskError> {
    if env.plan.stage("weights").is_none() {
        return Ok(None);
    }
    let key = env.plan.root_key("weights");
    let mut p = env.read_partial(&key, m).await?;
    let geom = env.geometry()?;
    let grid = UvGrid::for_image(&geom).map_err(|e| kernel("uv grid", e))?;
    p.array(DENSITY, &env.out.key_url(&key))?;
    // Taken, not copied: the density is as large as an image.
    let d = p.arrays.remove(DENSITY).unwrap_or_default();
    UvDensity::from_parts(grid, d)
        .map(Some)
        .map_err(|e| TaskError::corrupt(&env.out.key_url(&key), e.to_string()))
}
