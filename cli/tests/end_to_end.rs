//! End-to-end tests of the `aperture` binary: simulate → invert (dirty image, PSF,
//! quick-looks, WCS, fluxes), predict → invert, and the kernel benchmark.

mod common;

use std::path::Path;
use std::process::Command;

use aperture_imaging::coords::RaDec;
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::sim::{PointSource, SkyModel, predict_components};
use aperture_pipeline::formats::bundle::{read_bundle, read_bundle_with_meta};
use aperture_pipeline::formats::fits::{
    Bitpix, FitsHeader, FitsWriteOptions, read_fits_image, write_fits_image,
};
use common::{aperture, arg, assert_ok, invert, simulate, stdout};
use ndarray::Array2;
use serde_json::Value;

/// The gridder's accuracy when not given (`--epsilon`): relative L2 error against the
/// exact direct Fourier transform, over the whole image or all the visibilities.
const EPSILON: f64 = 1e-5;

/// Tolerance of a flux read at one pixel of an image made with [`EPSILON`]: the
/// gridder's error is spread over the whole image, so at one pixel it is about EPSILON
/// times the image's rms, below EPSILON times its peak; the f32 FITS pixels add 6e-8
/// (relative). Measured errors are below 1e-7.
const PEAK_TOL: f64 = EPSILON;

fn read_fits(path: &Path) -> (Image, FitsHeader) {
    read_fits_image(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_meta(bundle: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(bundle.join("meta.json")).unwrap()).unwrap()
}

#[test]
fn point_source_at_the_phase_centre_has_its_flux_and_the_psf_peaks_at_one() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    // A flat-spectrum 2.5 Jy source exactly at the phase centre (RA 15, Dec -45).
    simulate(&b, &["--sources", "0", "--source", "15,-45,2.5"]);
    let meta = read_meta(&b);
    assert_eq!(meta["sky_model"]["sources"].as_array().unwrap().len(), 1);
    assert_eq!(meta["telescope"], "LOW");
    assert_eq!(meta["station_diameter_m"], 35.0);
    assert_eq!(meta["frequency_windows"]["windows"], 2);

    let d = tmp.path().join("dirty.fits");
    let p = tmp.path().join("psf.fits");
    let o = invert(&b, &d, &["--npix", "256", "--psf", arg(&p)]);
    assert_ok(&o);
    for f in ["dirty.fits", "dirty.png", "psf.fits", "psf.png"] {
        assert!(tmp.path().join(f).is_file(), "{f} missing");
    }
    let s = stdout(&o);
    assert!(
        s.contains("peak") && s.contains("rms") && s.contains("w-planes"),
        "{s}"
    );

    // At the phase centre every sample adds in phase: the PSF is the sum of the weights
    // over itself, 1, and the dirty image the flux. (The PSF's 1e-6, tighter than
    // PEAK_TOL, is kept: here the error is below the f32 rounding of the FITS pixels,
    // though on coarser grids it reaches ~1e-6, still well within EPSILON.)
    let (psf, _) = read_fits(&p);
    let (v, x, y) = psf.peak();
    assert_eq!((x, y), (128, 128));
    assert!((v - 1.0).abs() < 1e-6, "PSF peak {v}");

    let (dirty, h) = read_fits(&d);
    let (v, x, y) = dirty.peak();
    assert_eq!((x, y), (128, 128));
    assert!((v - 2.5).abs() < PEAK_TOL * 2.5, "dirty peak {v}, want 2.5");

    // The header: WCS, units, gridder parameters and provenance.
    assert_eq!(h.bunit(), Some("JY/BEAM"));
    assert_eq!(h.get_f64("CRPIX1"), Some(129.0));
    assert_eq!(h.get_f64("CRPIX2"), Some(129.0));
    assert!((h.get_f64("CRVAL1").unwrap() - 15.0).abs() < 1e-9);
    assert!((h.get_f64("CRVAL2").unwrap() + 45.0).abs() < 1e-9);
    assert!(h.get_f64("CDELT1").unwrap() < 0.0);
    assert_eq!(h.get_f64("CDELT1"), h.get_f64("CDELT2").map(|c| -c));
    assert!(
        (h.get_f64("CRVAL3").unwrap() - 125e6).abs() < 1e-3,
        "mean frequency"
    );
    assert!(
        (h.get_f64("CDELT3").unwrap() - 50e6).abs() < 1e-3,
        "bandwidth"
    );
    assert_eq!(h.get_f64("EPSILON"), Some(1e-5));
    assert_eq!(h.get_str("WEIGHTNG"), Some("natural"));
    assert_eq!(h.get_i64("NVIS"), Some(3 * 94 * 93 / 2 * 4));
    for k in ["GRIDW", "GRIDSIG", "NPLANES", "GRIDNU", "SUMWT", "DATE"] {
        assert!(h.contains(k), "{k} missing");
    }
    let history: Vec<&str> = h.history().collect();
    assert!(history.iter().any(|l| l.contains("invert")), "{history:?}");
    assert_eq!(dirty.geom.npix_x, 256);
}

#[test]
fn a_source_on_an_advised_pixel_lands_there_with_its_flux() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    simulate(&b, &["--sources", "1", "--seed", "7"]);
    let meta = read_meta(&b);
    let src = &meta["sky_model"]["sources"][0];
    let px = src["advised_pixel"].as_array().unwrap();
    let (sx, sy) = (px[0].as_f64().unwrap(), px[1].as_f64().unwrap());
    assert_eq!((sx.fract(), sy.fract()), (0.0, 0.0), "on a pixel centre");
    let (sx, sy) = (sx as usize, sy as usize);
    let flux = src["flux_jy"].as_f64().unwrap();
    let alpha = src["spectral_index"].as_f64().unwrap();
    let ref_freq = src["ref_freq_hz"].as_f64().unwrap();
    let (ra, dec) = (
        src["ra_deg"].as_f64().unwrap(),
        src["dec_deg"].as_f64().unwrap(),
    );

    // Default (advised) image: the geometry the sources were placed on.
    let d = tmp.path().join("d.fits");
    assert_ok(&invert(&b, &d, &[]));
    let (dirty, h) = read_fits(&d);
    assert_eq!(
        dirty.geom.npix_x as u64,
        meta["advised_image"]["npix"].as_u64().unwrap()
    );
    let (v, x, y) = dirty.peak();
    assert_eq!((x, y), (sx, sy), "peak pixel");
    // Dirty value of a point of flux S(nu) at direction cosine n: mean over the (equally
    // weighted) channels of S(nu)/n, from the FITS WCS.
    let g = &dirty.geom;
    let cell = h.get_f64("CDELT2").unwrap().to_radians();
    let l = -(x as f64 + 1.0 - h.get_f64("CRPIX1").unwrap()) * cell;
    let m = (y as f64 + 1.0 - h.get_f64("CRPIX2").unwrap()) * cell;
    let n = (1.0 - l * l - m * m).sqrt();
    let freqs = read_bundle(&b).unwrap().freq_c;
    let want = freqs
        .iter()
        .map(|f| flux * (f / ref_freq).powf(alpha) / n)
        .sum::<f64>()
        / freqs.len() as f64;
    assert!(
        (v - want).abs() < PEAK_TOL * want,
        "dirty peak {v}, want {want}"
    );
    // The WCS puts the pixel at the source's sky position.
    let dir = g.pixel_to_radec(x as f64, y as f64).unwrap();
    assert!((dir.ra.to_degrees() - ra).abs() < 1e-9 && (dir.dec.to_degrees() - dec).abs() < 1e-9);

    if common::python_has("astropy") {
        let script = "import sys; from astropy.io import fits; from astropy.wcs import WCS; \
                      w = WCS(fits.getheader(sys.argv[1])).celestial; \
                      x, y = w.world_to_pixel_values(float(sys.argv[2]), float(sys.argv[3])); \
                      print(f'{x:.9f} {y:.9f}')";
        let o = Command::new("python3")
            .args(["-c", script])
            .arg(&d)
            .args([ra.to_string(), dec.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let xy: Vec<f64> = String::from_utf8(o.stdout)
            .unwrap()
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(
            (xy[0] - sx as f64).abs() < 1e-6 && (xy[1] - sy as f64).abs() < 1e-6,
            "astropy: {xy:?}"
        );
    }
}

#[test]
fn predict_from_a_model_image_matches_the_exact_visibilities_and_inverts_back() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    simulate(&b, &["--seed", "3"]);
    let (block, meta) = read_bundle_with_meta(&b).unwrap();

    // A model with one pixel of 3 Jy/pixel, 9 pixels east and 6 south of the centre.
    let npix = 128;
    let cell_arcsec = 200.0;
    let geom = ImageGeometry::square(
        npix,
        (cell_arcsec / 3600.0f64).to_radians(),
        RaDec::from_degrees(15.0, -45.0),
        125e6,
        50e6,
    )
    .unwrap();
    let (x0, y0) = (npix / 2 - 9, npix / 2 - 6);
    let mut data = Array2::zeros((npix, npix));
    data[[y0, x0]] = 3.0;
    let model = tmp.path().join("model.fits");
    let opts = FitsWriteOptions {
        bitpix: Bitpix::F64,
        bunit: "JY/PIXEL".into(),
        ..Default::default()
    };
    write_fits_image(
        &model,
        &Image {
            geom,
            data_yx: data,
        },
        &opts,
    )
    .unwrap();

    let b2 = tmp.path().join("b2");
    let o = aperture([
        "predict",
        arg(&b),
        "--model",
        arg(&model),
        "--out",
        arg(&b2),
    ]);
    assert_ok(&o);
    assert!(stdout(&o).contains("wrote"));
    let (pred, meta2) = read_bundle_with_meta(&b2).unwrap();
    // Everything but the visibilities is copied.
    assert_eq!(pred.uvw_r, block.uvw_r);
    assert_eq!(pred.freq_c, block.freq_c);
    assert_eq!(pred.weight_rc, block.weight_rc);
    assert_eq!(pred.flag_rc, block.flag_rc);
    assert_eq!(
        (&pred.ant1_r, &pred.ant2_r, &pred.time_r),
        (&block.ant1_r, &block.ant2_r, &block.time_r)
    );
    assert_eq!(meta2.phase_centre, meta.phase_centre);
    assert_eq!(meta2.telescope, meta.telescope);
    assert!(meta2.extra.contains_key("predicted_from"));
    assert!(!meta2.extra.contains_key("sky_model"));

    // Exact: a pixel of I Jy/pixel is a point component of flux I/n.
    let dir = geom.pixel_to_radec(x0 as f64, y0 as f64).unwrap();
    let n = dir.to_lmn(geom.phase_centre).n;
    let sky = SkyModel {
        sources: vec![PointSource {
            dir,
            flux_jy: 3.0 / n,
            spectral_index: 0.0,
        }],
        ref_freq_hz: 1e8,
    };
    let exact = predict_components(&block.uvw_r, &block.freq_c, block.phase_centre, &sky).unwrap();
    // The gridder's contract, and complex128 in the bundle adds no rounding.
    let diff: f64 = (&pred.vis_rc - &exact).iter().map(|z| z.norm_sqr()).sum();
    let norm: f64 = exact.iter().map(|z| z.norm_sqr()).sum();
    let rel_l2 = (diff / norm).sqrt();
    assert!(rel_l2 <= EPSILON, "relative L2 {rel_l2}");

    // Imaging the prediction on the model's grid gives the source back: I/n². The
    // predicted visibilities' error moves the peak by at most their rms error (so by
    // EPSILON, relative), and the invert adds its own.
    let d = tmp.path().join("d.fits");
    assert_ok(&invert(&b2, &d, &["--npix", "128", "--cell", "200"]));
    let (dirty, _) = read_fits(&d);
    let (v, x, y) = dirty.peak();
    assert_eq!((x, y), (x0, y0));
    let want = 3.0 / (n * n);
    assert!(
        (v - want).abs() < (EPSILON + PEAK_TOL) * want,
        "{v} vs {want}"
    );
}

#[test]
fn weighting_options_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    simulate(
        &b,
        &["--sources", "3", "--noise", "0.1", "--precision", "f32"],
    );
    let d = tmp.path().join("r.fits");
    let o = invert(
        &b,
        &d,
        &[
            "--npix",
            "128",
            "--weighting",
            "robust",
            "--robust",
            "-0.5",
            "--taper",
            "600",
            "--precision",
            "f32",
            "--epsilon",
            "1e-4",
            "--threads",
            "1",
            "--no-wstacking",
        ],
    );
    assert_ok(&o);
    let (_, h) = read_fits(&d);
    assert_eq!(h.get_str("WEIGHTNG"), Some("robust"));
    assert_eq!(h.get_f64("ROBUST"), Some(-0.5));
    assert_eq!(h.get_f64("TAPER"), Some(600.0));
    assert_eq!(h.get_str("PRECISN"), Some("f32"));
    assert_eq!(h.get_bool("WSTACK"), Some(false));
    assert_eq!(h.get_i64("NPLANES"), Some(1));
}

#[test]
fn simulation_is_deterministic_and_reads_station_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    simulate(&a, &["--noise", "0.5", "--seed", "11"]);
    simulate(&b, &["--noise", "0.5", "--seed", "11"]);
    simulate(&c, &["--noise", "0.5", "--seed", "12"]);
    let read = |dir: &Path, f| std::fs::read(dir.join(f)).unwrap();
    for f in ["vis.npy", "uvw.npy", "freq.npy"] {
        assert_eq!(read(&a, f), read(&b, f), "{f}");
    }
    // The seed is used: another draws other sources and noise on the same uvw.
    assert_ne!(read(&a, "vis.npy"), read(&c, "vis.npy"));
    assert_eq!(read(&a, "uvw.npy"), read(&c, "uvw.npy"));

    let csv = tmp.path().join("stations.csv");
    std::fs::write(
        &csv,
        "# five stations\nname,e,n,u\nA,0,0,0\nB,100,0,0\nC,0,150,0\nD,-120,-80,1\nE,60,-200,0\n",
    )
    .unwrap();
    let from_csv = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "simulate",
            "--telescope",
            "low",
            "--config",
            arg(&csv),
            "--windows",
            "1",
            "--channels-per-window",
            "3",
            "--times",
            "2",
            "--out",
            arg(out),
        ];
        args.extend(extra);
        let o = aperture(args);
        assert_ok(&o);
        stdout(&o)
    };
    let all = tmp.path().join("all");
    let s = from_csv(&all, &[]);
    assert!(
        s.contains("5 stations") && s.contains("10 baselines"),
        "{s}"
    );
    let block = read_bundle(&all).unwrap();
    assert_eq!((block.n_rows(), block.n_chan()), (20, 3));
    // meta.json records the stations as the file gives them, in ant1/ant2 order.
    let obs = &read_meta(&all)["observation"];
    assert_eq!(
        obs["station_names"],
        serde_json::json!(["A", "B", "C", "D", "E"])
    );
    assert_eq!(
        obs["station_enu_m"],
        serde_json::json!([
            [0.0, 0.0, 0.0],
            [100.0, 0.0, 0.0],
            [0.0, 150.0, 0.0],
            [-120.0, -80.0, 1.0],
            [60.0, -200.0, 0.0]
        ])
    );
    assert_eq!(
        obs["station_diameters_m"],
        serde_json::json!([35.0, 35.0, 35.0, 35.0, 35.0])
    );
    assert_eq!(*block.ant2_r.iter().max().unwrap(), 4);
    // --rmax keeps the stations within 150 m of the centre: all but E (209 m away).
    let near = tmp.path().join("near");
    let s = from_csv(&near, &["--rmax", "150"]);
    assert!(s.contains("4 stations") && s.contains("6 baselines"), "{s}");
    assert_eq!(read_bundle(&near).unwrap().n_rows(), 12);
    let obs = &read_meta(&near)["observation"];
    assert_eq!(
        obs["station_names"],
        serde_json::json!(["A", "B", "C", "D"])
    );
}

#[test]
fn bench_kernels_reports_json_and_writes_its_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let small = [
        "--npix",
        "128",
        "--rmax",
        "100",
        "--times",
        "2",
        "--channels",
        "2",
        "--repeat",
        "2",
    ];
    let mut args = vec!["bench", "kernels", "--json"];
    args.extend(small);
    let o = aperture(&args);
    assert_ok(&o);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["nvis"], 2 * 13 * 12 / 2 * 2);
    for k in ["invert", "predict"] {
        assert!(v[k]["best_s"].as_f64().unwrap() > 0.0);
        assert!(v[k]["median_s"].as_f64().unwrap() >= v[k]["best_s"].as_f64().unwrap());
        assert!(v[k]["vis_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v[k]["times_s"].as_array().unwrap().len(), 2);
        assert!(v[k]["report"]["support"].as_u64().unwrap() >= 4);
    }

    let dir = tmp.path().join("scen");
    let mut args = vec!["bench", "kernels", "--write-bundle", arg(&dir)];
    args.extend(small);
    assert_ok(&aperture(&args));
    let meta = read_meta(&dir);
    assert_eq!(meta["bench"]["npix"], 128);
    assert_eq!(meta["bench"]["cell_rad"], v["cell_rad"]);
    let on_bundle = [
        "bench",
        "kernels",
        "--bundle",
        arg(&dir),
        "--npix",
        "128",
        "--repeat",
        "1",
    ];
    let o = aperture(on_bundle);
    assert_ok(&o);
    let s = stdout(&o);
    assert!(
        s.contains("invert") && s.contains("predict") && s.contains("vis/s"),
        "{s}"
    );
    // Same data and cell as the simulated run: same gridder choices.
    assert!(
        s.contains(&format!("grid {} x", v["invert"]["report"]["nu"])),
        "{s}"
    );

    // Without the recorded cell the scenario's rule, applied to the bundle's data, gives
    // the same cell again.
    let mut meta = meta;
    meta.as_object_mut().unwrap().remove("bench");
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    let o = aperture(on_bundle.into_iter().chain(["--json"]));
    assert_ok(&o);
    let w: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    // Bit for bit: the same uvw and frequencies, read back exactly.
    assert_eq!(w["cell_rad"], v["cell_rad"]);
    assert_eq!(w["source"]["bundle"], arg(&dir));
}
