//! `aperture import ms`: the MeasurementSet fixtures of tests/data/ms imported as Zarr
//! datasets read back equal to the Stokes-I oracle bundles; the dirty image of the
//! imported data equals the direct Fourier transform of the simulated sky the MS was
//! written from (regenerated with the fixture README's seeded `aperture simulate`), with
//! the sources at their WCS pixels; bad input is one error line naming the table and
//! column, exit code 2, and nothing written.

mod common;

use std::path::{Path, PathBuf};

use common::{aperture, arg, assert_error};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/ms")
}

fn fixture(name: &str) -> String {
    data_dir().join(name).display().to_string()
}

#[cfg(not(feature = "ms"))]
#[test]
fn without_the_feature_import_ms_says_how_to_enable_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("v.zarr");
    assert_error(
        &aperture(["import", "ms", &fixture("low-linear.ms"), arg(&out)]),
        &["built without MeasurementSet support", "cargo feature `ms`"],
    );
    assert!(!out.exists());
}

#[cfg(feature = "ms")]
mod with_casacore {
    use super::*;

    use aperture_imaging::coords::RaDec;
    use aperture_imaging::gridder::{GridderOptions, dirty_image};
    use aperture_imaging::image::ImageGeometry;
    use aperture_imaging::sim::{PointSource, SkyModel, invert_image, predict_components};
    use aperture_imaging::vis::VisBlock;
    use aperture_pipeline::formats::bundle::read_bundle_full;
    use aperture_pipeline::formats::ms_import::{import_identity, write_pending};
    use aperture_pipeline::formats::zarr_vis::open_dataset;
    use aperture_pipeline::storage::Store;
    use common::{assert_ok, listing, stdout};
    use ndarray::{Array2, concatenate, s};
    use serde_json::Value;

    /// The dataset at `url`: its windows and its group attribute `aperture`.
    fn read_dataset(url: &str) -> (Vec<VisBlock>, Value) {
        let store = Store::from_url(url).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ds = open_dataset(store.object_store(), store.prefix())
                .await
                .unwrap();
            let mut out = Vec::new();
            for w in 0..ds.nwindows() {
                out.push(ds.read_window(w).await.unwrap());
            }
            (out, serde_json::to_value(ds.meta()).unwrap())
        })
    }

    fn expected(name: &str) -> Value {
        let p = data_dir().join(format!("{name}.expected.json"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    /// The windows side by side: one block with every channel.
    fn join(blocks: &[VisBlock]) -> VisBlock {
        let mut b = blocks[0].clone();
        for o in &blocks[1..] {
            assert_eq!((&o.uvw_r, &o.time_r), (&b.uvw_r, &b.time_r));
            b.freq_c.extend(&o.freq_c);
        }
        b.vis_rc = {
            let views: Vec<_> = blocks.iter().map(|b| b.vis_rc.view()).collect();
            concatenate(ndarray::Axis(1), &views).unwrap()
        };
        b.weight_rc = {
            let views: Vec<_> = blocks.iter().map(|b| b.weight_rc.view()).collect();
            concatenate(ndarray::Axis(1), &views).unwrap()
        };
        b.flag_rc = {
            let views: Vec<_> = blocks.iter().map(|b| b.flag_rc.view()).collect();
            concatenate(ndarray::Axis(1), &views).unwrap()
        };
        b
    }

    /// `got` (a dataset window) equals the oracle bundle of its selection: vis to the
    /// storage precision `tol` (relative to the largest), weights, flags, times and
    /// antennas exactly; FLAG_ROW rows (dropped by the importer) only flagged.
    fn assert_window_is_oracle(got: &VisBlock, oracle_dir: &str, tol: f64) {
        let o = read_bundle_full(data_dir().join(oracle_dir)).unwrap().block;
        assert_eq!(got.n_rows(), o.n_rows(), "{oracle_dir}");
        assert_eq!(got.freq_c, o.freq_c);
        assert_eq!(got.time_r, o.time_r);
        assert_eq!((&got.ant1_r, &got.ant2_r), (&o.ant1_r, &o.ant2_r));
        assert_eq!(got.flag_rc, o.flag_rc, "{oracle_dir}: flags");
        assert_eq!(got.weight_rc, o.weight_rc, "{oracle_dir}: weights");
        let vmax = o.vis_rc.iter().map(|v| v.norm()).fold(0.0, f64::max);
        for ((g, w), f) in got.vis_rc.iter().zip(&o.vis_rc).zip(&o.flag_rc) {
            if !f {
                assert!((g - w).norm() <= tol * vmax, "{oracle_dir}: {g} vs {w}");
            }
        }
        for (r, (g, w)) in got.uvw_r.iter().zip(&o.uvw_r).enumerate() {
            if !got.flag_rc.row(r).iter().all(|&f| f) {
                assert_eq!(g, w, "{oracle_dir}: uvw of row {r}");
            }
        }
    }

    #[test]
    fn the_linear_fixture_imports_equal_to_its_oracles() {
        let tmp = tempfile::tempdir().unwrap();
        let e = expected("low-linear");
        let sel = &e["selections"];
        // Default: field 0, both spectral windows, one window each, complex64.
        let out = tmp.path().join("a.zarr");
        let o = aperture(["import", "ms", &fixture("low-linear.ms"), arg(&out)]);
        assert_ok(&o);
        let text = stdout(&o);
        assert!(
            text.contains("2 x 4 channels, 103.125000-146.875000 MHz"),
            "{text}"
        );
        assert!(text.contains("4 times x 190 baselines"), "{text}");
        assert!(
            text.contains("dropped 24 autocorrelations, 5 with FLAG_ROW"),
            "{text}"
        );
        let (blocks, meta) = read_dataset(arg(&out));
        assert_eq!(blocks.len(), 2);
        for (w, key) in ["field0-spw0", "field0-spw1"].into_iter().enumerate() {
            assert_window_is_oracle(
                &blocks[w],
                sel[key]["oracle_bundle"].as_str().unwrap(),
                1e-7,
            );
        }
        assert_eq!(meta["phase_centre"]["ra_deg"], 15.0);
        assert_eq!(meta["phase_centre"]["dec_deg"], -45.0);
        assert_eq!(meta["telescope"], "LOW");
        assert_eq!(meta["station_diameter_m"], 35.0);
        assert_eq!(meta["array"]["antennas"].as_array().unwrap().len(), 20);
        // The manifest.
        let m = &meta["extra"]["imported_from"];
        assert!(
            m["measurement_set"]
                .as_str()
                .unwrap()
                .ends_with("low-linear.ms")
        );
        assert_eq!(m["column"], "DATA");
        assert_eq!(m["weights"], "WEIGHT_SPECTRUM");
        assert_eq!(m["selection"]["field"], 0);
        assert_eq!(m["rows"]["autocorrelations"], 24);
        assert_eq!(m["rows"]["total"], e["main"]["n_rows"]);
        let flagged = sel["field0-spw0"]["n_flagged_samples"].as_u64().unwrap()
            + sel["field0-spw1"]["n_flagged_samples"].as_u64().unwrap();
        assert_eq!(m["flagged_samples"].as_u64(), Some(flagged));
        assert_eq!(m["samples"], 2 * 760 * 4);
        assert!(
            text.contains(&format!("({flagged} of 6,080 samples)")),
            "{text}"
        );

        // Field 1 through a file:// URL, double precision: its own phase centre and times.
        let url = format!("file://{}", tmp.path().join("f1.zarr").display());
        let o = aperture([
            "import",
            "ms",
            &fixture("low-linear.ms"),
            &url,
            "--field",
            "1",
            "--precision",
            "f64",
        ]);
        assert_ok(&o);
        let (blocks, meta) = read_dataset(&url);
        assert_eq!(blocks.len(), 1);
        assert_window_is_oracle(
            &blocks[0],
            sel["field1-spw0"]["oracle_bundle"].as_str().unwrap(),
            0.0,
        );
        assert_eq!(meta["phase_centre"]["ra_deg"], 35.0);

        // The circular fixture's CORRECTED_DATA, channels 2:6 in windows of 2.
        let out = tmp.path().join("c.zarr");
        let o = aperture([
            "import",
            "ms",
            &fixture("low-circular.ms"),
            arg(&out),
            "--column",
            "corrected",
            "--channels",
            "2:6",
            "--channels-per-window",
            "2",
            "--precision",
            "f64",
        ]);
        assert_ok(&o);
        let (blocks, meta) = read_dataset(arg(&out));
        assert_eq!(blocks.len(), 2);
        assert_eq!(meta["extra"]["imported_from"]["weights"], "WEIGHT");
        let o = read_bundle_full(data_dir().join("low-circular.field0-spw0-corrected.stokes-i"))
            .unwrap()
            .block;
        let got = join(&blocks);
        assert_eq!(got.freq_c, o.freq_c[2..6]);
        assert_eq!(got.vis_rc, o.vis_rc.slice(s![.., 2..6]));
        assert_eq!(got.weight_rc, o.weight_rc.slice(s![.., 2..6]));
    }

    /// Relative L2 difference of two images.
    fn rel_l2(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
        let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
        let n: f64 = b.iter().map(|y| y * y).sum();
        (d / n).sqrt()
    }

    /// The simulation command the fixture README records (checked against the README).
    const SIMULATE: [&str; 16] = [
        "--telescope",
        "low",
        "--rmax",
        "140",
        "--windows",
        "2",
        "--channels-per-window",
        "4",
        "--times",
        "4",
        "--sources",
        "3",
        "--seed",
        "7",
        "--precision",
        "f32",
    ];

    #[test]
    fn the_dirty_image_is_that_of_the_simulated_sky() {
        let readme = std::fs::read_to_string(data_dir().join("README.md")).unwrap();
        let recorded = readme
            .replace("\\\n", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            recorded.contains(&format!("aperture simulate {}", SIMULATE.join(" "))),
            "the README's simulate command changed; update SIMULATE"
        );
        let tmp = tempfile::tempdir().unwrap();
        let bundle = tmp.path().join("bundle");
        let mut args = vec!["simulate"];
        args.extend(SIMULATE);
        args.extend(["--out", arg(&bundle)]);
        assert_ok(&aperture(args));
        let out = tmp.path().join("v.zarr");
        assert_ok(&aperture([
            "import",
            "ms",
            &fixture("low-linear.ms"),
            arg(&out),
            "--precision",
            "f64",
        ]));
        let got = join(&read_dataset(arg(&out)).0);
        let b = read_bundle_full(&bundle).unwrap();
        let sim = &b.block;
        // The MS was written from this bundle: same grid, uvw, channels.
        assert_eq!(got.n_rows(), sim.n_rows());
        assert_eq!(got.freq_c, sim.freq_c);
        assert_eq!((&got.ant1_r, &got.ant2_r), (&sim.ant1_r, &sim.ant2_r));
        assert_eq!(got.uvw_r, sim.uvw_r);

        let meta = &b.meta;
        let advised = &meta.extra["advised_image"];
        let npix = advised["npix"].as_u64().unwrap() as usize;
        let cell = advised["cell_rad"].as_f64().unwrap();
        let pc = got.phase_centre;
        assert_eq!(pc, sim.phase_centre);
        let (lo, hi) = (got.freq_c[0], got.freq_c[7]);
        let geom = ImageGeometry::square(npix, cell, pc, 0.5 * (lo + hi), hi - lo).unwrap();
        let opts = GridderOptions {
            epsilon: 1e-6,
            ..GridderOptions::default()
        };
        // The imported flags and weights apply to every image below.
        let w = got.effective_weight_rc();
        let sum_w: f64 = w.sum();
        let dirty = |uvw: &[_], vis: &Array2<_>| {
            dirty_image(uvw, &got.freq_c, vis.view(), w.view(), &geom, &opts)
                .unwrap()
                .0
                .data_yx
        };
        let d_ms = dirty(&got.uvw_r, &got.vis_rc);

        // Oracle: the exact DFT of the simulated sky's visibilities (meta.json), imaged
        // by the exact adjoint DFT with the same weights.
        let sky_json = &meta.extra["sky_model"];
        let sky = SkyModel {
            ref_freq_hz: sky_json["ref_freq_hz"].as_f64().unwrap(),
            sources: sky_json["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| PointSource {
                    dir: RaDec::from_degrees(
                        s["ra_deg"].as_f64().unwrap(),
                        s["dec_deg"].as_f64().unwrap(),
                    ),
                    flux_jy: s["flux_jy"].as_f64().unwrap(),
                    spectral_index: s["spectral_index"].as_f64().unwrap(),
                })
                .collect(),
        };
        let v_sky = predict_components(&sim.uvw_r, &sim.freq_c, pc, &sky).unwrap();
        let d_dft = invert_image(&sim.uvw_r, &sim.freq_c, &v_sky, &w, &geom)
            .unwrap()
            .data_yx
            / sum_w;
        let err = rel_l2(&d_ms, &d_dft);
        // Gridder epsilon plus the complex64 rounding of the simulated visibilities.
        assert!(
            err < 3e-6,
            "dirty image vs DFT of the sky: relative L2 {err:e}"
        );
        // The same data through the bundle's arrays give the same image.
        assert!(rel_l2(&dirty(&sim.uvw_r, &sim.vis_rc), &d_ms) < 3e-6);
        // With the opposite uvw sign (the mistake this test guards against) it fails.
        let flipped: Vec<_> = got
            .uvw_r
            .iter()
            .map(|p| aperture_imaging::coords::UvwMetres::new(-p.u, -p.v, -p.w))
            .collect();
        let bad = rel_l2(&dirty(&flipped, &got.vis_rc), &d_dft);
        assert!(bad > 0.1, "a negated uvw would go unnoticed ({bad:e})");

        // Each source is at the pixel its WCS position names, and the brightest is the
        // image's peak.
        let mut brightest = (0.0, (0, 0));
        for s in &sky.sources {
            let (x, y) = geom.radec_to_pixel(s.dir).unwrap();
            let (x, y) = (x.round() as usize, y.round() as usize);
            let v = d_ms[[y, x]];
            let around = d_ms.slice(s![y - 1..=y + 1, x - 1..=x + 1]);
            assert_eq!(
                around.iter().cloned().fold(f64::MIN, f64::max),
                v,
                "source at ({x}, {y})"
            );
            if s.flux_jy > brightest.0 {
                brightest = (s.flux_jy, (x, y));
            }
        }
        let (peak, px, py) = {
            let mut best = (f64::MIN, 0, 0);
            for ((y, x), &v) in d_ms.indexed_iter() {
                if v > best.0 {
                    best = (v, x, y);
                }
            }
            best
        };
        assert_eq!((px, py), brightest.1, "peak {peak}");
    }

    #[test]
    fn bad_input_names_table_and_column_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("v.zarr");
        let import = |extra: &[&str]| {
            let mut args = vec!["import", "ms"];
            args.extend(extra);
            aperture(args)
        };
        let linear = fixture("low-linear.ms");
        // Not a MeasurementSet.
        let empty = tmp.path().join("empty.ms");
        std::fs::create_dir(&empty).unwrap();
        assert_error(
            &import(&[arg(&empty), arg(&out)]),
            &[arg(&empty), "is not a MeasurementSet", "table.dat"],
        );
        assert_error(
            &import(&[arg(&tmp.path().join("nope.ms")), arg(&out)]),
            &["nope.ms: is not a MeasurementSet (no such directory)"],
        );
        // A MeasurementSet without its SPECTRAL_WINDOW subtable.
        let copy = tmp.path().join("copy.ms");
        copy_dir(&data_dir().join("low-linear.ms"), &copy);
        std::fs::remove_dir_all(copy.join("SPECTRAL_WINDOW")).unwrap();
        assert_error(
            &import(&[arg(&copy), arg(&out)]),
            &["copy.ms: has no SPECTRAL_WINDOW subtable"],
        );
        // A data column that is not there.
        assert_error(
            &import(&[&fixture("low-circular.ms"), arg(&out), "--column", "model"]),
            &["table MAIN has no column MODEL_DATA"],
        );
        // Correlations without Stokes I.
        assert_error(
            &import(&[&fixture("unsupported.ms"), arg(&out)]),
            &["POLARIZATION/CORR_TYPE", "XY(10), YX(11)"],
        );
        // Channels outside the spectral window, and other selections that select nothing.
        assert_error(
            &import(&[&linear, arg(&out), "--channels", "3:5"]),
            &["channels 3:5: outside SPECTRAL_WINDOW 0, which has 4 channels"],
        );
        assert_error(
            &import(&[&linear, arg(&out), "--field", "1", "--spw", "1"]),
            &["--spw 1: field 1 has no rows in spectral window 1"],
        );
        assert_error(
            &import(&[&linear, arg(&out), "--time-range", "-100:-1"]),
            &["--time-range: selects no rows"],
        );
        assert_error(
            &import(&[&linear, arg(&out), "--channels-per-window", "3"]),
            &["--channels-per-window: 3 does not divide the 4 selected channels"],
        );
        assert_error(
            &import(&[&linear, arg(&out), "--spw", "0,x"]),
            &["--spw", "\"x\" is not a non-negative integer"],
        );
        // An output inside the MeasurementSet.
        let inside = copy.join("v.zarr");
        assert_error(
            &import(&[arg(&copy), arg(&inside)]),
            &["overlaps the input MeasurementSet"],
        );
        assert!(!out.exists(), "a refused import wrote {}", out.display());
        assert!(!inside.exists());

        // A dataset that exists is only replaced with --force (or --overwrite); the
        // same import again finds nothing to do.
        assert_ok(&import(&[&linear, arg(&out)]));
        let before = listing(&out);
        let again = import(&[&linear, arg(&out)]);
        assert_ok(&again);
        assert!(
            stdout(&again).contains("nothing to do"),
            "{}",
            stdout(&again)
        );
        assert_eq!(listing(&out), before);
        assert_error(
            &import(&[&linear, arg(&out), "--channels-per-window", "2"]),
            &[arg(&out), "already exists", "another", "--force"],
        );
        assert_ok(&import(&[
            &linear,
            arg(&out),
            "--force",
            "--channels-per-window",
            "2",
        ]));
        assert_eq!(read_dataset(arg(&out)).0.len(), 4);
        assert_ne!(listing(&out), before);
        // A bad MeasurementSet with --force leaves the old dataset alone.
        assert_error(
            &import(&[&fixture("unsupported.ms"), arg(&out), "--force"]),
            &["POLARIZATION/CORR_TYPE"],
        );
        assert_eq!(read_dataset(arg(&out)).0.len(), 4);
    }

    /// Every file under `dir` and its bytes, the group metadata without the import's
    /// duration (`seconds`).
    fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        listing(dir)
            .into_iter()
            .filter(|p| dir.join(p).is_file())
            .map(|p| {
                let bytes = std::fs::read(dir.join(&p)).unwrap();
                if p == Path::new("zarr.json") {
                    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
                    v["attributes"]["aperture"]["extra"]["imported_from"]["seconds"] = 0.into();
                    (p, serde_json::to_vec(&v).unwrap())
                } else {
                    (p, bytes)
                }
            })
            .collect()
    }

    /// `done` as an import killed part-way: no group metadata, the record of the import
    /// in progress, windows 1 and 2 not marked complete, a chunk of each missing.
    fn interrupt(done: &Path, to: &Path) {
        copy_dir(done, to);
        let store = Store::from_url(arg(to)).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ds = open_dataset(store.object_store(), store.prefix())
                .await
                .unwrap();
            let id = import_identity(ds.meta());
            write_pending(&store.object_store(), store.prefix(), &id)
                .await
                .unwrap();
        });
        for f in [
            "zarr.json",
            "window_complete/c/1",
            "window_complete/c/2",
            "VISIBILITY/c/1/0/1/0",
            "FLAG/c/0/0/2/0",
        ] {
            std::fs::remove_file(to.join(f)).unwrap();
        }
    }

    #[test]
    fn an_interrupted_import_resumes_to_the_same_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let linear = fixture("low-linear.ms");
        let opts = ["--channels-per-window", "2", "--time-chunk", "1"];
        let import = |out: &Path, extra: &[&str]| {
            let mut args = vec!["import", "ms", &linear, arg(out)];
            args.extend(opts);
            args.extend(extra);
            aperture(args)
        };
        let whole = tmp.path().join("whole.zarr");
        assert_ok(&import(&whole, &[]));
        let want = contents(&whole);
        assert!(
            want.iter()
                .any(|(p, _)| p == Path::new("VISIBILITY/c/1/0/1/0"))
        );
        assert!(
            !want
                .iter()
                .any(|(p, _)| p.ends_with("aperture_import.json"))
        );

        // Killed part-way: the re-run reads only what is missing and gives the same
        // bytes, the record of the import in progress gone.
        let cut = tmp.path().join("cut.zarr");
        interrupt(&whole, &cut);
        let out = import(&cut, &[]);
        assert_ok(&out);
        let err = stdout(&out);
        // Windows 0 and 3 complete; window 1 (spectral window 0) misses time chunk 1
        // and window 2 (spectral window 1) time chunk 0: one pass each, one chunk read.
        assert!(
            err.contains(
                "2 windows and 6 window time chunks were already written; 2 time chunks \
                 read in 2 passes"
            ),
            "{err}"
        );
        assert_eq!(contents(&cut), want);
        assert_eq!(read_dataset(arg(&cut)).0.len(), 4);

        // Remains of another selection are refused, and replaced with --overwrite.
        let other = tmp.path().join("other.zarr");
        interrupt(&whole, &other);
        let e = {
            let mut args = vec!["import", "ms", &linear, arg(&other)];
            args.extend(["--channels-per-window", "4"]);
            aperture(args)
        };
        assert_error(&e, &["interrupted import", "another", "--force"]);
        let mut args = vec!["import", "ms", &linear, arg(&other), "--overwrite"];
        args.extend(["--channels-per-window", "4"]);
        assert_ok(&aperture(args));
        assert_eq!(read_dataset(arg(&other)).0.len(), 2);

        // Remains without the record (not an import of this aperture) are refused.
        let odd = tmp.path().join("odd.zarr");
        interrupt(&whole, &odd);
        std::fs::remove_file(odd.join("aperture_import.json")).unwrap();
        assert_error(&import(&odd, &[]), &["is not empty", "--force"]);
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy_dir(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).unwrap();
            }
        }
    }
}
