//! Object keys under a job's output URL (DESIGN.md, "Storage"): every task's outputs
//! depend only on (stage, index), so re-running a task overwrites them with the same
//! bytes.

use super::{Plan, tree};

/// Key of the plan.
pub const PLAN_KEY: &str = "plan.json";
/// Visibilities written by a simulate stage.
pub const VIS_KEY: &str = "vis.zarr";
/// What the planner decided about a MeasurementSet import (the dataset's metadata and
/// the import manifest), read by the import stage.
pub const IMPORT_META_KEY: &str = "import/dataset.json";

impl Plan {
    /// Result manifest of a task: present = the task is done.
    pub fn manifest_key(stage: &str, index: u32) -> String {
        format!("tasks/{stage}/{index:05}.json")
    }

    /// The tree of cycle `c`.
    pub fn cycle_tree(cycle: u32) -> String {
        format!("cycles/{cycle:03}")
    }

    /// Output of map task `shard` feeding `tree`.
    pub fn partial_key(tree: &str, shard: u32) -> String {
        format!("{tree}/partial/{shard:05}.bin")
    }

    /// Output of node `index` at `level` of `tree`.
    pub fn reduce_key(tree: &str, level: u32, index: u32) -> String {
        format!("{tree}/reduce/{level}-{index:05}.bin")
    }

    /// Input keys of reduce node `index` of the stage with this reduce reference.
    pub fn reduce_inputs(&self, tree: &str, level: u32, inputs: u32, index: u32) -> Vec<String> {
        let k = self.spec.parallelism.reduction_fan_in;
        tree::node_inputs(index, inputs, k)
            .map(|i| {
                if level == 1 {
                    Self::partial_key(tree, i)
                } else {
                    Self::reduce_key(tree, level - 1, i)
                }
            })
            .collect()
    }

    /// The root of `tree`: the top reduce node, or the only partial.
    pub fn root_key(&self, tree: &str) -> String {
        let levels = tree::tree_levels(
            self.shards.len() as u32,
            self.spec.parallelism.reduction_fan_in,
        );
        if levels.is_empty() {
            Self::partial_key(tree, 0)
        } else {
            Self::reduce_key(tree, levels.len() as u32, 0)
        }
    }

    /// What makes the root of `tree`, summed by the task that reads it: the root itself
    /// when the plan has a stage for it (or the tree is one partial), else the at most
    /// fan-in inputs of the root node. The planner leaves the root's stage out of the
    /// trees that one task reads (each major cycle's), so that task sums the last level
    /// itself instead of waiting for one more process.
    pub fn root_inputs(&self, tree: &str) -> Vec<String> {
        let levels = tree::tree_levels(
            self.shards.len() as u32,
            self.spec.parallelism.reduction_fan_in,
        );
        let top = levels.len() as u32;
        let staged = self.stages.iter().any(|s| {
            s.reduce
                .as_ref()
                .is_some_and(|r| r.tree == tree && r.level == top)
        });
        if top == 0 || staged {
            return vec![self.root_key(tree)];
        }
        let below = if top == 1 {
            self.shards.len() as u32
        } else {
            levels[top as usize - 2]
        };
        self.reduce_inputs(tree, top, below, 0)
    }

    /// Model written by the deconvolve stage of `cycle`.
    pub fn model_key(cycle: u32) -> String {
        format!("cycles/{cycle:03}/model.bin")
    }

    /// Global (T) gain table solved in the deconvolve stage of `cycle`.
    pub fn global_gains_key(cycle: u32) -> String {
        format!("cycles/{cycle:03}/gains-T.json")
    }

    /// Per-window (G/B) gain tables solved by map task `shard` in `cycle`.
    pub fn shard_gains_key(cycle: u32, shard: u32) -> String {
        format!("cycles/{cycle:03}/gains/{shard:05}.json")
    }

    /// Name of the deconvolve stage of `cycle`.
    pub fn deconvolve_stage(cycle: u32) -> String {
        format!("deconvolve-{cycle:03}")
    }

    /// Name of the map stage of `cycle` (invert for 0, residual after).
    pub fn map_stage(cycle: u32) -> String {
        if cycle == 0 {
            "invert".into()
        } else {
            format!("residual-{cycle:03}")
        }
    }
}
