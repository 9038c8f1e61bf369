//! `aperture bench kernels`: wall time and throughput of invert and predict on the SDP
//! benchmark scenario (or a given bundle), for comparison with ducc0's wgridder.
//! `aperture bench deconv` (the CLEAN minor cycle, against radler) is in `bench/deconv.rs`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use aperture_imaging::ImagingError;
use aperture_imaging::gridder;
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::sim::LOW_STATION_DIAMETER;
use aperture_imaging::sim::scenario::Scenario;
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::formats::bundle::{BundleMeta, VisDtype};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::common::errors::for_option;
use crate::common::fmt::{Summary, bytes, count, print_stdout, rate, rows_by_channels, seconds};
use crate::common::gridding::{
    Direction, GRIDDER_OPTIONS, GridderArgs, describe_layout, describe_phases, describe_request,
    precision_name,
};
use crate::common::imaging::{
    BYTES_PER_PIXEL, band, check_cell, check_memory, check_npix, rad_to_arcsec,
};
use crate::common::output::check_bundle_output;
use crate::common::runtime::proc_bytes;
use crate::common::{Context, bundle};

mod deconv;

pub use deconv::{DeconvArgs, run_deconv};

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    Kernels(KernelsArgs),
    Deconv(DeconvArgs),
}

/// Time invert and predict (the gridding kernels).
///
/// Simulates the SDP benchmark scenario (LOW-like array cut to --rmax, --times hour
/// angles over 6 h, --channels channels over 100-150 MHz, five point sources, no noise;
/// the defaults give 227 stations and 1.44 M visibilities), or loads --bundle, then runs
/// the unnormalised invert (ducc0's vis2dirty) and predict (dirty2vis) --repeat times on
/// an --npix image with the cell at three pixels per synthesised beam. Prints the best
/// and median wall times, visibilities per second, the gridder's choices and per-phase
/// times, and the peak resident memory of each. --write-bundle writes the scenario's
/// bundle (with the image size and cell in meta.json under "bench") so that another
/// gridder can be timed on the same data, and exits.
#[derive(Debug, Args)]
#[command(
    // One thread by default (not all cores as for invert and predict): timings that
    // compare across machines and with single-threaded ducc0 runs.
    mut_arg("threads", |a| a.default_value("1")),
    after_help = "Examples:\n  aperture bench kernels\n  aperture bench kernels --precision f32 \
                        --epsilon 1e-4 --threads 0 --json\n  aperture bench kernels --write-bundle \
                        scen/"
)]
pub struct KernelsArgs {
    /// Image pixels per side.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1024,
        allow_negative_numbers = true
    )]
    pub npix: usize,
    /// Pixel size in arcseconds [default: a third of the synthesised beam at the highest
    /// frequency, or meta.json's bench.cell_rad for a bundle written by --write-bundle].
    #[arg(long, value_name = "ARCSEC", allow_negative_numbers = true)]
    pub cell: Option<f64>,
    /// Array radius kept, metres.
    #[arg(
        long,
        value_name = "M",
        default_value_t = 600.0,
        allow_negative_numbers = true
    )]
    pub rmax: f64,
    /// Number of integrations (hour angles over 6 h).
    #[arg(
        long,
        value_name = "T",
        default_value_t = 7,
        allow_negative_numbers = true
    )]
    pub times: usize,
    /// Number of channels over 100-150 MHz.
    #[arg(
        long,
        value_name = "C",
        default_value_t = 8,
        allow_negative_numbers = true
    )]
    pub channels: usize,
    #[command(flatten)]
    pub gridder: GridderArgs,
    /// Runs of each kernel; best and median are reported.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        allow_negative_numbers = true
    )]
    pub repeat: usize,
    /// Time this bundle instead of simulating the scenario.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["write_bundle", "rmax", "times", "channels"])]
    pub bundle: Option<PathBuf>,
    /// Write the scenario's bundle to DIR and exit (no timing).
    #[arg(long, value_name = "DIR")]
    pub write_bundle: Option<PathBuf>,
    /// Replace the --write-bundle directory if it exists.
    #[arg(long, requires = "write_bundle")]
    pub overwrite: bool,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Best and median of a list of times.
fn best_median(times: &[f64]) -> (f64, f64) {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    let n = t.len();
    let median = if n % 2 == 1 {
        t[n / 2]
    } else {
        0.5 * (t[n / 2 - 1] + t[n / 2])
    };
    (t[0], median)
}

/// Resets the peak-RSS counter of this process (Linux; best effort).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The scenario the options describe.
fn scenario(args: &KernelsArgs) -> Scenario {
    Scenario {
        rmax: args.rmax,
        ntimes: args.times,
        nchan: args.channels,
        npix: args.npix,
        ..Scenario::default()
    }
}

/// The scenario's observation, as the JSON output and --write-bundle's meta.json record it.
fn scenario_json(s: &Scenario) -> Map<String, Value> {
    [
        ("rmax_m", json!(s.rmax)),
        ("times", json!(s.ntimes)),
        ("span_hours", json!(s.span_hours)),
        ("channels", json!(s.nchan)),
        ("f_min_hz", json!(s.f_min)),
        ("f_max_hz", json!(s.f_max)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Simulates the scenario; `cell` (radians, from --cell) replaces its cell.
fn build_scenario(
    args: &KernelsArgs,
    scenario: &Scenario,
    cell: Option<f64>,
) -> Result<(VisBlock, ImageGeometry)> {
    if args.rmax.is_nan() || args.rmax <= 0.0 {
        bail!("--rmax {}: must be a positive number of metres", args.rmax);
    }
    if args.times == 0 {
        bail!("--times 0: must be at least 1");
    }
    if args.channels == 0 {
        bail!("--channels 0: must be at least 1");
    }
    let (block, mut geom) = scenario.build().map_err(|e| {
        for_option(
            e,
            &[
                ("rmax", "--rmax"),
                ("ntimes", "--times"),
                ("npix", "--npix"),
                ("cell", "--cell"),
            ],
        )
    })?;
    if let Some((arcsec, c)) = args.cell.zip(cell) {
        geom.cell = c;
        geom.validate()
            .map_err(|e| anyhow!("--cell {arcsec}: {e}"))?;
    }
    Ok((block, geom))
}

/// Cell for a bundle: `cell` (from --cell), else meta.json's bench.cell_rad (written by
/// --write-bundle), else the scenario's rule (a third of the synthesised beam at the
/// highest frequency).
fn bundle_cell(
    scenario: &Scenario,
    cell: Option<f64>,
    dir: &Path,
    block: &VisBlock,
    meta: &BundleMeta,
) -> Result<f64> {
    let recorded = || {
        meta.extra
            .get("bench")
            .and_then(|b| b.get("cell_rad"))
            .and_then(Value::as_f64)
            .filter(|c| c.is_finite() && *c > 0.0)
    };
    let cell = cell
        .or_else(recorded)
        .unwrap_or_else(|| scenario.cell_for(block));
    if !(cell.is_finite() && cell > 0.0) {
        bail!(
            "--bundle {}: all baselines are zero; give --cell",
            dir.display()
        );
    }
    Ok(cell)
}

/// The runs of one kernel.
struct Timed<T> {
    /// Wall time of each run, seconds.
    times: Vec<f64>,
    /// The result of the last run.
    last: T,
    /// Peak resident memory over the runs.
    peak_rss: Option<u64>,
}

/// Runs `kernel` `repeat` (at least 1) times as stages named `name`.
fn time_runs<T>(
    ctx: &Context,
    name: &str,
    repeat: usize,
    mut kernel: impl FnMut() -> Result<T, ImagingError>,
) -> Result<Timed<T>> {
    let mut times = Vec::with_capacity(repeat);
    let mut run = |i: usize| -> Result<T> {
        let stage = ctx.progress.stage(format!("{name} run {i}/{repeat}"));
        let t = Instant::now();
        let out = kernel().map_err(|e| for_option(e, GRIDDER_OPTIONS))?;
        times.push(t.elapsed().as_secs_f64());
        stage.done();
        Ok(out)
    };
    reset_peak_rss();
    let mut last = run(1)?;
    for i in 2..=repeat {
        // Free the previous result first, so that the peak is that of one run.
        drop(last);
        last = run(i)?;
    }
    Ok(Timed {
        times,
        last,
        peak_rss: proc_bytes("/proc/self/status", "VmHWM:"),
    })
}

pub fn run_kernels(args: &KernelsArgs, ctx: &Context) -> Result<()> {
    let opts = args.gridder.options()?;
    check_npix(Some(args.npix))?;
    let cell = check_cell(args.cell)?;
    if args.repeat == 0 {
        bail!("--repeat 0: must be at least 1");
    }
    if let Some(dir) = &args.write_bundle {
        check_bundle_output("--write-bundle", dir, args.overwrite)?;
    }
    let scenario = scenario(args);

    let (mut block, geom, source) = match &args.bundle {
        Some(dir) => {
            let (block, meta) = bundle::read(ctx, dir)?;
            let cell = bundle_cell(&scenario, cell, dir, &block, &meta)?;
            let (freq, bw) = band(&block.freq_c);
            let geom = ImageGeometry::square(args.npix, cell, block.phase_centre, freq, bw)
                .map_err(|e| {
                    anyhow!(
                        "--npix {} with cell {:.4} arcsec: {e}",
                        args.npix,
                        rad_to_arcsec(cell)
                    )
                })?;
            (block, geom, json!({ "bundle": dir.display().to_string() }))
        }
        None => {
            let stage = ctx.progress.stage("simulating the benchmark scenario");
            let (block, geom) = build_scenario(args, &scenario, cell)?;
            stage.done();
            let mut observation = scenario_json(&scenario);
            observation.insert("telescope".into(), json!("LOW"));
            observation.insert(
                "stations".into(),
                json!(block.ant2_r.iter().copied().max().map_or(0, |m| m + 1)),
            );
            (block, geom, json!({ "scenario": observation }))
        }
    };
    block.weight_rc = block.effective_weight_rc();

    if let Some(dir) = &args.write_bundle {
        return write_scenario_bundle(args, ctx, &scenario, dir, &block, &geom);
    }
    check_memory(
        (geom.npix_x * geom.npix_y) as f64 * BYTES_PER_PIXEL,
        &format!("--npix {}", args.npix),
    )?;

    let nvis = block.n_vis();
    let invert = time_runs(ctx, "invert", args.repeat, || {
        gridder::invert(
            &block.uvw_r,
            &block.freq_c,
            block.vis_rc.view(),
            block.weight_rc.view(),
            &geom,
            &opts,
        )
    })?;
    let (mut model, invert_rep) = invert.last;
    // Predict from the dirty image scaled to Jy/beam: a dense, realistic model.
    let sum_w: f64 = block.weight_rc.sum();
    if sum_w > 0.0 {
        model.mapv_inplace(|v| v / sum_w);
    }
    let predict = time_runs(ctx, "predict", args.repeat, || {
        gridder::predict(&block.uvw_r, &block.freq_c, model.view(), &geom, &opts)
            .map(|(_vis, rep)| rep)
    })?;
    let kernels = [
        (
            "invert",
            &invert.times,
            &invert_rep,
            invert.peak_rss,
            Direction::Invert,
        ),
        (
            "predict",
            &predict.times,
            &predict.last,
            predict.peak_rss,
            Direction::Predict,
        ),
    ];

    if args.json {
        let mut obj = json!({
            "source": source,
            "nvis": nvis,
            "rows": block.n_rows(),
            "channels": block.n_chan(),
            "npix": geom.npix_x,
            "cell_rad": geom.cell,
            "cell_arcsec": rad_to_arcsec(geom.cell),
            "epsilon": opts.epsilon,
            "precision": precision_name(opts.precision),
            "wstacking": opts.wstacking,
            "threads": opts.threads,
            "repeat": args.repeat,
        });
        for (name, times, rep, rss, _) in kernels {
            let (best, median) = best_median(times);
            obj[name] = json!({
                "best_s": best,
                "median_s": median,
                "times_s": times,
                "vis_per_s": nvis as f64 / best,
                "peak_rss_bytes": rss,
                "report": serde_json::to_value(rep).unwrap_or(Value::Null),
            });
        }
        print_stdout(&format!("{obj}\n"));
        return Ok(());
    }

    let mut s = Summary::new();
    s.row(
        "data",
        match &args.bundle {
            Some(dir) => format!("{}: {} visibilities", dir.display(), count(nvis)),
            None => format!(
                "LOW rmax {} m, {} times, {} channels {:.0}-{:.0} MHz: {} visibilities",
                scenario.rmax,
                scenario.ntimes,
                scenario.nchan,
                scenario.f_min / 1e6,
                scenario.f_max / 1e6,
                count(nvis)
            ),
        },
    );
    s.row(
        "image",
        format!(
            "{} x {}, cell {:.4} arcsec; {}, threads {}",
            geom.npix_x,
            geom.npix_y,
            rad_to_arcsec(geom.cell),
            describe_request(&opts),
            if opts.threads == 0 {
                "all".to_owned()
            } else {
                opts.threads.to_string()
            }
        ),
    );
    for (name, times, rep, rss, direction) in kernels {
        let (best, median) = best_median(times);
        s.row(
            name,
            format!(
                "best {}, median {} of {}: {}\n{}; {}{}",
                seconds(best),
                seconds(median),
                times.len(),
                rate(nvis as f64, best),
                describe_layout(rep),
                describe_phases(rep, direction),
                rss.map(|b| format!("; peak RSS {}", bytes(b)))
                    .unwrap_or_default()
            ),
        );
    }
    s.print();
    Ok(())
}

/// `--write-bundle`: the scenario's data with the benchmark image in meta.json.
fn write_scenario_bundle(
    args: &KernelsArgs,
    ctx: &Context,
    scenario: &Scenario,
    dir: &Path,
    block: &VisBlock,
    geom: &ImageGeometry,
) -> Result<()> {
    let mut bench = scenario_json(scenario);
    bench.extend(
        [
            ("npix", json!(geom.npix_x)),
            ("cell_rad", json!(geom.cell)),
            ("cell_arcsec", json!(rad_to_arcsec(geom.cell))),
            ("epsilon", json!(args.gridder.epsilon)),
            ("command", json!(ctx.command_line)),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut meta = BundleMeta::for_block(block);
    meta.telescope = Some("LOW".into());
    meta.station_diameter_m = Some(LOW_STATION_DIAMETER);
    meta.extra.insert("bench".into(), Value::Object(bench));
    bundle::write(ctx, dir, block, &meta, VisDtype::Complex128, args.overwrite)?;
    let mut sm = Summary::new();
    sm.row("wrote", dir.display());
    sm.row(
        "data",
        format!(
            "{} visibilities ({})",
            count(block.n_vis()),
            rows_by_channels(block)
        ),
    );
    sm.row(
        "image",
        format!(
            "{} x {}, cell {:.6} arcsec ({:e} rad)",
            geom.npix_x,
            geom.npix_y,
            rad_to_arcsec(geom.cell),
            geom.cell
        ),
    );
    sm.print();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_and_median() {
        assert_eq!(best_median(&[3.0, 1.0, 2.0]), (1.0, 2.0));
        assert_eq!(best_median(&[4.0, 1.0, 2.0, 3.0]), (1.0, 2.5));
        assert_eq!(best_median(&[5.0]), (5.0, 5.0));
    }
}
