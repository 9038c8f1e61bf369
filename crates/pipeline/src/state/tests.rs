//! Property tests of the state machine against a simulated executor with random task
//! failures, retries, duplicate completions and convergence.

use std::collections::BTreeSet;

use aperture_imaging::coords::RaDec;
use proptest::prelude::*;

use super::*;
use crate::plan::{InputFacts, PlanOptions, WEIGHTS_TREE, make_plan};
use crate::spec::{ImagingJobSpec, InputSpec, PipelineKind, SimulateSpec, WeightingKind};

fn facts(nwindows: u32) -> InputFacts {
    InputFacts {
        nwindows,
        channels_per_window: 1,
        ntimes: 7,
        nbaselines: 3000,
        nantennas: 78,
        freq_min_hz: 100e6,
        freq_max_hz: 150e6,
        max_uv_m: 600.0,
        max_w_m: 400.0,
        phase_centre: RaDec::from_degrees(15.0, -45.0),
        station_diameter_m: 38.0,
    }
}

fn plan(
    pipeline: PipelineKind,
    nwindows: u32,
    cycles: u32,
    fan_in: u32,
    parallel: u32,
    natural: bool,
) -> Plan {
    let mut spec = ImagingJobSpec {
        pipeline,
        input: InputSpec {
            visibilities: None,
            measurement_set: None,
            simulate: Some(SimulateSpec::default()),
        },
        output: None,
        predict: None,
        image: Default::default(),
        deconvolution: Default::default(),
        calibration: Default::default(),
        major_cycles: cycles,
        parallelism: Default::default(),
        workers: Default::default(),
        storage: Default::default(),
        telemetry: Default::default(),
    };
    spec.image.npixel = crate::spec::AutoOr::Value(256);
    spec.parallelism.reduction_fan_in = fan_in;
    spec.parallelism.max_parallel = parallel;
    spec.parallelism.target_task_seconds = 0.1;
    if natural {
        spec.image.weighting.kind = WeightingKind::Natural;
    }
    let opts = PlanOptions {
        job: "t".into(),
        output: "memory://t".into(),
        visibilities: "memory://t/vis.zarr".into(),
    };
    make_plan(&spec, &facts(nwindows), &opts).expect("plan")
}

/// Runs `plan` to the end with a simulated executor; `rng` drives the random choices.
/// Returns (succeeded tasks, whether the job succeeded, converged cycle).
fn drive(
    plan: &Plan,
    seed: u64,
    fail_rate: f64,
    converge_at: Option<u32>,
) -> (BTreeSet<(String, u32)>, bool) {
    let mut rng = aperture_imaging::sim::rng::Rng::new(seed);
    let mut obs = Observed::default();
    let mut started: BTreeSet<(String, u32)> = BTreeSet::new();
    for _step in 0..100_000 {
        let actions = advance(plan, &obs);
        // Invariant: every Run is of a stage whose deps are complete or skipped, and never
        // of a task that is done or running.
        let skipped = skipped_stages(plan, &obs);
        for a in &actions {
            if let Action::Run { stage, indices } = a {
                let st = plan.stage(stage).expect("stage exists");
                for d in &st.deps {
                    assert!(
                        skipped.contains(d) || complete(plan, &obs, d),
                        "{stage} before {d}"
                    );
                }
                let o = obs.stage(stage);
                for i in indices {
                    assert!(o.is_none_or(|o| !o.succeeded.contains(i) && !o.running.contains(i)));
                }
            }
        }
        match actions.first() {
            Some(Action::Succeed) => {
                let done = obs
                    .stages
                    .iter()
                    .flat_map(|(s, o)| o.succeeded.iter().map(move |i| (s.clone(), *i)))
                    .collect();
                return (done, true);
            }
            Some(Action::Fail { .. }) => return (BTreeSet::new(), false),
            _ => {}
        }
        // Start a random subset of what may run.
        for a in &actions {
            if let Action::Run { stage, indices } = a {
                for &i in indices {
                    if rng.uniform() < 0.7 {
                        obs.stage_mut(stage).running.insert(i);
                        started.insert((stage.clone(), i));
                    }
                }
            }
        }
        // Finish a random running task (or one per step).
        let running: Vec<(String, u32)> = obs
            .stages
            .iter()
            .flat_map(|(s, o)| o.running.iter().map(move |i| (s.clone(), *i)))
            .collect();
        if running.is_empty() {
            continue;
        }
        let (s, i) = running[rng.below(running.len() as u64) as usize].clone();
        let kind = plan.stage(&s).expect("stage").kind;
        let cycle = plan.stage(&s).expect("stage").cycle;
        let o = obs.stage_mut(&s);
        o.running.remove(&i);
        // Fail only while a retry remains, so the run can still succeed.
        let attempts = o.failures.get(&i).copied().unwrap_or(0);
        if rng.uniform() < fail_rate && attempts + 1 < plan.max_attempts {
            *o.failures.entry(i).or_default() += 1;
            o.last_error.insert(i, "simulated".into());
        } else {
            o.succeeded.insert(i);
            if rng.uniform() < 0.1 {
                // A duplicate completion (e.g. a pod that was thought lost).
                o.succeeded.insert(i);
            }
            if kind == TaskKind::Deconvolve {
                o.converged = Some(converge_at.is_some_and(|c| cycle >= c));
            }
        }
    }
    panic!("did not terminate");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_failures_give_the_same_tasks_as_a_clean_run(
        nwin in 1u32..40, cycles in 1u32..5, fan in 2u32..6, par in 1u32..8,
        natural in any::<bool>(), kind in 0usize..4, seed in any::<u64>(),
        conv in proptest::option::of(1u32..6),
    ) {
        let pk = [PipelineKind::Invert, PipelineKind::Predict, PipelineKind::Continuum, PipelineKind::Ical][kind];
        let p = plan(pk, nwin, cycles, fan, par, natural);
        let (clean, ok) = drive(&p, seed, 0.0, conv);
        prop_assert!(ok);
        let (faulty, ok) = drive(&p, seed ^ 0x9e37, 0.3, conv);
        prop_assert!(ok);
        prop_assert_eq!(clean, faulty);
    }
}

#[test]
fn too_many_failures_fail_the_job_with_the_task_named() {
    let p = plan(PipelineKind::Invert, 4, 1, 4, 2, true);
    let mut obs = Observed::default();
    let first = &p.stages[0].name;
    let o = obs.stage_mut(first);
    o.failures.insert(0, p.max_attempts);
    o.last_error.insert(0, "disk full".into());
    match &advance(&p, &obs)[0] {
        Action::Fail { reason } => {
            assert!(reason.contains(&format!("{first}/0")), "{reason}");
            assert!(reason.contains("disk full"), "{reason}");
        }
        a => panic!("expected Fail, got {a:?}"),
    }
}

#[test]
fn a_permanent_failure_fails_at_once() {
    let p = plan(PipelineKind::Ical, 4, 2, 4, 2, true);
    let mut obs = Observed::default();
    obs.stage_mut("simulate").permanent = Some((1, "bad input".into()));
    assert!(matches!(&advance(&p, &obs)[0], Action::Fail { .. }));
}

#[test]
fn convergence_skips_later_cycles_and_goes_to_restore() {
    let p = plan(PipelineKind::Continuum, 8, 4, 2, 4, true);
    let mut obs = Observed::default();
    for s in &p.stages {
        if s.cycle <= 1 && s.kind != TaskKind::Restore {
            let o = obs.stage_mut(&s.name);
            o.succeeded = (0..s.tasks).collect();
        }
    }
    // Cycle 2's deconvolution finds nothing to do.
    let d2 = Plan::deconvolve_stage(2);
    let o = obs.stage_mut(&d2);
    o.succeeded.insert(0);
    o.converged = Some(true);
    let actions = advance(&p, &obs);
    let runs: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Run { stage, .. } => Some(stage.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(runs, vec!["restore"], "{actions:?}");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Skip { stage, .. } if stage == "residual-002"))
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Skip { stage, .. } if stage == "deconvolve-004"))
    );
}

#[test]
fn plan_of_5500_windows_and_10_cycles_is_small() {
    let p = plan(PipelineKind::Ical, 5500, 10, 4, 64, false);
    let json = serde_json::to_vec(&p).expect("json");
    // O(stages + shards): well under a MiB, far from etcd's 1.5 MiB.
    assert!(json.len() < 512 * 1024, "{} bytes", json.len());
    assert!(p.stages.len() < 200, "{} stages", p.stages.len());
}

/// Every reduce stage of the plan's `tree`, as (level, tasks, inputs).
fn tree_stages(p: &Plan, tree: &str) -> Vec<(u32, u32, u32)> {
    p.stages
        .iter()
        .filter_map(|s| {
            s.reduce
                .as_ref()
                .filter(|r| r.tree == tree)
                .map(|r| (r.level, s.tasks, r.inputs))
        })
        .collect()
}

#[test]
fn cycle_trees_leave_their_root_to_the_reader_and_the_weights_tree_keeps_it() {
    // 1 window per shard, fan-in 2: 5 shards make levels of 3, 2 and 1 nodes.
    let spec = plan(PipelineKind::Ical, 5, 2, 2, 5, false).spec;
    let opts = PlanOptions {
        job: "t".into(),
        output: "memory://t".into(),
        visibilities: "memory://t/vis.zarr".into(),
    };
    let replan = |spec: &ImagingJobSpec, per_shard: u32| {
        let mut spec = spec.clone();
        spec.parallelism.windows_per_shard = Some(per_shard);
        make_plan(&spec, &facts(5), &opts).expect("plan")
    };
    let p = replan(&spec, 1);
    assert_eq!(p.shards.len(), 5);
    for c in 0..=2 {
        let tree = Plan::cycle_tree(c);
        assert_eq!(tree_stages(&p, &tree), vec![(1, 3, 5), (2, 2, 3)], "{tree}");
        assert_eq!(
            p.root_inputs(&tree),
            vec![Plan::reduce_key(&tree, 2, 0), Plan::reduce_key(&tree, 2, 1)],
            "{tree}"
        );
    }
    assert_eq!(
        tree_stages(&p, WEIGHTS_TREE),
        vec![(1, 3, 5), (2, 2, 3), (3, 1, 2)]
    );
    assert_eq!(p.root_inputs(WEIGHTS_TREE), vec![p.root_key(WEIGHTS_TREE)]);
    // The deconvolve of cycle 1 waits for the last level there is.
    let d = p.stage(&Plan::deconvolve_stage(1)).expect("deconvolve-001");
    assert_eq!(d.deps, vec!["reduce-000-2".to_string()]);

    // Two shards: no reduce stage at all; the reader sums both partials.
    let p2 = replan(&spec, 3);
    assert_eq!(p2.shards.len(), 2);
    let tree = Plan::cycle_tree(1);
    assert!(tree_stages(&p2, &tree).is_empty());
    assert_eq!(
        p2.root_inputs(&tree),
        vec![Plan::partial_key(&tree, 0), Plan::partial_key(&tree, 1)]
    );
    // One shard: the partial is the root.
    let p1 = replan(&spec, 5);
    assert_eq!(p1.root_inputs(&tree), vec![Plan::partial_key(&tree, 0)]);
}
