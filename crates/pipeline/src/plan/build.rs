//! Building the stage DAG of each pipeline (DESIGN.md, "Stages of each pipeline").

use aperture_imaging::SPEED_OF_LIGHT;
use aperture_imaging::gridder::Request;
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::sim::advise::{AdviceParams, advise_wide_field};
use sha2::{Digest, Sha256};

use super::cost::{CostEstimate, estimate_window};
use super::shards::{WindowCosts, balance_shards};
use super::tree::tree_levels;
use super::{
    InputFacts, PLAN_FORMAT, PLAN_VERSION, Plan, PlanError, PlannedImage, ReduceRef, Stage,
    TaskKind,
};
use crate::spec::{CleanAlgorithm, ImagingJobSpec, PipelineKind, PrecisionSpec, WeightingKind};

/// Where the job reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    pub job: String,
    pub output: String,
    pub visibilities: String,
}

/// The stage that reads a MeasurementSet input into `<output>/vis.zarr`, one task per
/// shard, and the one-task stage that commits the dataset after it.
pub const IMPORT_STAGE: &str = "import";
pub const IMPORT_COMMIT_STAGE: &str = "import-commit";
/// The tree that sums the shards' uv densities (uniform and robust weighting).
pub const WEIGHTS_TREE: &str = "weights";

/// Largest half-extent of an auto-sized image, radians (sin 30°).
const MAX_AUTO_HALF_EXTENT: f64 = 0.5;
/// At most this many windows get their own cost estimate; others are interpolated.
const COST_SAMPLES: u32 = 64;
/// A job is split over more workers only while each map task keeps at least this many
/// estimated seconds: twenty times a local task's fixed cost (~12 ms to spawn the
/// worker, read the plan and write the manifest), so that cost stays under 5 %. Below
/// `targetTaskSeconds` a small job is still worth spreading: two 0.8 s tasks finish in
/// half the wall time of one 1.6 s task.
const MIN_SPLIT_TASK_SECONDS: f64 = 0.25;
/// Default memory budget of one worker, MiB.
const DEFAULT_MEMORY_MIB: u64 = 4096;

/// The memory budget of one worker task, MiB, and the field it comes from:
/// `spec.parallelism.workerMemoryMib`, else the worker pods' memory limit
/// (`spec.workers.resources.limits.memory`), else 4096.
fn memory_budget(spec: &ImagingJobSpec) -> Result<(u64, &'static str), PlanError> {
    if let Some(m) = spec.parallelism.worker_memory_mib {
        return Ok((m, "spec.parallelism.workerMemoryMib"));
    }
    let field = "spec.workers.resources.limits.memory";
    let limit = spec
        .workers
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"));
    match limit {
        Some(q) => {
            let bytes = parse_quantity(&q.0).ok_or_else(|| PlanError::Resources {
                field: field.into(),
                reason: format!(
                    "{:?} is not a Kubernetes memory quantity (e.g. 4Gi, 512Mi)",
                    q.0
                ),
            })?;
            Ok(((bytes / (1024.0 * 1024.0)).floor() as u64, field))
        }
        None => Ok((DEFAULT_MEMORY_MIB, "spec.parallelism.workerMemoryMib")),
    }
}

/// Bytes of a Kubernetes quantity: a decimal number with an optional binary (Ki, Mi,
/// Gi, Ti, Pi, Ei), decimal (k, M, G, T, P, E, m) or exponent (e3, E6) suffix.
pub(crate) fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let value: f64 = num.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    let bytes = value * scale;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes)
}

/// Digest of the spec's canonical JSON.
pub fn spec_digest(spec: &ImagingJobSpec) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    let d = Sha256::digest(&json);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn geometry(spec: &ImagingJobSpec, f: &InputFacts) -> Result<ImageGeometry, PlanError> {
    let im = &spec.image;
    let kmax = f.freq_max_hz / SPEED_OF_LIGHT;
    let advice = advise_wide_field(
        f.max_uv_m * kmax,
        f.max_w_m * kmax,
        f.station_diameter_m.max(1.0),
        SPEED_OF_LIGHT / f.freq_min_hz,
        &AdviceParams::default(),
    )
    .map_err(|e| PlanError::input("spec.image", format!("cannot advise an image size: {e}")))?;
    let cell = im
        .cellsize_arcsec
        .map(|a| (a / 3600.0).to_radians())
        .unwrap_or(advice.cell_rad);
    let npix = match im.npixel.value() {
        Some(n) => n as usize,
        None => {
            let fov = advice.image_fov_rad.min(2.0 * MAX_AUTO_HALF_EXTENT);
            let n = ((fov / cell).ceil() as usize).max(16);
            aperture_imaging::sim::advise::good_fft_size_235(n)
        }
    };
    if npix as f64 * cell / 2.0 >= 1.0 {
        return Err(PlanError::input(
            "spec.image.npixel",
            format!("{npix} pixels of {cell:e} rad reach beyond the horizon"),
        ));
    }
    let fref = 0.5 * (f.freq_min_hz + f.freq_max_hz);
    ImageGeometry::square(
        npix,
        cell,
        f.phase_centre,
        fref,
        f.freq_max_hz - f.freq_min_hz,
    )
    .map_err(|e| PlanError::input("spec.image", e.to_string()))
}

/// Per-window invert cost, split into gridding and per-call plane parts, sampled at
/// most [`COST_SAMPLES`] times and interpolated; and the estimate with the largest grid.
fn window_costs(
    f: &InputFacts,
    geom: &ImageGeometry,
    req: &Request,
) -> Result<(Vec<(f64, f64)>, CostEstimate), PlanError> {
    let n = f.nwindows;
    let samples: Vec<u32> = if n <= COST_SAMPLES {
        (0..n).collect()
    } else {
        (0..COST_SAMPLES)
            .map(|i| ((u64::from(i) * u64::from(n - 1)) / u64::from(COST_SAMPLES - 1)) as u32)
            .collect()
    };
    let mut est = Vec::with_capacity(samples.len());
    for &w in &samples {
        est.push((w, estimate_window(f, geom, req, w)?));
    }
    let worst = est
        .iter()
        .map(|(_, e)| *e)
        .max_by(|a, b| a.grid_bytes.cmp(&b.grid_bytes))
        .ok_or_else(|| PlanError::input("spec.input", "no frequency windows"))?;
    let mut costs = Vec::with_capacity(n as usize);
    let mut j = 0usize;
    for w in 0..n {
        while j + 1 < est.len() && est[j + 1].0 <= w {
            j += 1;
        }
        let (w0, e0) = est[j];
        let c = if let Some(&(w1, e1)) = est.get(j + 1) {
            let t = f64::from(w - w0) / f64::from(w1 - w0);
            (
                e0.gridding_seconds + t * (e1.gridding_seconds - e0.gridding_seconds),
                e0.plane_seconds + t * (e1.plane_seconds - e0.plane_seconds),
            )
        } else {
            (e0.gridding_seconds, e0.plane_seconds)
        };
        costs.push(c);
    }
    Ok((costs, worst))
}

/// Windows a map task images per gridder call, as `tasks::map` batches them: one when
/// each window carries its own Taylor-term model (nmoment > 1), else as many as fit
/// its batch budget (at least one).
fn windows_per_batch(facts: &InputFacts, worst: &CostEstimate, npix: u64, nmom: u64) -> usize {
    if nmom > 1 {
        return 1;
    }
    let budget = crate::tasks::batch_budget_for(worst.grid_bytes, facts.window_bytes(), npix, 1);
    let block = crate::tasks::block_bytes_for(
        facts.rows() * u64::from(facts.channels_per_window),
        facts.rows(),
    );
    usize::try_from(budget / block.max(1))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Plans `spec` over input `facts`.
pub fn make_plan(
    spec: &ImagingJobSpec,
    facts: &InputFacts,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    if facts.nwindows == 0 || facts.rows() == 0 {
        return Err(PlanError::input(
            "spec.input",
            "the input has no frequency windows or no rows",
        ));
    }
    let geom = geometry(spec, facts)?;
    let req = Request {
        epsilon: spec.image.epsilon,
        double: spec.image.precision == PrecisionSpec::Double,
        wstacking: true,
    };
    let (invert_w, worst) = window_costs(facts, &geom, &req)?;
    let pipeline = spec.pipeline;
    let nmom = match spec.deconvolution.algorithm {
        CleanAlgorithm::Msmfs => spec.deconvolution.nmoment as u64,
        _ => 1,
    };
    // Residual passes predict and invert: twice the gridding.
    let map_factor = match pipeline {
        PipelineKind::Continuum | PipelineKind::Ical => 2.0,
        _ => 1.0,
    };
    let map_w = WindowCosts {
        gridding_w: invert_w.iter().map(|c| c.0 * map_factor).collect(),
        planes_w: invert_w.iter().map(|c| c.1 * map_factor).collect(),
        per_batch: windows_per_batch(facts, &worst, geom.npix_x as u64, nmom),
    };
    // The whole job's map work, batched as one task would batch it.
    let total = map_w.shard_seconds(0..invert_w.len());
    let par = &spec.parallelism;
    let by_target = (total / par.target_task_seconds).ceil() as usize;
    // Use every worker while map tasks stay above MIN_SPLIT_TASK_SECONDS.
    let by_workers =
        (par.max_parallel as usize).min((total / MIN_SPLIT_TASK_SECONDS).floor() as usize);
    let shards = match par.windows_per_shard {
        Some(n) => fixed_shards(&map_w, n.max(1) as usize),
        None => balance_shards(
            &map_w,
            by_target.max(by_workers).clamp(1, facts.nwindows as usize),
        ),
    };

    let npix2 = (geom.npix_x * geom.npix_y) as u64;
    let image_bytes = npix2 * 8 * (3 * nmom + 2);
    let memory = worst.grid_bytes + image_bytes + facts.window_bytes();
    let (budget_mib, budget_field) = memory_budget(spec)?;
    if memory > budget_mib * 1024 * 1024 {
        return Err(PlanError::Resources {
            field: budget_field.into(),
            reason: format!(
                "one task needs about {} MiB (grid {} MiB + images {} MiB + one window {} MiB) \
                 but the budget is {budget_mib} MiB; give more memory or a smaller image",
                memory >> 20,
                worst.grid_bytes >> 20,
                image_bytes >> 20,
                facts.window_bytes() >> 20
            ),
        });
    }
    let shard_s = shards.iter().map(|s| s.est_seconds).fold(0.0, f64::max);
    let mut stages = Vec::new();
    let push = |stages: &mut Vec<Stage>, s: Stage| stages.push(s);
    let mut first_deps: Vec<String> = Vec::new();
    if spec.input.simulate.is_some() {
        push(
            &mut stages,
            Stage {
                name: "simulate".into(),
                kind: TaskKind::Simulate,
                tasks: shards.len() as u32,
                deps: vec![],
                cycle: 0,
                tree: None,
                reduce: None,
                skippable: false,
                est_task_seconds: shard_s / map_factor,
            },
        );
        first_deps.push("simulate".into());
    }
    if spec.input.measurement_set.is_some() {
        // One import task per shard, reading its windows from the MS (at ~100 MB/s of
        // in-memory blocks, a rough figure), then one task that commits the dataset.
        let most = shards.iter().map(|s| s.windows).max().unwrap_or(1);
        push(
            &mut stages,
            Stage {
                name: IMPORT_STAGE.into(),
                kind: TaskKind::Import,
                tasks: shards.len() as u32,
                deps: vec![],
                cycle: 0,
                tree: None,
                reduce: None,
                skippable: false,
                est_task_seconds: 1e-8 * (facts.window_bytes() * u64::from(most)) as f64,
            },
        );
        push(
            &mut stages,
            Stage {
                name: IMPORT_COMMIT_STAGE.into(),
                kind: TaskKind::ImportCommit,
                tasks: 1,
                deps: vec![IMPORT_STAGE.into()],
                cycle: 0,
                tree: None,
                reduce: None,
                skippable: false,
                est_task_seconds: 0.1,
            },
        );
        first_deps.push(IMPORT_COMMIT_STAGE.into());
    }
    let k = par.reduction_fan_in;
    let reduce_s = 1e-9 * image_bytes as f64;
    // A map stage and its tree; returns the name of the stage whose completion means the
    // root exists.
    let map_and_tree = |stages: &mut Vec<Stage>,
                        name: String,
                        kind: TaskKind,
                        tree: String,
                        cycle: u32,
                        deps: Vec<String>,
                        skippable: bool,
                        est: f64|
     -> String {
        stages.push(Stage {
            name: name.clone(),
            kind,
            tasks: shards.len() as u32,
            deps,
            cycle,
            tree: Some(tree.clone()),
            reduce: None,
            skippable,
            est_task_seconds: est,
        });
        let mut last = name;
        let mut inputs = shards.len() as u32;
        let mut levels = tree_levels(shards.len() as u32, k);
        // A cycle's tree is read by one task (the deconvolve or the restore), which sums
        // the root's inputs itself (`Plan::root_inputs`): one process fewer on the serial
        // path of every cycle. The weights root is read by every map task, so it stays.
        if tree != WEIGHTS_TREE {
            levels.pop();
        }
        for (l, n) in levels.into_iter().enumerate() {
            let level = l as u32 + 1;
            let rname = if tree == WEIGHTS_TREE {
                format!("weights-reduce-{level}")
            } else {
                format!("reduce-{cycle:03}-{level}")
            };
            stages.push(Stage {
                name: rname.clone(),
                kind: TaskKind::Reduce,
                tasks: n,
                deps: vec![last],
                cycle,
                tree: Some(tree.clone()),
                reduce: Some(ReduceRef {
                    tree: tree.clone(),
                    level,
                    inputs,
                }),
                skippable,
                est_task_seconds: reduce_s * f64::from(k),
            });
            inputs = n;
            last = rname;
        }
        last
    };
    let mut invert_deps = first_deps.clone();
    if pipeline != PipelineKind::Predict && spec.image.weighting.kind != WeightingKind::Natural {
        let root = map_and_tree(
            &mut stages,
            "weights".into(),
            TaskKind::Weights,
            WEIGHTS_TREE.into(),
            0,
            first_deps.clone(),
            false,
            0.05 * shard_s,
        );
        invert_deps = vec![root];
    }
    match pipeline {
        PipelineKind::Predict => {
            stages.push(Stage {
                name: "predict".into(),
                kind: TaskKind::Predict,
                tasks: shards.len() as u32,
                deps: first_deps,
                cycle: 0,
                tree: None,
                reduce: None,
                skippable: false,
                est_task_seconds: shard_s,
            });
        }
        PipelineKind::Invert => {
            let root = map_and_tree(
                &mut stages,
                Plan::map_stage(0),
                TaskKind::Invert,
                Plan::cycle_tree(0),
                0,
                invert_deps,
                false,
                2.0 * shard_s,
            );
            stages.push(restore_stage(vec![root], 1, reduce_s));
        }
        PipelineKind::Continuum | PipelineKind::Ical => {
            let mut root = map_and_tree(
                &mut stages,
                Plan::map_stage(0),
                TaskKind::Invert,
                Plan::cycle_tree(0),
                0,
                invert_deps,
                false,
                shard_s,
            );
            for c in 1..=spec.major_cycles {
                let d = Plan::deconvolve_stage(c);
                stages.push(Stage {
                    name: d.clone(),
                    kind: TaskKind::Deconvolve,
                    tasks: 1,
                    deps: vec![root],
                    cycle: c,
                    tree: None,
                    reduce: None,
                    skippable: true,
                    est_task_seconds: 20.0 * reduce_s,
                });
                root = map_and_tree(
                    &mut stages,
                    Plan::map_stage(c),
                    TaskKind::Residual,
                    Plan::cycle_tree(c),
                    c,
                    vec![d],
                    true,
                    shard_s,
                );
            }
            stages.push(restore_stage(vec![root], spec.major_cycles + 1, reduce_s));
        }
    }
    Ok(Plan {
        format: PLAN_FORMAT.into(),
        version: PLAN_VERSION,
        job: opts.job.clone(),
        spec_digest: spec_digest(spec),
        spec: spec.clone(),
        output: opts.output.clone(),
        visibilities: opts.visibilities.clone(),
        facts: facts.clone(),
        image: PlannedImage {
            npix: geom.npix_x as u32,
            cell_rad: geom.cell,
            phase_centre: geom.phase_centre,
            ref_freq_hz: geom.freq_hz,
            bandwidth_hz: geom.bandwidth_hz,
            grid_nu: worst.nu,
            grid_support: worst.support,
            grid_planes: worst.nplanes,
        },
        shards,
        stages,
        est_task_memory_bytes: memory,
        max_attempts: par.max_attempts,
        trace_key: String::new(),
    })
}

/// Shards of exactly `n` windows (the last may hold fewer).
fn fixed_shards(costs: &WindowCosts, n: usize) -> Vec<super::Shard> {
    let nw = costs.gridding_w.len();
    (0..nw)
        .step_by(n)
        .map(|first| {
            let end = (first + n).min(nw);
            super::Shard {
                first_window: first as u32,
                windows: (end - first) as u32,
                est_seconds: costs.shard_seconds(first..end),
            }
        })
        .collect()
}

fn restore_stage(deps: Vec<String>, cycle: u32, reduce_s: f64) -> Stage {
    Stage {
        name: "restore".into(),
        kind: TaskKind::Restore,
        tasks: 1,
        deps,
        cycle,
        tree: None,
        reduce: None,
        skippable: false,
        est_task_seconds: 10.0 * reduce_s,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_quantity;

    #[test]
    fn kubernetes_quantities_parse_to_bytes() {
        assert_eq!(parse_quantity("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("4Gi"), Some(4.0 * 1024f64.powi(3)));
        assert_eq!(parse_quantity("1.5Gi"), Some(1.5 * 1024f64.powi(3)));
        assert_eq!(parse_quantity("2G"), Some(2e9));
        assert_eq!(parse_quantity("128974848"), Some(128_974_848.0));
        assert_eq!(parse_quantity("129e6"), Some(129e6));
        assert_eq!(parse_quantity("123Mb"), None);
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("-1Gi"), None);
    }
}
