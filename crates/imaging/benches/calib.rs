//! Criterion benchmarks of the gain solver: one T (phase-only) solve for all 512 LOW
//! stations × 1 interval from normal equations built from simulated, gain-corrupted and
//! noisy data (the goal: well under a second), a G solve of the same, and
//! accumulating the normal equations.

use std::hint::black_box;

use aperture_imaging::calib::{
    ApplyMode, NormalEquations, RandomGainSpec, SolutionLayout, SolutionType, SolveSpec,
    WeightUpdate, apply_gains, random_gains, solve,
};
use aperture_imaging::coords::RaDec;
use aperture_imaging::sim::{
    PointSource, SkyModel, add_thermal_noise, hour_angles, low_config, simulate_block,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn calib(c: &mut Criterion) {
    let pc = RaDec::from_degrees(15.0, -45.0);
    let cfg = low_config(f64::INFINITY).expect("LOW layout");
    let n_ant = cfg.len();
    let at = |l: f64, m: f64| RaDec::from_lm(l, m, pc).expect("direction");
    let sky = SkyModel {
        sources: vec![
            PointSource {
                dir: pc,
                flux_jy: 5.0,
                spectral_index: 0.0,
            },
            PointSource {
                dir: at(0.01, 0.005),
                flux_jy: 1.0,
                spectral_index: 0.0,
            },
        ],
        ref_freq_hz: 100e6,
    };
    let ha = hour_angles(1, 0.0).expect("hour angles");
    let model = simulate_block(&cfg, pc, &ha, &[100e6, 101e6], &sky, 0.0, 0).expect("simulate");
    let mut data = model.clone();
    for (solution, amp) in [(SolutionType::T, 0.0), (SolutionType::G, 0.1)] {
        let layout = SolutionLayout::for_block(&model, solution, None).expect("layout");
        let truth = random_gains(
            solution,
            n_ant,
            layout,
            &RandomGainSpec {
                phase_rms_deg: 45.0,
                amp_rms: amp,
            },
            7,
        )
        .expect("gains");
        data.vis_rc = model.vis_rc.clone();
        apply_gains(&mut data, &truth, ApplyMode::Corrupt, WeightUpdate::Keep).expect("corrupt");
        add_thermal_noise(&mut data.vis_rc, 0.5, 3).expect("noise");
        let spec = SolveSpec::new(solution);
        let ne =
            NormalEquations::accumulate(&data, model.vis_rc.view(), data.weight_rc.view(), &spec)
                .expect("normal equations");
        let table = solve(&ne, &spec).expect("solve");
        let st = table.stats.as_ref().expect("stats")[[0, 0]];
        eprintln!(
            "{solution} solve, {n_ant} stations: {} iterations, converged {}, chi2 {:.4e} -> {:.4e}",
            st.iterations, st.converged, st.chi2_before, st.chi2_after
        );
        let mut group = c.benchmark_group(format!("calib/{n_ant}_stations"));
        group.sample_size(20);
        group.bench_function(format!("solve_{solution}"), |b| {
            b.iter(|| solve(black_box(&ne), &spec).expect("solve"))
        });
        if solution == SolutionType::T {
            group.bench_function(format!("accumulate_{}vis", data.n_vis()), |b| {
                b.iter(|| {
                    NormalEquations::accumulate(
                        black_box(&data),
                        model.vis_rc.view(),
                        data.weight_rc.view(),
                        &spec,
                    )
                    .expect("accumulate")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, calib);
criterion_main!(benches);
