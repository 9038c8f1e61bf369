//! Test fixtures of the report's unit tests: a small continuum plan and hand-made bars,
//! manifests and spans.

use std::collections::BTreeMap;

use aperture_imaging::coords::RaDec;

use super::bars::TaskBar;
use crate::plan::{InputFacts, Plan, PlanOptions, make_plan};
use crate::spec::{ImagingJobSpec, InputSpec, PipelineKind, SimulateSpec, WeightingKind};
use crate::tasks::TaskManifest;

/// Continuum, one major cycle, 4 windows in 4 shards, natural weighting, fan-in 2:
/// simulate → invert → reduce-000-1 (2 tasks; the deconvolve sums the root's two
/// inputs) → deconvolve-001 → residual-001 → reduce-001-1 → restore.
pub fn small_plan() -> Plan {
    let facts = InputFacts {
        nwindows: 4,
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
    };
    let mut spec = ImagingJobSpec {
        pipeline: PipelineKind::Continuum,
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
        major_cycles: 1,
        parallelism: Default::default(),
        workers: Default::default(),
        storage: Default::default(),
        telemetry: Default::default(),
    };
    spec.image.npixel = crate::spec::AutoOr::Value(256);
    spec.image.weighting.kind = WeightingKind::Natural;
    spec.parallelism.reduction_fan_in = 2;
    spec.parallelism.windows_per_shard = Some(1);
    let opts = PlanOptions {
        job: "small".into(),
        output: "memory://small".into(),
        visibilities: "memory://small/vis.zarr".into(),
    };
    let plan = make_plan(&spec, &facts, &opts).expect("plan");
    let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "simulate",
            "invert",
            "reduce-000-1",
            "deconvolve-001",
            "residual-001",
            "reduce-001-1",
            "restore"
        ]
    );
    plan
}

/// A committed task: 1000 bytes in, 500 out, 10 MiB peak RSS, no host.
pub fn bar(stage: &str, index: u32, start_unix: f64, seconds: f64) -> TaskBar {
    TaskBar {
        stage: stage.into(),
        index,
        kind: "invert",
        cycle: 0,
        attempt: Some(1),
        start_unix,
        seconds,
        failed: false,
        error: String::new(),
        exit_code: None,
        host: String::new(),
        pid: 7,
        split: Some([0.1 * seconds, 0.8 * seconds, 0.1 * seconds]),
        bytes_in: 1000,
        bytes_out: 500,
        windows: 1,
        visibilities: 21_000,
        peak_rss_bytes: 10 << 20,
        phases: BTreeMap::new(),
    }
}

/// A failed attempt of `stage`/`index`.
pub fn failed_bar(stage: &str, index: u32, start_unix: f64, seconds: f64) -> TaskBar {
    TaskBar {
        failed: true,
        error: "worker exited with status 137".into(),
        split: None,
        bytes_in: 0,
        bytes_out: 0,
        peak_rss_bytes: 0,
        ..bar(stage, index, start_unix, seconds)
    }
}

/// The manifest of task `index` of `stage` in `plan`, started at `start_unix`.
pub fn manifest(
    plan: &Plan,
    stage: &str,
    index: u32,
    start_unix: f64,
    seconds: f64,
) -> TaskManifest {
    let st = plan.stage(stage).expect("stage in plan");
    let mut m = TaskManifest::start(st, index);
    m.started_unix = start_unix;
    m.seconds = seconds;
    m.read_seconds = 0.25 * seconds;
    m.compute_seconds = 0.5 * seconds;
    m.write_seconds = 0.25 * seconds;
    m.bytes_in = 1 << 20;
    m.bytes_out = 1 << 19;
    m.windows = 1;
    m.visibilities = 21_000;
    m.peak_rss_bytes = 64 << 20;
    m.pid = 1000 + index;
    m.host = "node-a".into();
    m.attempt = 1;
    m
}
