//! `aperture bench kernels`: wall time and throughput of invert and predict on the SDP
//! benchmark scenario (or a given bundle), for comparison with ducc0's wgridder.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use aperture_imaging::SPEED_OF_LIGHT;
use aperture_imaging::gridder::{self, GridReport, GridderOptions};
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::sim::LOW_STATION_DIAMETER;
use aperture_imaging::sim::scenario::Scenario;
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::formats::bundle::{
    BundleMeta, VisDtype, WriteBundleOptions, read_bundle_with_meta, write_bundle,
};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::common::Context;
use crate::common::errors::for_option;
use crate::common::fmt::{Summary, bytes, count, print_stdout, rate, seconds};
use crate::common::gridding::{PrecisionArg, check_epsilon, check_threads};
use crate::common::imaging::{
    BYTES_PER_PIXEL, band, check_cell, check_memory, check_npix, rad_to_arcsec,
};
use crate::common::output::check_bundle_output;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    Kernels(KernelsArgs),
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
    /// Requested accuracy (relative L2 against the exact DFT).
    #[arg(
        long,
        value_name = "E",
        default_value = "1e-5",
        allow_negative_numbers = true
    )]
    pub epsilon: f64,
    /// Floating-point precision of the gridding.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F64)]
    pub precision: PrecisionArg,
    /// Worker threads; 0 uses all cores.
    #[arg(
        long,
        value_name = "T",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub threads: usize,
    /// Runs of each kernel; best and median are reported.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        allow_negative_numbers = true
    )]
    pub repeat: usize,
    /// Ignore w (flat-sky 2-D transform).
    #[arg(long)]
    pub no_wstacking: bool,
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

/// Peak resident set size of this process in bytes (Linux `VmHWM`).
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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

fn build_scenario(args: &KernelsArgs) -> Result<(VisBlock, ImageGeometry)> {
    if args.rmax.is_nan() || args.rmax <= 0.0 {
        bail!("--rmax {}: must be a positive number of metres", args.rmax);
    }
    if args.times == 0 {
        bail!("--times 0: must be at least 1");
    }
    if args.channels == 0 {
        bail!("--channels 0: must be at least 1");
    }
    let (mut block, mut geom) = scenario(args).build().map_err(|e| {
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
    if let Some(c) = check_cell(args.cell)? {
        geom.cell = c;
        geom.validate()
            .map_err(|e| anyhow!("--cell {}: {e}", args.cell.unwrap_or(0.0)))?;
    }
    block.weight_rc = block.effective_weight_rc();
    Ok((block, geom))
}

/// Cell for a bundle: --cell, else meta.json's bench.cell_rad, else the scenario's rule
/// (a third of the synthesised beam at the highest frequency).
fn bundle_cell(args: &KernelsArgs, block: &VisBlock, meta: &BundleMeta) -> Result<f64> {
    if let Some(c) = check_cell(args.cell)? {
        return Ok(c);
    }
    if let Some(c) = meta
        .extra
        .get("bench")
        .and_then(|b| b.get("cell_rad"))
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && *c > 0.0)
    {
        return Ok(c);
    }
    let fmax = block.freq_c.iter().copied().fold(0.0, f64::max);
    let bmax = block
        .uvw_r
        .iter()
        .map(|p| p.uv_length())
        .fold(0.0, f64::max)
        * fmax
        / SPEED_OF_LIGHT;
    if bmax.is_nan() || bmax <= 0.0 {
        bail!("--bundle: all baselines are zero; give --cell");
    }
    Ok(1.0 / (Scenario::default().oversampling * bmax))
}

pub fn run_kernels(args: &KernelsArgs, ctx: &Context) -> Result<()> {
    check_npix(Some(args.npix))?;
    check_epsilon(args.epsilon, args.precision)?;
    check_threads(args.threads)?;
    if args.repeat == 0 {
        bail!("--repeat 0: must be at least 1");
    }
    if let Some(dir) = &args.write_bundle {
        check_bundle_output("--write-bundle", dir, args.overwrite)?;
    }
    let opts = GridderOptions {
        epsilon: args.epsilon,
        precision: args.precision.precision(),
        wstacking: !args.no_wstacking,
        threads: args.threads,
    };

    let (block, geom, source) = match &args.bundle {
        Some(dir) => {
            let stage = ctx.progress.stage(format!("reading {}", dir.display()));
            let (mut block, meta) = read_bundle_with_meta(dir)?;
            stage.done();
            let cell = bundle_cell(args, &block, &meta)?;
            let (freq, bw) = band(&block.freq_c);
            let geom = ImageGeometry::square(args.npix, cell, block.phase_centre, freq, bw)
                .map_err(|e| {
                    anyhow!(
                        "--npix {} with cell {:.4} arcsec: {e}",
                        args.npix,
                        rad_to_arcsec(cell)
                    )
                })?;
            block.weight_rc = block.effective_weight_rc();
            (block, geom, json!({ "bundle": dir.display().to_string() }))
        }
        None => {
            let stage = ctx.progress.stage("simulating the benchmark scenario");
            let (block, geom) = build_scenario(args)?;
            stage.done();
            let s = scenario(args);
            let source = json!({
                "scenario": {
                    "telescope": "LOW",
                    "rmax_m": s.rmax,
                    "times": s.ntimes,
                    "span_hours": s.span_hours,
                    "channels": s.nchan,
                    "f_min_hz": s.f_min,
                    "f_max_hz": s.f_max,
                    "stations": block.ant2_r.iter().copied().max().map_or(0, |m| m + 1),
                }
            });
            (block, geom, source)
        }
    };

    if let Some(dir) = &args.write_bundle {
        return write_scenario_bundle(args, ctx, dir, &block, &geom);
    }
    check_memory(
        (geom.npix_x * geom.npix_y) as f64 * BYTES_PER_PIXEL,
        &format!("--npix {}", args.npix),
    )?;

    let nvis = block.n_vis();
    let gridder_err = |e: aperture_imaging::ImagingError| {
        for_option(
            e,
            &[
                ("epsilon", "--epsilon"),
                ("npix", "--npix"),
                ("cell", "--cell"),
            ],
        )
    };
    let mut invert_times = Vec::with_capacity(args.repeat);
    let mut invert_rep: Option<GridReport> = None;
    let mut dirty = None;
    reset_peak_rss();
    for i in 0..args.repeat {
        let stage = ctx
            .progress
            .stage(format!("invert run {}/{}", i + 1, args.repeat));
        let t = Instant::now();
        let (img, rep) = gridder::invert(
            &block.uvw_r,
            &block.freq_c,
            block.vis_rc.view(),
            block.weight_rc.view(),
            &geom,
            &opts,
        )
        .map_err(gridder_err)?;
        invert_times.push(t.elapsed().as_secs_f64());
        stage.done();
        invert_rep = Some(rep);
        dirty = Some(img);
    }
    let invert_rss = peak_rss();
    let (Some(invert_rep), Some(mut model)) = (invert_rep, dirty) else {
        bail!("--repeat: no runs");
    };
    // Predict from the dirty image scaled to Jy/beam: a dense, realistic model.
    let sum_w: f64 = block.weight_rc.sum();
    if sum_w > 0.0 {
        model.mapv_inplace(|v| v / sum_w);
    }

    let mut predict_times = Vec::with_capacity(args.repeat);
    let mut predict_rep: Option<GridReport> = None;
    reset_peak_rss();
    for i in 0..args.repeat {
        let stage = ctx
            .progress
            .stage(format!("predict run {}/{}", i + 1, args.repeat));
        let t = Instant::now();
        let (_vis, rep) = gridder::predict(&block.uvw_r, &block.freq_c, model.view(), &geom, &opts)
            .map_err(gridder_err)?;
        predict_times.push(t.elapsed().as_secs_f64());
        stage.done();
        predict_rep = Some(rep);
    }
    let predict_rss = peak_rss();
    let Some(predict_rep) = predict_rep else {
        bail!("--repeat: no runs");
    };

    let kernel = |times: &[f64], rep: &GridReport, rss: Option<u64>| {
        let (best, median) = best_median(times);
        json!({
            "best_s": best,
            "median_s": median,
            "times_s": times,
            "vis_per_s": nvis as f64 / best,
            "peak_rss_bytes": rss,
            "report": serde_json::to_value(rep).unwrap_or(Value::Null),
        })
    };
    if args.json {
        let obj = json!({
            "source": source,
            "nvis": nvis,
            "rows": block.n_rows(),
            "channels": block.n_chan(),
            "npix": geom.npix_x,
            "cell_rad": geom.cell,
            "cell_arcsec": rad_to_arcsec(geom.cell),
            "epsilon": args.epsilon,
            "precision": args.precision.name(),
            "wstacking": !args.no_wstacking,
            "threads": args.threads,
            "repeat": args.repeat,
            "invert": kernel(&invert_times, &invert_rep, invert_rss),
            "predict": kernel(&predict_times, &predict_rep, predict_rss),
        });
        print_stdout(&format!("{obj}\n"));
        return Ok(());
    }

    let mut s = Summary::new();
    s.row(
        "data",
        match &args.bundle {
            Some(dir) => format!("{}: {} visibilities", dir.display(), count(nvis)),
            None => format!(
                "LOW rmax {} m, {} times, {} channels 100-150 MHz: {} visibilities",
                args.rmax,
                args.times,
                args.channels,
                count(nvis)
            ),
        },
    );
    s.row(
        "image",
        format!(
            "{} x {}, cell {:.4} arcsec; {}, epsilon {:e}, {}, threads {}",
            geom.npix_x,
            geom.npix_y,
            rad_to_arcsec(geom.cell),
            args.precision.name(),
            args.epsilon,
            if args.no_wstacking {
                "no w-stacking"
            } else {
                "w-stacking"
            },
            if args.threads == 0 {
                "all".to_owned()
            } else {
                args.threads.to_string()
            }
        ),
    );
    for (name, times, rep, rss) in [
        ("invert", &invert_times, &invert_rep, invert_rss),
        ("predict", &predict_times, &predict_rep, predict_rss),
    ] {
        let (best, median) = best_median(times);
        s.row(
            name,
            format!(
                "best {}, median {} of {}: {}\nW {}, sigma {:.3}, grid {} x {}, {} w-planes; \
                 prepare {}, grid {}, fft {}, correct {}{}",
                seconds(best),
                seconds(median),
                times.len(),
                rate(nvis as f64, best),
                rep.support,
                rep.sigma,
                rep.nu,
                rep.nv,
                rep.nplanes,
                seconds(rep.times.prepare),
                seconds(rep.times.grid),
                seconds(rep.times.fft),
                seconds(rep.times.correct),
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
    dir: &std::path::Path,
    block: &VisBlock,
    geom: &ImageGeometry,
) -> Result<()> {
    let s = scenario(args);
    let mut meta = BundleMeta::for_block(block);
    meta.telescope = Some("LOW".into());
    meta.station_diameter_m = Some(LOW_STATION_DIAMETER);
    meta.extra.insert(
        "bench".into(),
        json!({
            "npix": geom.npix_x,
            "cell_rad": geom.cell,
            "cell_arcsec": rad_to_arcsec(geom.cell),
            "epsilon": args.epsilon,
            "rmax_m": s.rmax,
            "times": s.ntimes,
            "span_hours": s.span_hours,
            "channels": s.nchan,
            "f_min_hz": s.f_min,
            "f_max_hz": s.f_max,
            "command": ctx.command_line,
        }),
    );
    let stage = ctx.progress.stage(format!("writing {}", dir.display()));
    write_bundle(
        dir,
        block,
        &meta,
        WriteBundleOptions {
            vis_dtype: VisDtype::Complex128,
            overwrite: args.overwrite,
        },
    )?;
    stage.done();
    let mut sm = Summary::new();
    sm.row("wrote", dir.display());
    sm.row(
        "data",
        format!(
            "{} visibilities ({} rows x {} channels)",
            count(block.n_vis()),
            count(block.n_rows()),
            block.n_chan()
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
