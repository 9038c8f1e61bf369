//! Bad input gives a one-line error naming the option or file, exit code 2, and leaves
//! no output (or temporary) file behind.

mod common;

use std::path::PathBuf;

use aperture_pipeline::formats::bundle::read_bundle;
use common::{
    aperture_in, assert_error, assert_ok, copy_bundle, f32_bytes, f64_bytes, invert, listing,
    simulate, stderr, write_npy,
};

/// A command line and what its one-line error must name.
type Case<'a> = (Vec<&'a str>, &'a [&'a str]);

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

    /// Runs `aperture args` in the directory, expecting the error and no change to the
    /// directory.
    fn fails(&self, args: &[&str], needles: &[&str]) {
        let before = listing(self.tmp.path());
        let o = aperture_in(self.tmp.path(), args);
        eprintln!("checked: aperture {}", args.join(" "));
        assert_error(&o, needles);
        // The case itself is well formed (an option given twice would be refused first).
        assert!(
            !stderr(&o).contains("cannot be used multiple times"),
            "{args:?}"
        );
        assert_eq!(
            listing(self.tmp.path()),
            before,
            "files changed by {args:?}"
        );
    }

    /// [`Fixture::fails`] for each case.
    fn fails_all(&self, cases: &[Case]) {
        for (args, needles) in cases {
            self.fails(args, needles);
        }
    }
}

/// `aperture invert BUNDLE EXTRA... --out d.fits`.
fn inv<'a>(bundle: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["invert", bundle];
    a.extend(extra);
    a.extend(["--out", "d.fits"]);
    a
}

/// `aperture simulate` with the small observation and `extra` arguments; an option in
/// `extra` replaces the small observation's (clap refuses one given twice).
fn sim<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["simulate"];
    for option_value in common::SMALL.chunks(2) {
        if !extra.contains(&option_value[0]) {
            a.extend(option_value);
        }
    }
    a.extend(extra);
    a
}

#[test]
fn damaged_bundles_name_the_file() {
    let f = Fixture::new();
    let good = read_bundle(f.path("good")).unwrap();
    let (nrow, nchan) = (good.n_rows(), good.n_chan());

    let b = f.copy("novis");
    std::fs::remove_file(b.join("vis.npy")).unwrap();

    let b = f.copy("shape");
    write_npy(
        &b.join("vis.npy"),
        "<c16",
        &[nrow, nchan + 1],
        &vec![0u8; nrow * (nchan + 1) * 16],
    );

    let b = f.copy("dtype");
    let uvw32: Vec<f32> = good
        .uvw_r
        .iter()
        .flat_map(|p| [p.u as f32, p.v as f32, p.w as f32])
        .collect();
    write_npy(&b.join("uvw.npy"), "<f4", &[nrow, 3], &f32_bytes(&uvw32));

    let b = f.copy("nanvis");
    let mut vis: Vec<f64> = good.vis_rc.iter().flat_map(|z| [z.re, z.im]).collect();
    vis[2 * (3 * nchan + 1)] = f64::NAN;
    write_npy(&b.join("vis.npy"), "<c16", &[nrow, nchan], &f64_bytes(&vis));

    let b = f.copy("infuvw");
    let mut uvw: Vec<f64> = good.uvw_r.iter().flat_map(|p| [p.u, p.v, p.w]).collect();
    uvw[3 * 5 + 2] = f64::INFINITY;
    write_npy(&b.join("uvw.npy"), "<f8", &[nrow, 3], &f64_bytes(&uvw));

    let b = f.copy("rows");
    write_npy(
        &b.join("time.npy"),
        "<f8",
        &[nrow - 1],
        &f64_bytes(&vec![0.0; nrow - 1]),
    );

    let b = f.copy("nometa");
    std::fs::remove_file(b.join("meta.json")).unwrap();

    let b = f.copy("flagged");
    write_npy(
        &b.join("flag.npy"),
        "|b1",
        &[nrow, nchan],
        &vec![1u8; nrow * nchan],
    );

    f.fails_all(&[
        (inv("novis", &[]), &["novis/vis.npy"]),
        (inv("shape", &[]), &["shape/vis.npy"]),
        (inv("dtype", &[]), &["dtype/uvw.npy", "dtype"]),
        (inv("nanvis", &[]), &["nanvis/vis.npy", "row 3, channel 1"]),
        (inv("infuvw", &[]), &["infuvw/uvw.npy", "row 5"]),
        (inv("rows", &[]), &["rows/time.npy", "rows/uvw.npy"]),
        (inv("nometa", &[]), &["nometa/meta.json"]),
        (
            inv("flagged", &["--npix", "64", "--cell", "600"]),
            &["flagged", "no unflagged"],
        ),
        // Without --npix and --cell there is nothing to advise the image from.
        (inv("flagged", &[]), &["flagged", "--npix"]),
        (inv("missing", &[]), &["missing does not exist"]),
    ]);
}

#[test]
fn bad_options_name_the_option() {
    let f = Fixture::new();
    std::fs::write(f.path("bad.csv"), "name,e,n\nA,0,0\n").unwrap();
    std::fs::write(f.path("two.csv"), "name,e,n,u\nA,0,0,0\nB,100,0,0\n").unwrap();
    let good = |extra: &[&'static str]| inv("good", extra);
    f.fails_all(&[
        (good(&["--npix", "1023"]), &["--npix 1023", "even"]),
        (good(&["--npix", "8"]), &["--npix 8"]),
        (good(&["--npix", "abc"]), &["--npix"]),
        (
            good(&["--epsilon", "1e-13"]),
            &["--epsilon 1e-13", "between 1e-12 and 0.1", "f64"],
        ),
        (good(&["--epsilon", "0.5"]), &["--epsilon 5e-1"]),
        (
            good(&["--epsilon", "1e-6", "--precision", "f32"]),
            &["--epsilon 1e-6", "between 1e-5 and 0.1", "f32"],
        ),
        (good(&["--threads", "5000"]), &["--threads 5000"]),
        (good(&["--cell", "-3"]), &["--cell"]),
        (
            good(&["--npix", "4096", "--cell", "600"]),
            &["--npix 4096", "--cell 600"],
        ),
        (
            good(&["--weighting", "robust", "--robust", "2.5"]),
            &["--robust"],
        ),
        (good(&["--robust", "1"]), &["--robust", "natural"]),
        (good(&["--taper", "0"]), &["--taper"]),
        (vec!["invert", "good"], &["--out"]),
        (
            vec![
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
        ),
        (
            vec!["bench", "kernels", "--npix", "100", "--repeat", "0"],
            &["--repeat"],
        ),
        (vec!["bench", "kernels", "--npix", "1001"], &["--npix 1001"]),
        (
            vec![
                "bench",
                "kernels",
                "--epsilon",
                "1e-6",
                "--precision",
                "f32",
            ],
            &["--epsilon 1e-6", "f32"],
        ),
        (vec!["bench", "kernels", "--cell", "0"], &["--cell 0"]),
        (
            sim(&["--rmax", "-1", "--out", "o"]),
            &["--rmax -1", "positive"],
        ),
        (
            sim(&["--rmax", "10", "--out", "o"]),
            &["--rmax", "keeps 0 antenna(s) of LOW"],
        ),
        (sim(&["--fmin", "2e8", "--out", "o"]), &["--fmax"]),
        (sim(&["--dec", "-95", "--out", "o"]), &["--dec"]),
        (sim(&["--noise", "-1", "--out", "o"]), &["--noise"]),
        (sim(&["--source", "1,2", "--out", "o"]), &["--source"]),
        (
            sim(&["--source", "195,45,1", "--out", "o"]),
            &["--source #1"],
        ),
        (
            sim(&[
                "--sources",
                "100000000",
                "--source-extent",
                "1",
                "--out",
                "o",
            ]),
            &["--sources"],
        ),
        (
            sim(&["--config", "nofile.csv", "--out", "o"]),
            &["--config nofile.csv"],
        ),
        (
            sim(&["--config", "bad.csv", "--out", "o"]),
            &["--config bad.csv"],
        ),
        (
            sim(&["--config", "two.csv", "--rmax", "50", "--out", "o"]),
            &["--rmax 50", "keeps 1 station(s) of two.csv"],
        ),
        (
            vec![
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
        ),
    ]);
}

#[test]
fn outputs_are_checked_before_work_and_never_clobbered() {
    let f = Fixture::new();
    // Unwritable: the "directory" is a file (root ignores permission bits, so no chmod).
    std::fs::write(f.path("afile"), b"x").unwrap();
    // Existing outputs without --overwrite, untouched.
    std::fs::write(f.path("d.fits"), b"keep").unwrap();
    std::fs::write(f.path("e.png"), b"keep").unwrap();
    // --overwrite replaces bundles only, never a directory holding other files.
    std::fs::create_dir(f.path("notes")).unwrap();
    std::fs::write(f.path("notes/a.txt"), b"x").unwrap();

    let invert_to = |out: &'static str, extra: &[&'static str]| {
        let mut a = vec!["invert", "good"];
        a.extend(extra);
        a.extend(["--out", out]);
        a
    };
    f.fails_all(&[
        (
            invert_to("afile/d.fits", &[]),
            &["--out afile/d.fits", "not a directory"],
        ),
        (
            invert_to("nodir/d.fits", &[]),
            &["--out nodir/d.fits", "does not exist"],
        ),
        (
            invert_to("f.fits", &["--psf", "afile/p.fits"]),
            &["--psf afile/p.fits"],
        ),
        (sim(&["--out", "afile/b"]), &["--out afile/b"]),
        (
            invert_to("d.fits", &[]),
            &["--out d.fits", "already exists", "--overwrite"],
        ),
        (invert_to("e.fits", &[]), &["quick-look of --out e.png"]),
        (
            invert_to("x.fits", &["--psf", "x.fits"]),
            &["--psf x.fits", "the same file as --out x.fits"],
        ),
        (invert_to("x.png", &[]), &["x.png", "the same file"]),
        (invert_to("good", &[]), &["--out good", "input bundle"]),
        (
            invert_to("good/d.fits", &[]),
            &["--out good/d.fits", "input bundle"],
        ),
        (
            invert_to("d2.fits", &["--psf", "good/p.fits"]),
            &["--psf good/p.fits"],
        ),
        (sim(&["--out", "good"]), &["--out good", "already exists"]),
        (
            sim(&["--out", ".", "--overwrite"]),
            &["--out .", "does not name"],
        ),
        (
            sim(&["--out", "notes", "--overwrite"]),
            &["--out notes", "a.txt"],
        ),
    ]);
    assert_eq!(std::fs::read(f.path("d.fits")).unwrap(), b"keep");
    assert_eq!(std::fs::read(f.path("e.png")).unwrap(), b"keep");

    // With --overwrite the file is replaced.
    assert_ok(&invert(
        &f.path("good"),
        &f.path("d.fits"),
        &["--npix", "64", "--overwrite"],
    ));
    assert_ne!(std::fs::read(f.path("d.fits")).unwrap(), b"keep");
}

#[test]
fn predict_checks_its_model_and_output() {
    let f = Fixture::new();
    // A model from invert (centred on the bundle), and one centred elsewhere.
    assert_ok(&invert(
        &f.path("good"),
        &f.path("m.fits"),
        &["--npix", "64"],
    ));
    let other = f.path("other");
    simulate(&other, &["--sources", "1", "--ra", "15.0001"]);
    assert_ok(&invert(&other, &f.path("o.fits"), &["--npix", "64"]));
    std::fs::write(f.path("junk.fits"), vec![b'x'; 4000]).unwrap();

    let predict = |model: &'static str, out: &'static str, extra: &[&'static str]| {
        let mut a = vec!["predict", "good", "--model", model, "--out", out];
        a.extend(extra);
        a
    };
    f.fails_all(&[
        (
            predict("o.fits", "p", &[]),
            &["--model o.fits", "phase centre"],
        ),
        (
            predict("nothere.fits", "p", &[]),
            &["--model nothere.fits", "does not exist"],
        ),
        (
            predict("junk.fits", "p", &[]),
            &["junk.fits", "not a FITS file"],
        ),
        (
            predict("m.fits", "good", &["--overwrite"]),
            &["--out good", "input bundle"],
        ),
        (
            predict("m.fits", "m.fits", &["--overwrite"]),
            &["--out m.fits"],
        ),
        (
            predict("m.fits", "other", &[]),
            &["--out other", "already exists"],
        ),
        (predict("m.fits", "afile/p", &[]), &["--out afile/p"]),
        (vec!["predict", "good", "--out", "p"], &["--model"]),
    ]);
}
