//! Bad input gives a one-line error naming the option or file, exit code 2, and leaves
//! no output (or temporary) file behind.

mod common;

use std::path::{Path, PathBuf};

use aperture_pipeline::formats::bundle::read_bundle;
use common::{
    aperture, assert_error, copy_bundle, f32_bytes, f64_bytes, listing, simulate, write_npy,
};

/// A temporary directory with a small simulated bundle `good/`.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        simulate(&tmp.path().join("good"), &["--sources", "2"]);
        Self { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A copy of the good bundle, to damage.
    fn copy(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        copy_bundle(&self.path("good"), &p);
        p
    }

    /// Runs `aperture args`, expecting the error and no change to the directory.
    fn fails(&self, args: &[&str], needles: &[&str]) {
        let before = listing(self.tmp.path());
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_aperture"))
            .current_dir(self.tmp.path())
            .arg("--quiet")
            .args(args)
            .output()
            .unwrap();
        assert_error(&o, needles);
        assert_eq!(
            listing(self.tmp.path()),
            before,
            "files changed by {args:?}"
        );
    }
}

/// `aperture simulate` with the small observation and `extra` arguments.
fn sim<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["simulate"];
    a.extend(common::SMALL);
    a.extend(extra);
    a
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn damaged_bundles_name_the_file() {
    let f = Fixture::new();
    let good = read_bundle(f.path("good")).unwrap();
    let (nrow, nchan) = (good.n_rows(), good.n_chan());

    let b = f.copy("novis");
    std::fs::remove_file(b.join("vis.npy")).unwrap();
    f.fails(&["invert", "novis", "--out", "d.fits"], &["novis/vis.npy"]);

    let b = f.copy("shape");
    write_npy(
        &b.join("vis.npy"),
        "<c16",
        &[nrow, nchan + 1],
        &vec![0u8; nrow * (nchan + 1) * 16],
    );
    f.fails(&["invert", "shape", "--out", "d.fits"], &["shape/vis.npy"]);

    let b = f.copy("dtype");
    let uvw32: Vec<f32> = good
        .uvw_r
        .iter()
        .flat_map(|p| [p.u as f32, p.v as f32, p.w as f32])
        .collect();
    write_npy(&b.join("uvw.npy"), "<f4", &[nrow, 3], &f32_bytes(&uvw32));
    f.fails(
        &["invert", "dtype", "--out", "d.fits"],
        &["dtype/uvw.npy", "dtype"],
    );

    let b = f.copy("nanvis");
    let mut vis: Vec<f64> = good.vis_rc.iter().flat_map(|z| [z.re, z.im]).collect();
    vis[2 * (3 * nchan + 1)] = f64::NAN;
    write_npy(&b.join("vis.npy"), "<c16", &[nrow, nchan], &f64_bytes(&vis));
    f.fails(
        &["invert", "nanvis", "--out", "d.fits"],
        &["nanvis/vis.npy", "row 3, channel 1"],
    );

    let b = f.copy("infuvw");
    let mut uvw: Vec<f64> = good.uvw_r.iter().flat_map(|p| [p.u, p.v, p.w]).collect();
    uvw[3 * 5 + 2] = f64::INFINITY;
    write_npy(&b.join("uvw.npy"), "<f8", &[nrow, 3], &f64_bytes(&uvw));
    f.fails(
        &["invert", "infuvw", "--out", "d.fits"],
        &["infuvw/uvw.npy", "row 5"],
    );

    let b = f.copy("rows");
    write_npy(
        &b.join("time.npy"),
        "<f8",
        &[nrow - 1],
        &f64_bytes(&vec![0.0; nrow - 1]),
    );
    f.fails(
        &["invert", "rows", "--out", "d.fits"],
        &["rows/time.npy", "rows/uvw.npy"],
    );

    let b = f.copy("nometa");
    std::fs::remove_file(b.join("meta.json")).unwrap();
    f.fails(
        &["invert", "nometa", "--out", "d.fits"],
        &["nometa/meta.json"],
    );

    let b = f.copy("flagged");
    write_npy(
        &b.join("flag.npy"),
        "|b1",
        &[nrow, nchan],
        &vec![1u8; nrow * nchan],
    );
    f.fails(
        &[
            "invert", "flagged", "--npix", "64", "--cell", "600", "--out", "d.fits",
        ],
        &["flagged", "no unflagged"],
    );
    f.fails(
        &["invert", "flagged", "--out", "d.fits"],
        &["flagged", "--npix"],
    );

    f.fails(&["invert", "missing", "--out", "d.fits"], &["missing"]);
}

#[test]
fn bad_options_name_the_option() {
    let f = Fixture::new();
    f.fails(
        &["invert", "good", "--npix", "1023", "--out", "d.fits"],
        &["--npix 1023", "even"],
    );
    f.fails(
        &["invert", "good", "--npix", "8", "--out", "d.fits"],
        &["--npix 8"],
    );
    f.fails(
        &["invert", "good", "--npix", "abc", "--out", "d.fits"],
        &["--npix"],
    );
    f.fails(
        &["invert", "good", "--epsilon", "1e-13", "--out", "d.fits"],
        &["--epsilon"],
    );
    f.fails(
        &["invert", "good", "--epsilon", "0.5", "--out", "d.fits"],
        &["--epsilon"],
    );
    f.fails(
        &[
            "invert",
            "good",
            "--epsilon",
            "1e-6",
            "--precision",
            "f32",
            "--out",
            "d.fits",
        ],
        &["--epsilon", "f32"],
    );
    f.fails(
        &["invert", "good", "--cell", "-3", "--out", "d.fits"],
        &["--cell"],
    );
    f.fails(
        &[
            "invert", "good", "--npix", "4096", "--cell", "600", "--out", "d.fits",
        ],
        &["--npix 4096", "--cell 600"],
    );
    f.fails(
        &[
            "invert",
            "good",
            "--weighting",
            "robust",
            "--robust",
            "2.5",
            "--out",
            "d.fits",
        ],
        &["--robust"],
    );
    f.fails(
        &["invert", "good", "--taper", "0", "--out", "d.fits"],
        &["--taper"],
    );
    f.fails(&["invert", "good"], &["--out"]);
    f.fails(
        &[
            "predict",
            "good",
            "--model",
            "m.fits",
            "--epsilon",
            "2",
            "--out",
            "p",
        ],
        &["--epsilon"],
    );
    f.fails(
        &["bench", "kernels", "--npix", "100", "--repeat", "0"],
        &["--repeat"],
    );
    f.fails(&["bench", "kernels", "--npix", "1001"], &["--npix 1001"]);

    f.fails(&sim(&["--rmax", "-1", "--out", "o"]), &["--rmax"]);
    f.fails(&sim(&["--rmax", "10", "--out", "o"]), &["--rmax"]);
    f.fails(&sim(&["--fmin", "2e8", "--out", "o"]), &["--fmax"]);
    f.fails(&sim(&["--dec", "-95", "--out", "o"]), &["--dec"]);
    f.fails(&sim(&["--noise", "-1", "--out", "o"]), &["--noise"]);
    f.fails(&sim(&["--source", "1,2", "--out", "o"]), &["--source"]);
    f.fails(
        &sim(&["--source", "195,45,1", "--out", "o"]),
        &["--source #1"],
    );
    f.fails(
        &sim(&[
            "--sources",
            "100000000",
            "--source-extent",
            "1",
            "--out",
            "o",
        ]),
        &["--sources"],
    );
    f.fails(
        &sim(&["--config", "nofile.csv", "--out", "o"]),
        &["--config nofile.csv"],
    );
    std::fs::write(f.path("bad.csv"), "name,e,n\nA,0,0\n").unwrap();
    f.fails(
        &sim(&["--config", "bad.csv", "--out", "o"]),
        &["--config bad.csv"],
    );
    std::fs::remove_file(f.path("bad.csv")).unwrap();
    f.fails(
        &[
            "simulate",
            "--telescope",
            "low",
            "--windows",
            "1",
            "--channels-per-window",
            "1",
            "--times",
            "1",
            "--out",
            "o",
        ],
        &["--rmax"],
    );
}

#[test]
fn outputs_are_checked_before_work_and_never_clobbered() {
    let f = Fixture::new();
    // Unwritable: the "directory" is a file (root ignores permission bits, so no chmod).
    std::fs::write(f.path("afile"), b"x").unwrap();
    f.fails(
        &["invert", "good", "--out", "afile/d.fits"],
        &["--out afile/d.fits", "not a directory"],
    );
    f.fails(
        &["invert", "good", "--out", "nodir/d.fits"],
        &["--out nodir/d.fits", "does not exist"],
    );
    f.fails(
        &["invert", "good", "--out", "d.fits", "--psf", "afile/p.fits"],
        &["--psf afile/p.fits"],
    );
    f.fails(
        &[
            "simulate",
            "--telescope",
            "low",
            "--rmax",
            "300",
            "--windows",
            "1",
            "--channels-per-window",
            "1",
            "--times",
            "1",
            "--out",
            "afile/b",
        ],
        &["--out afile/b"],
    );

    // Existing outputs without --overwrite, untouched.
    std::fs::write(f.path("d.fits"), b"keep").unwrap();
    f.fails(
        &["invert", "good", "--out", "d.fits"],
        &["--out d.fits", "already exists", "--overwrite"],
    );
    assert_eq!(std::fs::read(f.path("d.fits")).unwrap(), b"keep");
    std::fs::write(f.path("e.png"), b"keep").unwrap();
    f.fails(
        &["invert", "good", "--out", "e.fits"],
        &["quick-look of --out e.png"],
    );
    f.fails(
        &["invert", "good", "--out", "x.fits", "--psf", "x.fits"],
        &["--psf x.fits"],
    );
    f.fails(&["invert", "good", "--out", "x.png"], &["x.png"]);
    f.fails(&["invert", "good", "--out", "good"], &["--out good"]);
    f.fails(
        &["invert", "good", "--out", "good/d.fits"],
        &["--out good/d.fits"],
    );
    f.fails(
        &[
            "simulate",
            "--telescope",
            "low",
            "--rmax",
            "300",
            "--windows",
            "1",
            "--channels-per-window",
            "1",
            "--times",
            "1",
            "--out",
            "good",
        ],
        &["--out good", "already exists"],
    );
    // --overwrite replaces bundles only, never a directory holding other files.
    f.fails(
        &[
            "simulate",
            "--telescope",
            "low",
            "--rmax",
            "300",
            "--windows",
            "1",
            "--channels-per-window",
            "1",
            "--times",
            "1",
            "--out",
            ".",
            "--overwrite",
        ],
        &["--out ."],
    );
    std::fs::create_dir(f.path("notes")).unwrap();
    std::fs::write(f.path("notes/a.txt"), b"x").unwrap();
    f.fails(
        &[
            "simulate",
            "--telescope",
            "low",
            "--rmax",
            "300",
            "--windows",
            "1",
            "--channels-per-window",
            "1",
            "--times",
            "1",
            "--out",
            "notes",
            "--overwrite",
        ],
        &["--out notes", "a.txt"],
    );

    // With --overwrite the file is replaced.
    let o = aperture([
        "invert",
        s(&f.path("good")),
        "--npix",
        "64",
        "--out",
        s(&f.path("d.fits")),
        "--overwrite",
    ]);
    common::assert_ok(&o);
    assert_ne!(std::fs::read(f.path("d.fits")).unwrap(), b"keep");
}

#[test]
fn predict_checks_its_model_and_output() {
    let f = Fixture::new();
    // A model from invert (centred on the bundle), and one centred elsewhere.
    common::assert_ok(&aperture([
        "invert",
        s(&f.path("good")),
        "--npix",
        "64",
        "--out",
        s(&f.path("m.fits")),
    ]));
    let other = f.path("other");
    simulate(&other, &["--sources", "1", "--ra", "15.0001"]);
    common::assert_ok(&aperture([
        "invert",
        s(&other),
        "--npix",
        "64",
        "--out",
        s(&f.path("o.fits")),
    ]));
    std::fs::write(f.path("junk.fits"), vec![b'x'; 4000]).unwrap();

    f.fails(
        &["predict", "good", "--model", "o.fits", "--out", "p"],
        &["--model o.fits", "phase centre"],
    );
    f.fails(
        &["predict", "good", "--model", "nothere.fits", "--out", "p"],
        &["--model nothere.fits"],
    );
    f.fails(
        &["predict", "good", "--model", "junk.fits", "--out", "p"],
        &["junk.fits"],
    );
    f.fails(
        &[
            "predict",
            "good",
            "--model",
            "m.fits",
            "--out",
            "good",
            "--overwrite",
        ],
        &["--out good"],
    );
    f.fails(
        &["predict", "good", "--model", "m.fits", "--out", "other"],
        &["--out other", "already exists"],
    );
    f.fails(
        &["predict", "good", "--model", "m.fits", "--out", "afile/p"],
        &["--out afile/p"],
    );
    f.fails(&["predict", "good", "--out", "p"], &["--model"]);
}
