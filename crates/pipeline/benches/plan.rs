//! Planner benchmark: an ICAL plan of 5500 frequency windows × 10 major cycles (the SDP
//! memo's largest case), and its JSON size.

use aperture_imaging::coords::RaDec;
use aperture_pipeline::plan::{InputFacts, PlanOptions, make_plan};
use aperture_pipeline::spec::{AutoOr, parse_job};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let text = "apiVersion: aperture.dev/v1alpha1\nkind: ImagingJob\nmetadata: {name: big}\nspec:\n  input: {visibilities: s3://b/obs.zarr}\n  majorCycles: 10\n  parallelism: {maxParallel: 512}\n";
    let mut spec = parse_job(text, "big.yaml").expect("job").spec;
    spec.image.npixel = AutoOr::Value(8192);
    spec.parallelism.worker_memory_mib = Some(65536);
    let facts = InputFacts {
        nwindows: 5500,
        channels_per_window: 1,
        ntimes: 7,
        nbaselines: 130_816,
        nantennas: 512,
        freq_min_hz: 50e6,
        freq_max_hz: 350e6,
        max_uv_m: 65_000.0,
        max_w_m: 20_000.0,
        phase_centre: RaDec::from_degrees(15.0, -45.0),
        station_diameter_m: 38.0,
    };
    let opts = PlanOptions {
        job: "big".into(),
        output: "s3://b/out".into(),
        visibilities: "s3://b/obs.zarr".into(),
    };
    let plan = make_plan(&spec, &facts, &opts).expect("plan");
    let json = serde_json::to_vec(&plan).expect("json");
    eprintln!(
        "plan: {} stages, {} tasks, {} shards, plan.json {} KiB",
        plan.stages.len(),
        plan.total_tasks(),
        plan.shards.len(),
        json.len() / 1024
    );
    c.bench_function("plan ical 5500 windows x 10 cycles", |b| {
        b.iter(|| make_plan(&spec, &facts, &opts).expect("plan"))
    });
    c.bench_function("plan.json serialise", |b| {
        b.iter(|| serde_json::to_vec(&plan).expect("json"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
