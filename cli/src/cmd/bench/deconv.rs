//! `aperture bench deconv`: wall time and result quality of the CLEAN minor cycle on a
//! dirty image and its PSF, and the benchmark images themselves (`--write-images`), for
//! the side-by-side comparison with radler in `scripts/bench-vs-radler.sh`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use aperture_imaging::deconv::{self, Algorithm, CleanParams, CleanResult};
use aperture_imaging::gridder::{self, GridderOptions, Precision};
use aperture_imaging::image::Image;
use aperture_imaging::sim::Rng;
use aperture_imaging::sim::scenario::Scenario;
use aperture_pipeline::formats::fits::{
    Bitpix, FitsWriteOptions, read_fits_image, write_fits_image,
};
use clap::{Args, ValueEnum};
use ndarray::Array2;
use serde_json::json;

use crate::common::Context;
use crate::common::errors::for_option;
use crate::common::fits::{history, utc_now};
use crate::common::fmt::{Summary, print_stdout, seconds};
use crate::common::imaging::{check_npix, rad_to_arcsec};
use crate::common::output::FileOutputs;

/// The CLEAN variants timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchAlgorithm {
    Hogbom,
    Msclean,
}

/// Time the CLEAN minor cycle (Hogbom or multi-scale) on a dirty image and PSF.
///
/// Runs `deconvolve` --repeat times, single-threaded, and prints the best and median
/// wall times, the iterations and stop reason, the peak and RMS of the residual and, with
/// --sources (or a sources.json beside --dirty), the model flux recovered around each
/// true source. --write-images DIR makes the benchmark inputs and exits: the PSF of the
/// SDP benchmark scenario (LOW stations within 600 m, 7 times over 6 h, 8 channels at
/// 100-150 MHz, natural weighting) on an --npix image at three pixels per beam, and a
/// dirty image that is exactly model ⊛ PSF for --nsources point sources (10 mJy-1 Jy)
/// and one Gaussian (σ 6 pixels, 4.5 Jy), plus optional white noise; written as
/// 64-bit FITS with sources.json listing the truth.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  aperture bench deconv --write-images bench/\n  aperture bench deconv \
                        --dirty bench/dirty.fits --psf bench/psf.fits --algorithm msclean --json"
)]
pub struct DeconvArgs {
    /// Dirty image (FITS) to deconvolve.
    #[arg(
        long,
        value_name = "FITS",
        requires = "psf",
        required_unless_present = "write_images"
    )]
    pub dirty: Option<PathBuf>,
    /// Its PSF (FITS, same grid, peak at the centre pixel).
    #[arg(long, value_name = "FITS", requires = "dirty")]
    pub psf: Option<PathBuf>,
    /// The true sources (JSON list of {x, y, flux, radius}) whose recovered model flux is
    /// reported [default: sources.json beside --dirty, if present].
    #[arg(long, value_name = "JSON", requires = "dirty")]
    pub sources: Option<PathBuf>,
    /// Write dirty.fits, psf.fits and sources.json to DIR and exit (no timing).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dirty", "psf", "sources"])]
    pub write_images: Option<PathBuf>,
    /// Image pixels per side for --write-images.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2048,
        allow_negative_numbers = true
    )]
    pub npix: usize,
    /// Point sources in the --write-images sky.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 30,
        allow_negative_numbers = true
    )]
    pub nsources: usize,
    /// White noise added to the --write-images dirty image, Jy/beam.
    #[arg(
        long,
        value_name = "JY",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub noise: f64,
    /// Seed of the --write-images sky and noise.
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub seed: u64,
    /// CLEAN algorithm.
    #[arg(long, value_enum, default_value_t = BenchAlgorithm::Hogbom)]
    pub algorithm: BenchAlgorithm,
    /// Maximum number of components.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    pub niter: usize,
    /// Loop gain.
    #[arg(
        long,
        value_name = "G",
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    pub gain: f64,
    /// Absolute threshold on the peak residual, Jy/beam.
    #[arg(
        long,
        value_name = "JY",
        default_value_t = 1e-3,
        allow_negative_numbers = true
    )]
    pub threshold: f64,
    /// Multi-scale sizes in pixels.
    #[arg(
        long,
        value_name = "PX,...",
        value_delimiter = ',',
        default_value = "0,3,10,30",
        allow_negative_numbers = true
    )]
    pub scales: Vec<f64>,
    /// Multi-scale bias (WSClean convention).
    #[arg(
        long,
        value_name = "B",
        default_value_t = 0.6,
        allow_negative_numbers = true
    )]
    pub scale_bias: f64,
    /// PSF patch half-width in pixels [default: from the sidelobe level].
    #[arg(long, value_name = "PX", allow_negative_numbers = true)]
    pub psf_support: Option<usize>,
    /// Runs; best and median are reported.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub repeat: usize,
    /// Write the model of the last run to this FITS file (64-bit).
    #[arg(long, value_name = "FITS", requires = "dirty")]
    pub model_out: Option<PathBuf>,
    /// Replace existing output files.
    #[arg(long)]
    pub overwrite: bool,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A true source of the benchmark sky, with the radius (pixels, Chebyshev) within which
/// its model flux is summed.
#[derive(Debug, Clone, Copy)]
pub struct TrueSource {
    pub x: usize,
    pub y: usize,
    pub flux: f64,
    pub radius: usize,
}

pub fn run_deconv(args: &DeconvArgs, ctx: &Context) -> Result<()> {
    if let Some(dir) = &args.write_images {
        return write_images(args, ctx, dir);
    }
    let (Some(dirty_path), Some(psf_path)) = (&args.dirty, &args.psf) else {
        bail!("--dirty and --psf are required unless --write-images is given");
    };
    if args.repeat == 0 {
        bail!("--repeat 0: must be at least 1");
    }
    let params = CleanParams {
        algorithm: match args.algorithm {
            BenchAlgorithm::Hogbom => Algorithm::Hogbom,
            BenchAlgorithm::Msclean => Algorithm::Msclean,
        },
        niter: args.niter,
        gain: args.gain,
        threshold: args.threshold,
        scales: args.scales.clone(),
        scale_bias: args.scale_bias,
        psf_support: args.psf_support,
        ..Default::default()
    };
    let mut outs = FileOutputs::new(args.overwrite);
    let model_id = match &args.model_out {
        Some(p) => Some(outs.add("--model-out", p)?),
        None => None,
    };
    let read = |opt: &str, p: &Path| -> Result<Image> {
        Ok(read_fits_image(p)
            .map_err(|e| anyhow!("{opt} {}: {e}", p.display()))?
            .0)
    };
    let dirty = read("--dirty", dirty_path)?;
    let psf = read("--psf", psf_path)?;
    let sources = match &args.sources {
        Some(p) => Some(read_sources(p)?),
        None => {
            let beside = dirty_path.with_file_name("sources.json");
            beside.exists().then(|| read_sources(&beside)).transpose()?
        }
    };

    let names = [
        ("niter", "--niter"),
        ("gain", "--gain"),
        ("threshold", "--threshold"),
        ("scales", "--scales"),
        ("scale_bias", "--scale-bias"),
        ("psf_support", "--psf-support"),
        ("dirty", "--dirty"),
        ("psf", "--psf"),
    ];
    let mut times = Vec::with_capacity(args.repeat);
    let mut last: Option<CleanResult> = None;
    for i in 1..=args.repeat {
        drop(last.take());
        let stage = ctx.progress.stage(format!(
            "{:?} CLEAN run {i}/{}",
            args.algorithm, args.repeat
        ));
        let t = Instant::now();
        let r = deconv::deconvolve(&dirty, &psf, &params).map_err(|e| for_option(e, &names))?;
        times.push(t.elapsed().as_secs_f64());
        stage.done();
        last = Some(r);
    }
    let r = last.ok_or_else(|| anyhow!("no run"))?;
    if let Some(id) = model_id {
        let opts = FitsWriteOptions {
            bitpix: Bitpix::F64,
            bunit: "JY/PIXEL".into(),
            object: Some("CLEAN model".into()),
            date: utc_now(),
            extra: history(&ctx.command_line),
            ..Default::default()
        };
        write_fits_image(outs.staged(id), &r.model, &opts)
            .map_err(|e| anyhow!("--model-out: {e}"))?;
    }
    outs.commit()?;
    report(args, &dirty, &r, &times, sources.as_deref());
    Ok(())
}

impl TrueSource {
    fn to_json(self) -> serde_json::Value {
        json!({"x": self.x, "y": self.y, "flux": self.flux, "radius": self.radius})
    }

    fn from_json(v: &serde_json::Value) -> Option<Self> {
        let u = |k: &str| v.get(k)?.as_u64().map(|n| n as usize);
        Some(Self {
            x: u("x")?,
            y: u("y")?,
            flux: v
                .get("flux")?
                .as_f64()
                .filter(|f| f.is_finite() && *f != 0.0)?,
            radius: u("radius")?,
        })
    }
}

fn read_sources(p: &Path) -> Result<Vec<TrueSource>> {
    let bad = || {
        anyhow!(
            "--sources {}: expected a JSON list of {{x, y, flux, radius}}",
            p.display()
        )
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("--sources {}", p.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("--sources {}: {e}", p.display()))?;
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|s| TrueSource::from_json(s).ok_or_else(bad))
        .collect()
}

/// Model flux within Chebyshev radius `r` of (x, y).
fn flux_near(model: &Array2<f64>, x: usize, y: usize, r: usize) -> f64 {
    let (ny, nx) = model.dim();
    let mut s = 0.0;
    for yy in y.saturating_sub(r)..(y + r + 1).min(ny) {
        for xx in x.saturating_sub(r)..(x + r + 1).min(nx) {
            s += model[[yy, xx]];
        }
    }
    s
}

fn best_median(times: &[f64]) -> (f64, f64) {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}

fn report(
    args: &DeconvArgs,
    dirty: &Image,
    r: &CleanResult,
    times: &[f64],
    sources: Option<&[TrueSource]>,
) {
    let (best, median) = best_median(times);
    let res = &r.residual.data_yx;
    let rms = (res.iter().map(|v| v * v).sum::<f64>() / res.len() as f64).sqrt();
    let recovered: Vec<(TrueSource, f64)> = sources
        .unwrap_or_default()
        .iter()
        .map(|s| (*s, flux_near(&r.model.data_yx, s.x, s.y, s.radius)))
        .collect();
    let worst = recovered
        .iter()
        .map(|(s, f)| (f / s.flux - 1.0).abs())
        .fold(0.0, f64::max);
    if args.json {
        let obj = json!({
            "algorithm": format!("{:?}", args.algorithm).to_lowercase(),
            "npix": dirty.geom.npix_x,
            "niter": args.niter,
            "gain": args.gain,
            "threshold": args.threshold,
            "scales": args.scales,
            "best_s": best,
            "median_s": median,
            "times_s": times,
            "iterations": r.iterations,
            "stop_reason": r.stop_reason,
            "initial_peak": r.initial_peak,
            "final_peak": r.final_peak,
            "residual_rms": rms,
            "model_flux": r.model.data_yx.sum(),
            "sources": recovered.iter().map(|(s, f)| json!({
                "x": s.x, "y": s.y, "flux": s.flux, "recovered": f
            })).collect::<Vec<_>>(),
            "worst_flux_error": worst,
        });
        print_stdout(&format!("{obj}\n"));
        return;
    }
    let mut s = Summary::new();
    s.row(
        "image",
        format!(
            "{} x {}, cell {:.4} arcsec",
            dirty.geom.npix_x,
            dirty.geom.npix_y,
            rad_to_arcsec(dirty.geom.cell)
        ),
    );
    s.row(
        "clean",
        format!(
            "{:?}, niter {}, gain {}, threshold {} Jy/beam",
            args.algorithm, args.niter, args.gain, args.threshold
        ),
    );
    s.row(
        "time",
        format!(
            "best {}, median {} of {}",
            seconds(best),
            seconds(median),
            times.len()
        ),
    );
    s.row(
        "result",
        format!(
            "{} iterations, stopped by {:?}; peak residual {:.4e} -> {:.4e} Jy/beam, rms {rms:.4e}",
            r.iterations, r.stop_reason, r.initial_peak, r.final_peak
        ),
    );
    s.row("model flux", format!("{:.6} Jy", r.model.data_yx.sum()));
    if !recovered.is_empty() {
        s.row(
            "sources",
            format!(
                "{} recovered, worst flux error {:.3} %",
                recovered.len(),
                100.0 * worst
            ),
        );
    }
    s.print();
}

/// `--write-images`: the scenario PSF and an exact dirty image of a known sky.
fn write_images(args: &DeconvArgs, ctx: &Context, dir: &Path) -> Result<()> {
    check_npix(Some(args.npix))?;
    if !(args.noise.is_finite() && args.noise >= 0.0) {
        bail!(
            "--noise {}: must be a non-negative number of Jy/beam",
            args.noise
        );
    }
    if !dir.is_dir() {
        bail!("--write-images {}: not a directory", dir.display());
    }
    let mut outs = FileOutputs::new(args.overwrite);
    let dirty_id = outs.add("--write-images", &dir.join("dirty.fits"))?;
    let psf_id = outs.add("--write-images", &dir.join("psf.fits"))?;
    let src_id = outs.add("--write-images", &dir.join("sources.json"))?;

    let stage = ctx.progress.stage("simulating the benchmark scenario");
    let scenario = Scenario {
        npix: args.npix,
        ..Scenario::default()
    };
    let (block, geom) = scenario
        .build()
        .map_err(|e| for_option(e, &[("npix", "--npix")]))?;
    stage.done();
    let stage = ctx
        .progress
        .stage(format!("PSF on {} x {} pixels", args.npix, args.npix));
    let opts = GridderOptions {
        epsilon: 1e-6,
        precision: Precision::F64,
        wstacking: true,
        threads: 0,
    };
    let (psf, _) = gridder::psf_image(
        &block.uvw_r,
        &block.freq_c,
        block.effective_weight_rc().view(),
        &geom,
        &opts,
    )
    .map_err(|e| anyhow!("PSF: {e}"))?;
    stage.done();

    let stage = ctx.progress.stage("sky and dirty image");
    let n = args.npix;
    let mut rng = Rng::new(args.seed);
    let mut model = Array2::<f64>::zeros((n, n));
    let mut truth: Vec<TrueSource> = Vec::new();
    let far = |truth: &[TrueSource], x: usize, y: usize, d: usize| {
        truth
            .iter()
            .all(|s| s.x.abs_diff(x) > d || s.y.abs_diff(y) > d)
    };
    // One Gaussian (σ = 6 px, peak 0.02 Jy/pixel) and point sources, 10 mJy to 1 Jy
    // log-uniform, in the inner half, at least 8 pixels from each other and 40 from the
    // Gaussian.
    let (gx, gy) = (
        n / 4 + rng.below((n / 2) as u64) as usize,
        n / 4 + rng.below((n / 2) as u64) as usize,
    );
    let sigma = 6.0;
    let mut gflux = 0.0;
    for y in gy.saturating_sub(36)..(gy + 37).min(n) {
        for x in gx.saturating_sub(36)..(gx + 37).min(n) {
            let (dx, dy) = (x as f64 - gx as f64, y as f64 - gy as f64);
            let v = 0.02 * (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
            model[[y, x]] += v;
            gflux += v;
        }
    }
    let mut points = Vec::new();
    while points.len() < args.nsources {
        let x = n / 4 + rng.below((n / 2) as u64) as usize;
        let y = n / 4 + rng.below((n / 2) as u64) as usize;
        if x.abs_diff(gx).max(y.abs_diff(gy)) <= 40 || !far(&points, x, y, 8) {
            continue;
        }
        let flux = 10f64.powf(rng.uniform_range(-2.0, 0.0));
        model[[y, x]] += flux;
        points.push(TrueSource {
            x,
            y,
            flux,
            radius: 2,
        });
    }
    truth.push(TrueSource {
        x: gx,
        y: gy,
        flux: gflux,
        radius: 24,
    });
    truth.extend(points);
    let model = Image {
        geom,
        data_yx: model,
    };
    let mut dirty = deconv::convolve_psf(&model, &psf).map_err(|e| anyhow!("dirty: {e}"))?;
    if args.noise > 0.0 {
        dirty
            .data_yx
            .mapv_inplace(|v| v + args.noise * rng.normal());
    }
    stage.done();

    let fits = |object: &str| FitsWriteOptions {
        bitpix: Bitpix::F64,
        bunit: "JY/BEAM".into(),
        object: Some(object.into()),
        date: utc_now(),
        extra: history(&ctx.command_line),
        ..Default::default()
    };
    write_fits_image(
        outs.staged(dirty_id),
        &dirty,
        &fits("benchmark dirty image"),
    )
    .map_err(|e| anyhow!("--write-images: {e}"))?;
    write_fits_image(outs.staged(psf_id), &psf, &fits("point-spread function"))
        .map_err(|e| anyhow!("--write-images: {e}"))?;
    let text =
        serde_json::to_string_pretty(&truth.iter().map(|s| s.to_json()).collect::<Vec<_>>())?;
    std::fs::write(outs.staged(src_id), text).map_err(|e| anyhow!("--write-images: {e}"))?;
    let written = outs.commit()?;
    let mut s = Summary::new();
    s.row(
        "wrote",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    s.row(
        "sky",
        format!(
            "{} point sources and a Gaussian of {gflux:.3} Jy; dirty peak {:.4} Jy/beam, noise {} Jy/beam",
            args.nsources,
            dirty.data_yx.iter().fold(0.0f64, |m, v| m.max(v.abs())),
            args.noise
        ),
    );
    s.print();
    Ok(())
}
