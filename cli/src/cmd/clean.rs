//! `aperture clean`: deconvolve dirty images with their PSFs (Hogbom, multi-scale CLEAN,
//! or MSMFS over several frequency windows), restore with a beam fitted to the PSF (or
//! given), and write the model, residual and restored images as FITS with PNG quick-looks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use aperture_imaging::ImagingError;
use aperture_imaging::deconv::{self, Algorithm, CleanParams, CleanWindow, MfsResult, StopReason};
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::restore::{Beam, fit_psf_beam, restore, restore_taylor};
use aperture_pipeline::formats::fits::{
    Bitpix, Card, FitsHeader, FitsWriteOptions, RestoringBeam, read_fits_image, write_fits_image,
};
use aperture_pipeline::formats::png::{quicklook_path, write_png_quicklook};
use clap::{Args, ValueEnum};
use ndarray::Array2;

use crate::common::Context;
use crate::common::errors::for_option_or;
use crate::common::fits::{fits_text, history, utc_now};
use crate::common::fmt::{Summary, radec, seconds};
use crate::common::imaging::{arcsec_to_rad, rad_to_arcsec};
use crate::common::output::{FileOutputs, OutputId, check_not_input};

/// The CLEAN variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgorithmArg {
    /// Point-source CLEAN (Högbom 1974): one DIRTY PSF pair.
    Hogbom,
    /// Multi-scale CLEAN (Cornwell 2008): one DIRTY PSF pair, --scales.
    Msclean,
    /// Multi-scale multi-frequency synthesis (Rau & Cornwell 2011): one DIRTY PSF pair
    /// per frequency window, --nmoment Taylor terms and a spectral-index map.
    Msmfs,
}

impl AlgorithmArg {
    fn algorithm(self) -> Algorithm {
        match self {
            Self::Hogbom => Algorithm::Hogbom,
            Self::Msclean => Algorithm::Msclean,
            Self::Msmfs => Algorithm::Msmfs,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Hogbom => "hogbom",
            Self::Msclean => "msclean",
            Self::Msmfs => "msmfs",
        }
    }
}

/// Deconvolve a dirty image with its PSF and restore it.
///
/// Reads the dirty image and PSF as `aperture invert --out DIRTY --psf PSF` writes them
/// (same grid; the PSF peaks at its centre pixel), runs the minor cycle, fits an
/// elliptical Gaussian to the PSF main lobe (pixels above 0.35 of the peak; or takes
/// --beam) and writes PREFIX-model.fits (Jy/pixel), PREFIX-residual.fits (Jy/beam) and
/// PREFIX-restored.fits (model convolved with the beam plus residual, Jy/beam, with
/// BMAJ/BMIN/BPA), each with a PNG quick-look.
///
/// With --algorithm msmfs, give one DIRTY PSF pair per frequency window; the windows are
/// weighted by the SUMWT card invert writes (equally without it). The outputs are
/// PREFIX-{model,residual,restored}-ttN.fits per Taylor term, PREFIX-restored.fits (the
/// MFS image, term 0) and, for two or more terms, PREFIX-alpha.fits (spectral index).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  aperture invert obs/ --out dirty.fits --psf psf.fits\n  \
                        aperture clean dirty.fits psf.fits --niter 5000 --auto-threshold 3 \
                        --out clean/run\n  aperture clean d0.fits p0.fits d1.fits p1.fits \
                        --algorithm msmfs --nmoment 2 --out clean/mfs"
)]
pub struct CleanArgs {
    /// The dirty image and its PSF (FITS); for msmfs one pair per frequency window.
    #[arg(value_name = "DIRTY PSF", required = true, num_args = 2..)]
    pub images: Vec<PathBuf>,
    /// The deconvolution algorithm.
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Hogbom)]
    pub algorithm: AlgorithmArg,
    /// Maximum number of minor-cycle iterations (components), at least 1.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        allow_negative_numbers = true
    )]
    pub niter: usize,
    /// Loop gain: the fraction of the peak taken per iteration, in (0, 1].
    #[arg(
        long,
        value_name = "G",
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    pub gain: f64,
    /// Stop when the peak residual falls below this, Jy/beam.
    #[arg(
        long,
        value_name = "JY",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub threshold: f64,
    /// Stop when the peak residual falls below this fraction of the initial peak, [0, 1).
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub fractional_threshold: f64,
    /// Stop when the peak residual falls below SIGMA times the residual RMS (robust,
    /// from the median absolute deviation), like WSClean's -auto-threshold.
    #[arg(long, value_name = "SIGMA", allow_negative_numbers = true)]
    pub auto_threshold: Option<f64>,
    /// Half-width in pixels of the PSF patch subtracted per component [default: chosen
    /// from the PSF sidelobe level].
    #[arg(long, value_name = "PX", allow_negative_numbers = true)]
    pub psf_support: Option<usize>,
    /// Where components may go: all, quarter (the inner quarter), no-edge:N (all but an
    /// N-pixel border) or a FITS mask on the dirty image's grid (non-zero = allowed).
    #[arg(
        long,
        value_name = "all|quarter|no-edge:N|MASK.fits",
        default_value = "all"
    )]
    pub window: String,
    /// Scale sizes in pixels for msclean and msmfs (0 = point) [default: 0,3,10,30].
    #[arg(
        long,
        value_name = "PX,...",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub scales: Option<Vec<f64>>,
    /// Multi-scale scale bias (WSClean's -multiscale-scale-bias) [default: 0.6].
    #[arg(long, value_name = "B", allow_negative_numbers = true)]
    pub scale_bias: Option<f64>,
    /// Number of Taylor terms for msmfs, 1 to 3 [default: 2].
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    pub nmoment: Option<usize>,
    /// Restore with this beam instead of one fitted to the PSF: FWHM major and minor axes
    /// in arcseconds and position angle (north through east) in degrees.
    #[arg(
        long,
        value_name = "BMAJ,BMIN,BPA",
        allow_negative_numbers = true,
        allow_hyphen_values = true
    )]
    pub beam: Option<String>,
    /// Output prefix: writes PREFIX-model.fits, PREFIX-residual.fits,
    /// PREFIX-restored.fits (and for msmfs the Taylor terms and PREFIX-alpha.fits), each
    /// with a PNG quick-look.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Write 64-bit float pixels (BITPIX -64) instead of 32-bit.
    #[arg(long)]
    pub fits_f64: bool,
    /// Replace output files that already exist.
    #[arg(long)]
    pub overwrite: bool,
}

/// Names of the deconvolution parameters in library errors, and their options.
const PARAM_OPTIONS: &[(&str, &str)] = &[
    ("niter", "--niter"),
    ("gain", "--gain"),
    ("threshold", "--threshold"),
    ("fractional_threshold", "--fractional-threshold"),
    ("auto_threshold", "--auto-threshold"),
    ("psf_support", "--psf-support"),
    ("window", "--window"),
    ("scales", "--scales"),
    ("scale_bias", "--scale-bias"),
    ("nmoment", "--nmoment"),
];

/// The window as given, before the mask file (if any) is read.
#[derive(Debug, Clone, PartialEq)]
enum WindowArg {
    Shape(CleanWindow),
    Mask(PathBuf),
}

/// Options checked before any file is read.
struct Checked {
    params: CleanParams,
    window: WindowArg,
    beam: Option<Beam>,
    /// (dirty, psf) per window.
    pairs: Vec<(PathBuf, PathBuf)>,
}

fn check_args(args: &CleanArgs) -> Result<Checked> {
    let n = args.images.len();
    let multi = args.algorithm == AlgorithmArg::Msmfs;
    if !multi && n != 2 {
        bail!(
            "expected one DIRTY PSF pair (2 files) for --algorithm {}, got {n} files; \
             several frequency windows need --algorithm msmfs",
            args.algorithm.name()
        );
    }
    if !n.is_multiple_of(2) {
        bail!(
            "--algorithm msmfs takes DIRTY PSF pairs, one per frequency window; got an odd \
             number of files ({n}): {} has no PSF",
            args.images[n - 1].display()
        );
    }
    let pairs: Vec<(PathBuf, PathBuf)> = args
        .images
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();

    if args.niter == 0 {
        bail!("--niter 0: must be at least 1");
    }
    if !(args.gain.is_finite() && args.gain > 0.0 && args.gain <= 1.0) {
        bail!("--gain {}: must be in (0, 1]", args.gain);
    }
    if !(args.threshold.is_finite() && args.threshold >= 0.0) {
        bail!(
            "--threshold {}: must be a non-negative flux in Jy/beam",
            args.threshold
        );
    }
    let f = args.fractional_threshold;
    if !(f.is_finite() && (0.0..1.0).contains(&f)) {
        bail!("--fractional-threshold {f}: must be in [0, 1)");
    }
    if let Some(s) = args.auto_threshold
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--auto-threshold {s}: must be a positive number of residual RMS");
    }
    if args.psf_support == Some(0) {
        bail!("--psf-support 0: must be at least 1 pixel");
    }
    let multiscale = matches!(args.algorithm, AlgorithmArg::Msclean | AlgorithmArg::Msmfs);
    if !multiscale {
        if args.scales.is_some() {
            bail!("--scales: only applies with --algorithm msclean or msmfs");
        }
        if args.scale_bias.is_some() {
            bail!("--scale-bias: only applies with --algorithm msclean or msmfs");
        }
    }
    if !multi && args.nmoment.is_some() {
        bail!("--nmoment: only applies with --algorithm msmfs");
    }
    let defaults = CleanParams::default();
    let scales = args.scales.clone().unwrap_or(defaults.scales);
    if scales.is_empty() {
        bail!("--scales: give at least one scale in pixels");
    }
    if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        bail!("--scales: {s} is not a non-negative size in pixels");
    }
    let scale_bias = args.scale_bias.unwrap_or(defaults.scale_bias);
    if !(scale_bias.is_finite() && scale_bias >= 0.0) {
        bail!("--scale-bias {scale_bias}: must be a non-negative number");
    }
    let nmoment = args.nmoment.unwrap_or(defaults.nmoment);
    if !(1..=3).contains(&nmoment) {
        bail!("--nmoment {nmoment}: must be 1, 2 or 3");
    }
    if multi && pairs.len() < nmoment {
        bail!(
            "--nmoment {nmoment}: needs at least {nmoment} frequency windows (DIRTY PSF \
             pairs), got {}",
            pairs.len()
        );
    }
    let window = parse_window(&args.window)?;
    let beam = args.beam.as_deref().map(parse_beam).transpose()?;
    Ok(Checked {
        params: CleanParams {
            algorithm: args.algorithm.algorithm(),
            niter: args.niter,
            gain: args.gain,
            threshold: args.threshold,
            fractional_threshold: f,
            auto_threshold: args.auto_threshold,
            psf_support: args.psf_support,
            window: CleanWindow::All,
            scales,
            scale_bias,
            nmoment,
            // All cores: the result does not depend on the thread count.
            threads: 0,
        },
        window,
        beam,
        pairs,
    })
}

/// `all`, `quarter`, `no-edge:N` or the path of an existing FITS mask.
fn parse_window(text: &str) -> Result<WindowArg> {
    match text {
        "all" => return Ok(WindowArg::Shape(CleanWindow::All)),
        "quarter" => return Ok(WindowArg::Shape(CleanWindow::Quarter)),
        _ => {}
    }
    if let Some(n) = text.strip_prefix("no-edge:") {
        let n: usize = n
            .parse()
            .map_err(|_| anyhow!("--window {text}: no-edge:N needs a border width N in pixels"))?;
        return Ok(WindowArg::Shape(CleanWindow::NoEdge(n)));
    }
    let path = PathBuf::from(text);
    if !path.is_file() {
        bail!("--window {text}: neither all, quarter, no-edge:N nor an existing FITS mask file");
    }
    Ok(WindowArg::Mask(path))
}

/// `BMAJ,BMIN,BPA` in arcsec, arcsec, degrees.
fn parse_beam(text: &str) -> Result<Beam> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let vals: Vec<f64> = parts
        .iter()
        .map(|p| p.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            anyhow!("--beam {text}: expected three numbers BMAJ,BMIN,BPA (arcsec, arcsec, deg)")
        })?;
    let [bmaj, bmin, bpa] = vals[..] else {
        bail!("--beam {text}: expected three numbers BMAJ,BMIN,BPA (arcsec, arcsec, deg)");
    };
    if !(bmin.is_finite() && bmin > 0.0 && bmaj.is_finite() && bpa.is_finite()) {
        bail!("--beam {text}: BMAJ and BMIN must be positive and all three finite");
    }
    if bmaj < bmin {
        bail!("--beam {text}: BMAJ ({bmaj}) must be at least BMIN ({bmin})");
    }
    Beam::new(arcsec_to_rad(bmaj), arcsec_to_rad(bmin), bpa.to_radians())
        .map_err(|e| anyhow!("--beam {text}: {e}"))
}

/// An image read from a FITS file.
struct Input {
    path: PathBuf,
    image: Image,
    header: FitsHeader,
}

fn read_input(path: &Path) -> Result<Input> {
    let (image, header) = read_fits_image(path).map_err(|e| anyhow!("{e}"))?;
    Ok(Input {
        path: path.to_path_buf(),
        image,
        header,
    })
}

/// Errors unless `b` has the shape, cell, phase centre (and, with `freq`, the frequency)
/// of `a`.
fn check_same_grid(a: &Input, b: &Input, freq: bool) -> Result<()> {
    let (ga, gb) = (&a.image.geom, &b.image.geom);
    let (pa, pb) = (a.path.display(), b.path.display());
    if (ga.npix_x, ga.npix_y) != (gb.npix_x, gb.npix_y) {
        bail!(
            "{pb}: {} x {} pixels, but {pa} has {} x {}; the images must be on one grid",
            gb.npix_x,
            gb.npix_y,
            ga.npix_x,
            ga.npix_y
        );
    }
    if (ga.cell - gb.cell).abs() > 1e-9 * ga.cell {
        bail!(
            "{pb}: cell {:.6} arcsec, but {pa} has {:.6} arcsec; the images must be on one grid",
            rad_to_arcsec(gb.cell),
            rad_to_arcsec(ga.cell)
        );
    }
    let (ca, cb) = (ga.phase_centre, gb.phase_centre);
    let d_ra = (ca.ra - cb.ra).abs();
    let d_ra = d_ra.min(std::f64::consts::TAU - d_ra) * ca.dec.cos();
    if d_ra.hypot(ca.dec - cb.dec) > 1e-9 * ga.cell {
        bail!(
            "{pb}: phase centre {}, but {pa} has {}; the images must be on one grid",
            radec(cb.ra, cb.dec),
            radec(ca.ra, ca.dec)
        );
    }
    if freq && (ga.freq_hz - gb.freq_hz).abs() > 1e-9 * ga.freq_hz.abs().max(1.0) {
        bail!(
            "{pb}: frequency {:.6} MHz, but {pa} is at {:.6} MHz; a PSF must belong to its \
             dirty image",
            gb.freq_hz / 1e6,
            ga.freq_hz / 1e6
        );
    }
    Ok(())
}

/// Errors unless the PSF's maximum is its centre pixel (as invert writes it).
fn check_psf_peak(psf: &Input) -> Result<()> {
    let img = &psf.image;
    let (cx, cy) = (img.geom.npix_x / 2, img.geom.npix_y / 2);
    let centre = img.data_yx[[cy, cx]];
    let (peak, x, y) = img.peak();
    if peak <= 0.0 {
        bail!(
            "{}: no positive pixel; not a PSF (aperture invert --psf writes one)",
            psf.path.display()
        );
    }
    if centre < peak * (1.0 - 1e-6) {
        bail!(
            "{}: the PSF peaks at pixel (x={x}, y={y}) with {peak:.6}, not at the centre \
             (x={cx}, y={cy}) which holds {centre:.6}; a PSF must peak at its centre",
            psf.path.display()
        );
    }
    Ok(())
}

/// The clean window on the dirty image's grid.
fn resolve_window(window: &WindowArg, reference: &Input) -> Result<CleanWindow> {
    match window {
        WindowArg::Shape(CleanWindow::NoEdge(n)) => {
            let g = &reference.image.geom;
            if 2 * n >= g.npix_x.min(g.npix_y) {
                bail!(
                    "--window no-edge:{n}: the border leaves no pixel of the {} x {} image",
                    g.npix_x,
                    g.npix_y
                );
            }
            Ok(CleanWindow::NoEdge(*n))
        }
        WindowArg::Shape(w) => Ok(w.clone()),
        WindowArg::Mask(path) => {
            let mask = read_input(path).map_err(|e| anyhow!("--window: {e}"))?;
            check_same_grid(reference, &mask, false).map_err(|e| anyhow!("--window: {e}"))?;
            let m: Array2<bool> = mask.image.data_yx.mapv(|v| v != 0.0);
            if !m.iter().any(|&b| b) {
                bail!(
                    "--window {}: the mask is zero everywhere; no pixel may be cleaned",
                    path.display()
                );
            }
            Ok(CleanWindow::Mask(m))
        }
    }
}

/// Relative weights of the windows: the dirty images' `SUMWT` cards (sum of imaging
/// weights, written by invert) when all have one, else equal; and whether SUMWT was used.
fn window_weights(dirty: &[Input]) -> (Vec<f64>, bool) {
    let w: Option<Vec<f64>> = dirty
        .iter()
        .map(|d| {
            d.header
                .get_f64("SUMWT")
                .filter(|w| w.is_finite() && *w > 0.0)
        })
        .collect();
    match w {
        Some(w) => (w, true),
        None => (vec![1.0; dirty.len()], false),
    }
}

/// The weighted mean of the PSFs (the MFS PSF, term 0 of the Taylor PSFs), peak 1.
fn mean_psf(psfs: &[Input], weights: &[f64]) -> Image {
    let total: f64 = weights.iter().sum();
    let mut img = Image::zeros(psfs[0].image.geom);
    for (p, w) in psfs.iter().zip(weights) {
        img.data_yx.scaled_add(w / total, &p.image.data_yx);
    }
    img
}

/// Fits the restoring beam to `psf` (from `what`), with a hint towards --beam.
fn fit_beam(psf: &Image, what: &str) -> Result<Beam> {
    fit_psf_beam(psf).map_err(|e| {
        let reason = match e {
            ImagingError::InvalidParameter { reason, .. } => reason,
            other => other.to_string(),
        };
        anyhow!(
            "{what}: cannot fit the restoring beam: the PSF {reason}; give --beam \
             BMAJ,BMIN,BPA to restore with a beam of your choice"
        )
    })
}

/// One output product: a FITS file and its PNG quick-look.
struct Product {
    path: PathBuf,
    fits: OutputId,
    png: OutputId,
}

impl Product {
    fn write(&self, outs: &FileOutputs, img: &Image, opts: &FitsWriteOptions) -> Result<()> {
        let staged = outs.staged(self.fits);
        write_fits_image(staged, img, opts).map_err(|e| write_error(e, &self.path, staged))?;
        let png = quicklook_path(&self.path);
        let staged = outs.staged(self.png);
        write_png_quicklook(staged, img).map_err(|e| write_error(e, &png, staged))?;
        Ok(())
    }
}

fn write_error(e: aperture_pipeline::FormatError, path: &Path, staged: &Path) -> anyhow::Error {
    let msg = e
        .to_string()
        .replace(&staged.display().to_string(), &path.display().to_string());
    anyhow!("--out {}: {msg}", path.display())
}

/// `PREFIX` + `suffix` (e.g. `-model.fits`).
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = prefix.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    prefix.with_file_name(name)
}

/// The products to write, registered (and checked) before any computation.
struct Products {
    model: Vec<Product>,
    residual: Vec<Product>,
    restored: Vec<Product>,
    /// The MFS restored image (msmfs only).
    mfs: Option<Product>,
    alpha: Option<Product>,
}

fn register(
    outs: &mut FileOutputs,
    prefix: &Path,
    taylor: Option<usize>,
    inputs: &[&Path],
) -> Result<Products> {
    if prefix.file_name().is_none()
        || prefix
            .as_os_str()
            .to_string_lossy()
            .ends_with(std::path::MAIN_SEPARATOR)
    {
        bail!(
            "--out {}: give a file-name prefix (e.g. out/run writes out/run-model.fits)",
            prefix.display()
        );
    }
    let mut add = |suffix: String| -> Result<Product> {
        let path = with_suffix(prefix, &suffix);
        for input in inputs {
            check_not_input("--out", &path, "input image", input)?;
            check_not_input("--out", &quicklook_path(&path), "input image", input)?;
        }
        Ok(Product {
            fits: outs.add("--out", &path)?,
            png: outs.add("--out (quick-look)", &quicklook_path(&path))?,
            path,
        })
    };
    let mut p = Products {
        model: vec![],
        residual: vec![],
        restored: vec![],
        mfs: None,
        alpha: None,
    };
    match taylor {
        None => {
            p.model.push(add("-model.fits".into())?);
            p.residual.push(add("-residual.fits".into())?);
            p.restored.push(add("-restored.fits".into())?);
        }
        Some(k) => {
            for t in 0..k {
                p.model.push(add(format!("-model-tt{t}.fits"))?);
            }
            for t in 0..k {
                p.residual.push(add(format!("-residual-tt{t}.fits"))?);
            }
            for t in 0..k {
                p.restored.push(add(format!("-restored-tt{t}.fits"))?);
            }
            p.mfs = Some(add("-restored.fits".into())?);
            if k >= 2 {
                p.alpha = Some(add("-alpha.fits".into())?);
            }
        }
    }
    Ok(p)
}

/// The deconvolution outcome common to both entry points.
struct Outcome {
    model: Vec<Image>,
    residual: Vec<Image>,
    iterations: usize,
    stop_reason: StopReason,
    initial_peak: f64,
    final_peak: f64,
    ref_freq_hz: Option<f64>,
}

pub fn run(args: &CleanArgs, ctx: &Context) -> Result<()> {
    let t_start = Instant::now();
    let checked = check_args(args)?;
    let mut params = checked.params.clone();
    let multi = params.algorithm == Algorithm::Msmfs;

    // Inputs exist and outputs are writable before anything is computed.
    let mut inputs: Vec<&Path> = Vec::new();
    for (d, p) in &checked.pairs {
        inputs.extend([d.as_path(), p.as_path()]);
    }
    if let WindowArg::Mask(m) = &checked.window {
        inputs.push(m);
    }
    let mut outs = FileOutputs::new(args.overwrite);
    let products = register(
        &mut outs,
        &args.out,
        multi.then_some(params.nmoment),
        &inputs,
    )?;

    let stage = ctx.progress.stage(format!(
        "reading {} image{}",
        inputs.len(),
        if inputs.len() == 1 { "" } else { "s" }
    ));
    let mut dirty = Vec::new();
    let mut psfs = Vec::new();
    for (d, p) in &checked.pairs {
        let d = read_input(d)?;
        let p = read_input(p)?;
        check_same_grid(&d, &p, true)?;
        check_psf_peak(&p)?;
        if let Some(first) = dirty.first() {
            check_same_grid(first, &d, false)?;
        }
        dirty.push(d);
        psfs.push(p);
    }
    params.window = resolve_window(&checked.window, &dirty[0])?;
    stage.done();

    let (weights, sumwt) = window_weights(&dirty);
    if multi && !sumwt {
        ctx.progress.note(
            "note: not every dirty image has a SUMWT card (sum of weights); weighting the \
             windows equally",
        );
    }

    // The restoring beam first: a PSF that cannot be fitted fails before the minor cycle.
    let (beam, fitted) = match checked.beam {
        Some(b) => (b, false),
        None if multi => {
            let what = format!(
                "the weighted mean of the PSFs {}",
                psfs.iter()
                    .map(|p| p.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            (fit_beam(&mean_psf(&psfs, &weights), &what)?, true)
        }
        None => (
            fit_beam(&psfs[0].image, &psfs[0].path.display().to_string())?,
            true,
        ),
    };

    let stage = ctx.progress.stage(format!(
        "deconvolving ({}, niter {})",
        args.algorithm.name(),
        params.niter
    ));
    let t0 = Instant::now();
    let context = || {
        checked
            .pairs
            .iter()
            .map(|(d, p)| format!("{} with {}", d.display(), p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let outcome = if multi {
        let d: Vec<Image> = dirty.iter().map(|i| i.image.clone()).collect();
        let p: Vec<Image> = psfs.iter().map(|i| i.image.clone()).collect();
        let r = deconv::deconvolve_mfs(&d, &p, &weights, None, &params)
            .map_err(|e| for_option_or(e, PARAM_OPTIONS, context()))?;
        mfs_outcome(r)
    } else {
        let r = deconv::deconvolve(&dirty[0].image, &psfs[0].image, &params)
            .map_err(|e| for_option_or(e, PARAM_OPTIONS, context()))?;
        Outcome {
            model: vec![r.model],
            residual: vec![r.residual],
            iterations: r.iterations,
            stop_reason: r.stop_reason,
            initial_peak: r.initial_peak,
            final_peak: r.final_peak,
            ref_freq_hz: None,
        }
    };
    let t_deconv = t0.elapsed().as_secs_f64();
    stage.done_with(&format!(
        "{} iterations, {}",
        outcome.iterations,
        stop_text(outcome.stop_reason)
    ));

    let stage = ctx.progress.stage("restoring");
    let t0 = Instant::now();
    let mut restored = if multi {
        restore_taylor(&outcome.model, &outcome.residual, &beam)
    } else {
        restore(&outcome.model[0], &outcome.residual[0], &beam).map(|r| vec![r])
    }
    .map_err(|e| anyhow!("restoring: {e}"))?;
    let mut alpha = match &products.alpha {
        Some(_) => {
            // The spectral index where the restored MFS image is above the larger of the
            // threshold and the final peak residual (below it the ratio is noise).
            let level = params.threshold.max(outcome.final_peak);
            Some(
                deconv::spectral_index(&restored, level)
                    .map_err(|e| anyhow!("spectral index: {e}"))?,
            )
        }
        None => None,
    };
    let t_restore = t0.elapsed().as_secs_f64();
    stage.done();

    // The band the products represent.
    let mut model = outcome.model.clone();
    let mut residual = outcome.residual.clone();
    if let Some(f0) = outcome.ref_freq_hz {
        let geom = band_geometry(&dirty, f0);
        for img in model
            .iter_mut()
            .chain(residual.iter_mut())
            .chain(restored.iter_mut())
            .chain(alpha.iter_mut())
        {
            img.geom = geom;
        }
    }

    let stage = ctx.progress.stage("writing FITS and PNG files");
    let rb = RestoringBeam {
        bmaj_deg: beam.bmaj_rad.to_degrees(),
        bmin_deg: beam.bmin_rad.to_degrees(),
        bpa_deg: beam.bpa_rad.to_degrees(),
    };
    let base_cards = clean_cards(&params, &outcome, fitted);
    let telescope = dirty[0].header.get_str("TELESCOP").map(fits_text);
    let opts = |bunit: &str, object: &str, beam: Option<RestoringBeam>, term: Option<usize>| {
        let mut extra = base_cards.clone();
        if let Some(t) = term {
            extra.push(Card::new("TAYLOR", t as i64, "Taylor term index"));
        }
        extra.extend(history(&ctx.command_line));
        FitsWriteOptions {
            bitpix: if args.fits_f64 {
                Bitpix::F64
            } else {
                Bitpix::F32
            },
            bunit: bunit.into(),
            object: Some(object.into()),
            telescope: telescope.clone(),
            date: utc_now(),
            beam,
            extra,
        }
    };
    let term = |t: usize| multi.then_some(t);
    for (t, (p, img)) in products.model.iter().zip(&model).enumerate() {
        p.write(&outs, img, &opts("JY/PIXEL", "clean model", None, term(t)))?;
    }
    for (t, (p, img)) in products.residual.iter().zip(&residual).enumerate() {
        p.write(
            &outs,
            img,
            &opts("JY/BEAM", "residual image", None, term(t)),
        )?;
    }
    for (t, (p, img)) in products.restored.iter().zip(&restored).enumerate() {
        p.write(
            &outs,
            img,
            &opts("JY/BEAM", "restored image", Some(rb), term(t)),
        )?;
    }
    if let Some(p) = &products.mfs {
        p.write(
            &outs,
            &restored[0],
            &opts("JY/BEAM", "restored MFS image", Some(rb), None),
        )?;
    }
    if let (Some(p), Some(a)) = (&products.alpha, &alpha) {
        p.write(&outs, a, &opts("", "spectral index", Some(rb), None))?;
    }
    let written = outs.commit()?;
    stage.done();

    let mut s = Summary::new();
    s.row(
        "inputs",
        checked
            .pairs
            .iter()
            .map(|(d, p)| format!("{} with PSF {}", d.display(), p.display()))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let g = &dirty[0].image.geom;
    s.row(
        "image",
        format!(
            "{} x {} pixels, cell {:.4} arcsec",
            g.npix_x,
            g.npix_y,
            rad_to_arcsec(g.cell)
        ),
    );
    let mut algo = args.algorithm.name().to_owned();
    if params.algorithm != Algorithm::Hogbom {
        algo.push_str(&format!(
            ", scales {:?} px, scale bias {}",
            params.scales, params.scale_bias
        ));
    }
    if multi {
        algo.push_str(&format!(
            ", {} Taylor terms over {} windows (weights {})",
            params.nmoment,
            dirty.len(),
            if sumwt { "SUMWT" } else { "equal" }
        ));
    }
    s.row("algorithm", algo);
    s.row(
        "iterations",
        format!(
            "{} of {} (gain {}); stopped: {}",
            outcome.iterations,
            params.niter,
            params.gain,
            stop_text(outcome.stop_reason)
        ),
    );
    s.row(
        "peak residual",
        format!(
            "{} initially, {} at the end",
            jy_beam(outcome.initial_peak),
            jy_beam(outcome.final_peak)
        ),
    );
    s.row(
        "model flux",
        format!("{:.6} Jy", outcome.model[0].data_yx.sum()),
    );
    s.row(
        "beam",
        format!(
            "{:.4} x {:.4} arcsec, BPA {:.2} deg ({})",
            rad_to_arcsec(beam.bmaj_rad),
            rad_to_arcsec(beam.bmin_rad),
            beam.bpa_rad.to_degrees(),
            if fitted {
                "fitted to the PSF main lobe"
            } else {
                "given with --beam"
            }
        ),
    );
    let (peak, x, y) = restored[0].peak();
    s.row(
        "restored peak",
        format!("{peak:.6} Jy/beam at pixel (x={x}, y={y}), 0-based"),
    );
    if let Some(f0) = outcome.ref_freq_hz {
        s.row("reference frequency", format!("{:.6} MHz", f0 / 1e6));
    }
    s.row(
        "timing",
        format!(
            "deconvolution {}, restoration {}, total {}",
            seconds(t_deconv),
            seconds(t_restore),
            seconds(t_start.elapsed().as_secs_f64())
        ),
    );
    s.row(
        "wrote",
        written
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "fits"))
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    s.print();
    Ok(())
}

/// A flux density in Jy/beam with six significant digits.
fn jy_beam(v: f64) -> String {
    if v == 0.0 || (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.6} Jy/beam")
    } else {
        format!("{v:.5e} Jy/beam")
    }
}

fn mfs_outcome(r: MfsResult) -> Outcome {
    Outcome {
        model: r.model_taylor,
        residual: r.residual_taylor,
        iterations: r.iterations,
        stop_reason: r.stop_reason,
        initial_peak: r.initial_peak,
        final_peak: r.final_peak,
        ref_freq_hz: Some(r.ref_freq_hz),
    }
}

/// The geometry of an MFS product: the reference frequency and the band spanned by the
/// windows.
fn band_geometry(dirty: &[Input], ref_freq_hz: f64) -> ImageGeometry {
    let lo = dirty
        .iter()
        .map(|d| d.image.geom.freq_hz - 0.5 * d.image.geom.bandwidth_hz)
        .fold(f64::INFINITY, f64::min);
    let hi = dirty
        .iter()
        .map(|d| d.image.geom.freq_hz + 0.5 * d.image.geom.bandwidth_hz)
        .fold(f64::NEG_INFINITY, f64::max);
    ImageGeometry {
        freq_hz: ref_freq_hz,
        bandwidth_hz: (hi - lo).max(0.0),
        ..dirty[0].image.geom
    }
}

/// Header cards recording the deconvolution.
fn clean_cards(params: &CleanParams, outcome: &Outcome, fitted: bool) -> Vec<Card> {
    let mut cards = vec![
        Card::new(
            "DECONV",
            algorithm_name(params.algorithm),
            "deconvolution algorithm",
        ),
        Card::new(
            "NITER",
            params.niter as i64,
            "maximum minor-cycle iterations",
        ),
        Card::new("ITERS", outcome.iterations as i64, "iterations done"),
        Card::new("GAIN", params.gain, "loop gain"),
        Card::new("THRESH", params.threshold, "absolute threshold (Jy/beam)"),
        Card::new(
            "STOPRSN",
            stop_code(outcome.stop_reason),
            "why the minor cycle stopped",
        ),
        Card::new(
            "PEAKRES",
            outcome.final_peak,
            "final peak residual (Jy/beam)",
        ),
        Card::new(
            "BEAMFIT",
            fitted,
            "restoring beam fitted to the PSF (F: user-given)",
        ),
    ];
    if params.algorithm != Algorithm::Hogbom {
        cards.push(Card::new(
            "SCALES",
            params
                .scales
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(","),
            "multi-scale sizes (pixels)",
        ));
    }
    if let Some(f0) = outcome.ref_freq_hz {
        cards.push(Card::new("NMOMENT", params.nmoment as i64, "Taylor terms"));
        cards.push(Card::new("REFFREQ", f0, "Taylor reference frequency (Hz)"));
    }
    cards
}

fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Hogbom => "hogbom",
        Algorithm::Msclean => "msclean",
        Algorithm::Msmfs => "msmfs",
    }
}

fn stop_code(r: StopReason) -> &'static str {
    match r {
        StopReason::Niter => "niter",
        StopReason::Threshold => "threshold",
        StopReason::FractionalThreshold => "fractional-threshold",
        StopReason::AutoThreshold => "auto-threshold",
        StopReason::NothingToClean => "nothing-to-clean",
        StopReason::Diverging => "diverging",
    }
}

fn stop_text(r: StopReason) -> &'static str {
    match r {
        StopReason::Niter => "--niter components taken",
        StopReason::Threshold => "peak residual below --threshold",
        StopReason::FractionalThreshold => "peak residual below --fractional-threshold",
        StopReason::AutoThreshold => "peak residual below --auto-threshold x RMS",
        StopReason::NothingToClean => "nothing left to clean in the window",
        StopReason::Diverging => "the peak residual kept growing (diverging); try a lower --gain",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_defaults_match_the_library() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct T {
            #[command(flatten)]
            a: CleanArgs,
        }
        let t = T::try_parse_from(["t", "d.fits", "p.fits", "--out", "x"]).unwrap();
        let d = CleanParams::default();
        assert_eq!(t.a.niter, d.niter);
        assert_eq!(t.a.gain, d.gain);
        assert_eq!(t.a.threshold, d.threshold);
        assert_eq!(t.a.fractional_threshold, d.fractional_threshold);
        assert_eq!(t.a.algorithm.algorithm(), d.algorithm);
    }

    #[test]
    fn windows_and_beams_parse() {
        assert_eq!(
            parse_window("quarter").unwrap(),
            WindowArg::Shape(CleanWindow::Quarter)
        );
        assert_eq!(
            parse_window("no-edge:12").unwrap(),
            WindowArg::Shape(CleanWindow::NoEdge(12))
        );
        assert!(parse_window("no-edge:x").is_err());
        assert!(parse_window("/nonexistent/mask.fits").is_err());
        let b = parse_beam("10,5,-30").unwrap();
        assert!((rad_to_arcsec(b.bmaj_rad) - 10.0).abs() < 1e-9);
        assert!((b.bpa_rad.to_degrees() + 30.0).abs() < 1e-9);
        assert!(parse_beam("5,10,0").is_err());
        assert!(parse_beam("5,0,0").is_err());
        assert!(parse_beam("5,4").is_err());
        assert!(parse_beam("a,b,c").is_err());
    }

    #[test]
    fn prefixes_get_suffixes() {
        assert_eq!(
            with_suffix(Path::new("out/run"), "-model.fits"),
            PathBuf::from("out/run-model.fits")
        );
        assert_eq!(
            with_suffix(Path::new("run"), "-alpha.fits"),
            PathBuf::from("run-alpha.fits")
        );
    }
}
