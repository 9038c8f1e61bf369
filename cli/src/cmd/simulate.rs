//! `aperture simulate`: an observation of a point-source sky by a LOW- or MID-like array
//! (or stations from a CSV file), written as a numpy visibility bundle.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use aperture_imaging::antenna::AntennaConfig;
use aperture_imaging::coords::RaDec;
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::sim::{
    FrequencySetup, PointSource, RandomSkySpec, SkyModel, add_thermal_noise, config_from_csv,
    hour_angles, low_config, low_site, mid_config, mid_site, predict_components,
    random_sky_on_pixels, simulate_block,
};
use aperture_imaging::{ImagingError, SPEED_OF_LIGHT};
use aperture_pipeline::formats::bundle::{BundleMeta, PhaseCentreDeg};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::common::errors::for_option;
use crate::common::fmt::{Summary, count, radec};
use crate::common::gridding::PrecisionArg;
use crate::common::imaging::{GeometryChoice, check_memory, choose_geometry, rad_to_arcsec};
use crate::common::output::check_bundle_output;
use crate::common::{Context, bundle};

/// The built-in array layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Telescope {
    /// SKA-Low-like: 512 stations of 35 m (dense core, three spiral arms).
    Low,
    /// SKA-Mid-like: 197 dishes of 13.5 m (MeerKAT) and 15 m.
    Mid,
}

impl Telescope {
    fn name(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Mid => "MID",
        }
    }
}

/// One `--source RA,DEC,FLUX[,ALPHA]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceArg {
    pub ra_deg: f64,
    pub dec_deg: f64,
    pub flux_jy: f64,
    pub spectral_index: f64,
}

fn parse_source(s: &str) -> Result<SourceArg, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if !(3..=4).contains(&parts.len()) {
        return Err("expected RA_DEG,DEC_DEG,FLUX_JY[,SPECTRAL_INDEX]".into());
    }
    let num = |i: usize, what: &str| -> Result<f64, String> {
        parts[i]
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{what} {:?} is not a finite number", parts[i]))
    };
    let src = SourceArg {
        ra_deg: num(0, "RA")?,
        dec_deg: num(1, "Dec")?,
        flux_jy: num(2, "flux")?,
        spectral_index: if parts.len() == 4 {
            num(3, "spectral index")?
        } else {
            0.0
        },
    };
    if !(-90.0..=90.0).contains(&src.dec_deg) {
        return Err(format!("Dec {} is outside [-90, 90] degrees", src.dec_deg));
    }
    Ok(src)
}

/// Simulate an observation and write it as a visibility bundle.
///
/// Builds the array (built-in LOW- or MID-like layout cut to --rmax, or --config),
/// synthesises uvw by earth rotation for --times hour angles spread evenly over
/// --span-hours around transit, splits --fmin..--fmax into --windows x
/// --channels-per-window equal channels, and computes exact (DFT) visibilities of a
/// point-source sky, plus Gaussian noise if asked.
///
/// The sky holds --sources random sources (fluxes 10 mJy to 1 Jy from power-law counts,
/// spectral index -0.7 +/- 0.2 at the band centre) placed on pixel centres of the image
/// `aperture invert` will advise for these data, within --source-extent of the phase
/// centre, plus every --source given. meta.json records the phase centre, telescope,
/// station diameter, the sky model (sources with ra_deg, dec_deg, flux_jy,
/// spectral_index, ref_freq_hz and their advised pixel), the frequency windows, the
/// observation (site; station names, local east-north-up positions and diameters, in
/// the order ant1/ant2 index) and the simulation settings. Everything is deterministic
/// given --seed.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  aperture simulate --telescope low --rmax 600 --windows 2 \
                        --channels-per-window 4 --times 7 --out obs/\n  aperture simulate \
                        --telescope low --rmax 300 --windows 1 --channels-per-window 2 --times 3 \
                        --sources 0 --source 15,-45,1.0 --out point/"
)]
pub struct SimulateArgs {
    /// Array layout (and site, station diameter for --config files without one).
    #[arg(long, value_enum)]
    pub telescope: Telescope,
    /// CSV of station positions instead of the built-in layout: a header line, then
    /// name,e,n,u[,diameter] (local east-north-up metres about the telescope's site) or
    /// name,x,y,z[,diameter] (ITRF geocentric metres).
    #[arg(long, value_name = "CSV")]
    pub config: Option<PathBuf>,
    /// Keep the stations within this many metres of the array centre (600 keeps 227 LOW
    /// stations). Required with the built-in layouts; with --config, all are kept by
    /// default.
    #[arg(
        long,
        value_name = "M",
        required_unless_present = "config",
        allow_negative_numbers = true
    )]
    pub rmax: Option<f64>,
    /// Number of frequency windows.
    #[arg(long, value_name = "W", allow_negative_numbers = true)]
    pub windows: usize,
    /// Channels in each window.
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub channels_per_window: usize,
    /// Number of integrations (hour angles).
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub times: usize,
    /// Hour-angle span of the observation, centred on transit, in hours.
    #[arg(
        long,
        value_name = "H",
        default_value_t = 6.0,
        allow_negative_numbers = true
    )]
    pub span_hours: f64,
    /// Lower edge of the band, Hz.
    #[arg(
        long,
        value_name = "HZ",
        default_value = "100e6",
        allow_negative_numbers = true
    )]
    pub fmin: f64,
    /// Upper edge of the band, Hz.
    #[arg(
        long,
        value_name = "HZ",
        default_value = "150e6",
        allow_negative_numbers = true
    )]
    pub fmax: f64,
    /// Right ascension of the phase centre, degrees.
    #[arg(
        long,
        value_name = "DEG",
        default_value_t = 15.0,
        allow_negative_numbers = true
    )]
    pub ra: f64,
    /// Declination of the phase centre, degrees.
    #[arg(long, value_name = "DEG", default_value_t = -45.0, allow_negative_numbers = true)]
    pub dec: f64,
    /// Number of random point sources [default: 10, or 0 when --source is given].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub sources: Option<usize>,
    /// Add a point source at RA, Dec (degrees) with this flux (Jy at the band centre) and
    /// spectral index (default 0, flat). Repeatable.
    #[arg(long = "source", value_name = "RA,DEC,FLUX[,ALPHA]", value_parser = parse_source, allow_hyphen_values = true)]
    pub source: Vec<SourceArg>,
    /// Half-width in degrees of the square around the phase centre where random sources
    /// are placed [default: 80% of the half-width of the advised image].
    #[arg(long, value_name = "DEG", allow_negative_numbers = true)]
    pub source_extent: Option<f64>,
    /// Standard deviation of the Gaussian noise added to the real and to the imaginary
    /// part of each visibility, Jy.
    #[arg(
        long,
        value_name = "SIGMA",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub noise: f64,
    /// Seed of the random sources and the noise.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub seed: u64,
    /// Precision of vis.npy (and weight.npy): f32 writes complex64, f64 complex128.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F64)]
    pub precision: PrecisionArg,
    #[command(flatten)]
    pub gains: super::apply_gains::GainSimArgs,
    /// Output bundle directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace the output bundle if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// Fraction of the advised image's half-width used for random sources by default.
const DEFAULT_EXTENT_FRACTION: f64 = 0.8;

/// Mixes the seed for the noise so it is independent of the sky's random draws.
const NOISE_SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// Checks the scalar options before anything is computed.
fn check_args(args: &SimulateArgs) -> Result<(FrequencySetup, RaDec)> {
    if let Some(r) = args.rmax
        && (r.is_nan() || r <= 0.0)
    {
        bail!("--rmax {r}: must be a positive number of metres");
    }
    if args.times == 0 {
        bail!("--times 0: must be at least 1");
    }
    let setup = FrequencySetup::new(args.windows, args.channels_per_window, args.fmin, args.fmax)
        .map_err(|e| {
        for_option(
            e,
            &[
                ("windows", "--windows"),
                ("channels_per_window", "--channels-per-window"),
                ("f_min", "--fmin"),
                ("f_max", "--fmax"),
            ],
        )
    })?;
    if !args.ra.is_finite() {
        bail!("--ra {}: must be a finite number of degrees", args.ra);
    }
    if !(-90.0..=90.0).contains(&args.dec) {
        bail!("--dec {}: must be between -90 and 90 degrees", args.dec);
    }
    if !(args.noise.is_finite() && args.noise >= 0.0) {
        bail!(
            "--noise {}: must be a finite, non-negative number of Jy",
            args.noise
        );
    }
    if let Some(e) = args.source_extent
        && !(e > 0.0 && e < 45.0)
    {
        bail!("--source-extent {e}: must be between 0 and 45 degrees");
    }
    Ok((setup, RaDec::from_degrees(args.ra, args.dec)))
}

/// The array: a built-in layout cut to --rmax, or the stations of --config.
fn build_config(args: &SimulateArgs) -> Result<AntennaConfig> {
    let rmax_names: &[(&str, &str)] = &[("rmax", "--rmax")];
    let Some(path) = &args.config else {
        let rmax = args.rmax.unwrap_or(f64::INFINITY);
        let config = match args.telescope {
            Telescope::Low => low_config(rmax),
            Telescope::Mid => mid_config(rmax),
        };
        return config.map_err(|e| for_option(e, rmax_names));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("--config {}: cannot read: {e}", path.display()))?;
    let (site, diameter) = match args.telescope {
        Telescope::Low => (low_site(), aperture_imaging::sim::LOW_STATION_DIAMETER),
        Telescope::Mid => (mid_site(), aperture_imaging::sim::SKA_DISH_DIAMETER),
    };
    // Local (e,n,u) positions are about the telescope's site; ITRF positions define their
    // own site (the mean position) unless given one.
    let site = (!is_itrf_csv(&text)).then_some(site);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.telescope.name().to_owned());
    let config = config_from_csv(&text, &name, diameter, site)
        .map_err(|e| anyhow!("--config {}: {}", path.display(), csv_reason(&e)))?;
    let Some(rmax) = args.rmax else {
        return check_enough(config, path, None);
    };
    check_enough(config.within_radius(rmax), path, Some(rmax))
}

/// True when the CSV header names x,y,z (ITRF) columns.
fn is_itrf_csv(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|h| h.split(',').any(|c| c.trim().eq_ignore_ascii_case("x")))
}

fn csv_reason(e: &ImagingError) -> String {
    match e {
        ImagingError::InvalidParameter { name, reason } => format!("{name}: {reason}"),
        other => other.to_string(),
    }
}

fn check_enough(config: AntennaConfig, path: &Path, rmax: Option<f64>) -> Result<AntennaConfig> {
    if config.len() < 2 {
        match rmax {
            Some(r) => bail!(
                "--rmax {r}: keeps {} station(s) of {}; at least 2 are needed",
                config.len(),
                path.display()
            ),
            None => bail!(
                "--config {}: has {} station(s); at least 2 are needed",
                path.display(),
                config.len()
            ),
        }
    }
    Ok(config)
}

/// The smallest station diameter (the widest primary beam) of the array, m.
fn min_diameter(config: &AntennaConfig) -> f64 {
    config
        .antennas
        .iter()
        .map(|a| a.diameter)
        .fold(f64::INFINITY, f64::min)
}

/// The sky: random sources on pixel centres of `geom` plus the explicit ones.
fn build_sky(args: &SimulateArgs, geom: &ImageGeometry, ref_freq: f64) -> Result<SkyModel> {
    let n_random = args
        .sources
        .unwrap_or(if args.source.is_empty() { 10 } else { 0 });
    let mut sources = Vec::with_capacity(n_random + args.source.len());
    if n_random > 0 {
        let half_width = match args.source_extent {
            Some(deg) => deg.to_radians().sin(),
            None => DEFAULT_EXTENT_FRACTION * geom.lm_extent().0,
        };
        let spec = RandomSkySpec {
            n_sources: n_random,
            half_width_lm: half_width,
            ..Default::default()
        };
        let sky = random_sky_on_pixels(geom, ref_freq, &spec, args.seed).map_err(|e| {
            for_option(
                e,
                &[
                    ("n_sources", &format!("--sources {n_random}")),
                    ("half_width_lm", "--source-extent"),
                ],
            )
        })?;
        sources.extend(sky.sources);
    }
    for s in &args.source {
        sources.push(PointSource {
            dir: RaDec::from_degrees(s.ra_deg, s.dec_deg),
            flux_jy: s.flux_jy,
            spectral_index: s.spectral_index,
        });
    }
    Ok(SkyModel {
        sources,
        ref_freq_hz: ref_freq,
    })
}

/// The sky model as it goes into meta.json.
fn sky_json(sky: &SkyModel, geom: &ImageGeometry) -> Value {
    let sources: Vec<Value> = sky
        .sources
        .iter()
        .map(|s| {
            // Snap to the pixel centre the source was placed on (rounding error only).
            let snap = |v: f64| {
                if (v - v.round()).abs() < 1e-6 {
                    v.round()
                } else {
                    v
                }
            };
            let pixel = geom
                .radec_to_pixel(s.dir)
                .map(|(x, y)| json!([snap(x), snap(y)]));
            json!({
                "ra_deg": s.dir.ra.to_degrees().rem_euclid(360.0),
                "dec_deg": s.dir.dec.to_degrees(),
                "flux_jy": s.flux_jy,
                "spectral_index": s.spectral_index,
                "ref_freq_hz": sky.ref_freq_hz,
                "advised_pixel": pixel,
            })
        })
        .collect();
    json!({ "ref_freq_hz": sky.ref_freq_hz, "sources": sources })
}

pub fn run(args: &SimulateArgs, ctx: &Context) -> Result<()> {
    let (setup, phase_centre) = check_args(args)?;
    check_bundle_output("--out", &args.out, args.overwrite)?;
    let mut sim_gains =
        super::apply_gains::SimulatedGains::check(&args.gains, &args.out, args.overwrite)?;
    let hour_angles = hour_angles(args.times, args.span_hours).map_err(|e| {
        for_option(
            e,
            &[
                ("ntimes", "--times"),
                ("span_hours", &format!("--span-hours {}", args.span_hours)),
            ],
        )
    })?;

    let config = build_config(args)?;
    let diameter = min_diameter(&config);
    let freq_c = setup.freq_c()?;
    let nrows = config.n_baselines() * args.times;
    // vis (16 B), weight (8 B), flag (1 B) per sample, twice over while writing.
    check_memory(
        (nrows as f64) * (freq_c.len() as f64) * 50.0,
        &format!(
            "{} baselines x --times {} x {} channels",
            config.n_baselines(),
            args.times,
            freq_c.len()
        ),
    )?;

    let stage = ctx.progress.stage(format!(
        "synthesising uvw: {} stations, {} times",
        config.len(),
        args.times
    ));
    // The uvw first (an empty sky): the sources go on the pixels of the image advised
    // for them.
    let ref_freq = 0.5 * (setup.f_min + setup.f_max);
    let empty = SkyModel {
        sources: Vec::new(),
        ref_freq_hz: ref_freq,
    };
    let mut block = simulate_block(&config, phase_centre, &hour_angles, &freq_c, &empty, 0.0, 0)
        .map_err(|e| anyhow!("simulating {}: {e}", config.name))?;
    stage.done();

    let choice: GeometryChoice = choose_geometry(
        &block,
        diameter,
        None,
        None,
        Path::new("the simulated data"),
    )?;
    let geom = choice.geom;
    tracing::info!(
        npix = geom.npix_x,
        cell_arcsec = rad_to_arcsec(geom.cell),
        "advised image (sources are placed on its pixel centres)"
    );
    let sky = build_sky(args, &geom, ref_freq)?;

    let stage = ctx.progress.stage(format!(
        "predicting {} sources at {} visibilities (exact DFT)",
        sky.sources.len(),
        count(block.n_vis())
    ));
    block.vis_rc = predict_components(&block.uvw_r, &block.freq_c, phase_centre, &sky).map_err(
        |e| match &e {
            ImagingError::InvalidParameter { name, reason } if name.starts_with("sources[") => {
                let i: usize = name
                    .trim_start_matches("sources[")
                    .trim_end_matches(']')
                    .parse()
                    .unwrap_or(0);
                let n_random = sky.sources.len() - args.source.len();
                if i >= n_random {
                    anyhow!("--source #{}: {reason}", i - n_random + 1)
                } else {
                    anyhow!("random source {i}: {reason}")
                }
            }
            _ => anyhow!("simulating {}: {e}", config.name),
        },
    )?;
    sim_gains.corrupt(&mut block, &setup, args.seed)?;
    add_thermal_noise(&mut block.vis_rc, args.noise, args.seed ^ NOISE_SEED_MIX)
        .map_err(|e| for_option(e, &[("noise_sigma", "--noise")]))?;
    stage.done();

    let mut meta = BundleMeta::for_block(&block);
    // The degrees as given (for_block converts back from radians, with rounding).
    meta.phase_centre = PhaseCentreDeg {
        ra_deg: args.ra,
        dec_deg: args.dec,
    };
    meta.telescope = Some(args.telescope.name().to_owned());
    meta.station_diameter_m = Some(diameter);
    let channel_width = setup.channel_width()?;
    let extra = &mut meta.extra;
    extra.insert("sky_model".into(), sky_json(&sky, &geom));
    sim_gains.record(extra);
    extra.insert(
        "frequency_windows".into(),
        json!({
            "windows": setup.windows,
            "channels_per_window": setup.channels_per_window,
            "f_min_hz": setup.f_min,
            "f_max_hz": setup.f_max,
            "channel_width_hz": channel_width,
        }),
    );
    extra.insert(
        "observation".into(),
        json!({
            "times": args.times,
            "span_hours": args.span_hours,
            "hour_angles_hours": hour_angles.iter().map(|h| h.hours()).collect::<Vec<_>>(),
            "array": config.name,
            "stations": config.len(),
            // ANTENNA1/ANTENNA2 of the bundle index these lists.
            "station_names": config.antennas.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            "station_enu_m": config
                .antennas
                .iter()
                .map(|a| [a.enu.e, a.enu.n, a.enu.u])
                .collect::<Vec<_>>(),
            "station_diameters_m": config.antennas.iter().map(|a| a.diameter).collect::<Vec<_>>(),
            "rmax_m": args.rmax,
            "site": {
                "lon_deg": config.location.lon.to_degrees(),
                "lat_deg": config.location.lat.to_degrees(),
                "height_m": config.location.height,
            },
        }),
    );
    extra.insert(
        "advised_image".into(),
        json!({
            "npix": geom.npix_x,
            "cell_rad": geom.cell,
            "cell_arcsec": rad_to_arcsec(geom.cell),
        }),
    );
    extra.insert(
        "simulation".into(),
        json!({
            "seed": args.seed,
            "noise_sigma_jy": args.noise,
            "config": args.config.as_ref().map(|p| p.display().to_string()),
            "software": format!("aperture {}", env!("CARGO_PKG_VERSION")),
            "command": ctx.command_line,
        }),
    );

    bundle::write(
        ctx,
        &args.out,
        &block,
        &meta,
        args.precision.vis_dtype(),
        args.overwrite,
    )?;
    let gains_line = sim_gains.describe();
    sim_gains.commit()?;

    let longest = block
        .uvw_r
        .iter()
        .map(|p| p.uv_length())
        .fold(0.0, f64::max);
    let f_hi = block.freq_c.iter().copied().fold(0.0, f64::max);
    let mut s = Summary::new();
    s.row(
        "array",
        format!(
            "{} ({}): {} stations, {} baselines, station diameter {diameter} m",
            args.telescope.name(),
            config.name,
            config.len(),
            count(config.n_baselines())
        ),
    );
    s.row("phase centre", radec(phase_centre.ra, phase_centre.dec));
    s.row(
        "rows",
        if args.times == 1 {
            format!("{} (1 time, at transit)", count(block.n_rows()))
        } else {
            format!(
                "{} ({} times over {} h)",
                count(block.n_rows()),
                args.times,
                args.span_hours
            )
        },
    );
    s.row(
        "channels",
        format!(
            "{} ({} windows x {}), {:.6}-{:.6} MHz, {:.6} MHz wide",
            block.n_chan(),
            setup.windows,
            setup.channels_per_window,
            setup.f_min / 1e6,
            setup.f_max / 1e6,
            channel_width / 1e6
        ),
    );
    s.row("visibilities", count(block.n_vis()));
    s.row(
        "longest baseline",
        format!(
            "{longest:.1} m projected ({:.1} wavelengths at {:.3} MHz)",
            longest * f_hi / SPEED_OF_LIGHT,
            f_hi / 1e6
        ),
    );
    s.row(
        "advised image",
        format!(
            "{} x {} pixels of {:.4} arcsec ({:.3} deg field){}",
            geom.npix_x,
            geom.npix_y,
            rad_to_arcsec(geom.cell),
            (geom.cell * geom.npix_x as f64).to_degrees(),
            if choice.field_limited {
                ", field limited to |l|, |m| <= 0.6"
            } else {
                ""
            }
        ),
    );
    let total_flux: f64 = sky.sources.iter().map(|s| s.flux_jy).sum();
    s.row(
        "sky",
        format!(
            "{} point sources, {total_flux:.4} Jy in total at {:.3} MHz",
            sky.sources.len(),
            sky.ref_freq_hz / 1e6
        ),
    );
    s.row(
        "noise",
        format!("{} Jy per real/imaginary part", args.noise),
    );
    if let Some(g) = gains_line {
        s.row("gains", g);
    }
    s.row("wrote", args.out.display());
    s.print();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        let s = parse_source("15,-45,2.5").unwrap();
        assert_eq!(
            (s.ra_deg, s.dec_deg, s.flux_jy, s.spectral_index),
            (15.0, -45.0, 2.5, 0.0)
        );
        assert_eq!(parse_source("1, 2, 3, -0.7").unwrap().spectral_index, -0.7);
        assert!(parse_source("1,2").is_err());
        assert!(parse_source("1,95,1").is_err());
        assert!(parse_source("1,x,1").is_err());
    }

    #[test]
    fn itrf_headers_are_recognised() {
        assert!(is_itrf_csv("# c\nname, X, Y, Z\n"));
        assert!(!is_itrf_csv("name,e,n,u,diameter\n"));
    }
}
