//! `aperture clean` on bad input: a one-line error naming the option or file, exit code
//! 2, and no output (or temporary) file left behind; inputs are never overwritten.

mod common;

use std::path::{Path, PathBuf};

use aperture_imaging::image::Image;
use aperture_pipeline::formats::fits::{FitsWriteOptions, read_fits_image, write_fits_image};
use common::{aperture_in, assert_error, assert_ok, listing, simulate, stderr};
use ndarray::Array2;

/// A command line and what its one-line error must name.
type Case<'a> = (Vec<&'a str>, &'a [&'a str]);

/// A directory with a dirty image and PSF from invert (64², 200″ cells) and damaged
/// variants of them.
struct Fixture {
    tmp: tempfile::TempDir,
}

fn write(path: &Path, img: &Image) {
    write_fits_image(path, img, &FitsWriteOptions::default()).unwrap();
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let f = Self { tmp };
        simulate(&f.path("b"), &["--sources", "0", "--source", "15,-45,1.5"]);
        for (npix, dirty, psf) in [
            ("64", "dirty.fits", "psf.fits"),
            ("32", "dirty32.fits", "psf32.fits"),
        ] {
            assert_ok(&aperture_in(
                f.tmp.path(),
                [
                    "invert", "b", "--npix", npix, "--cell", "200", "--out", dirty, "--psf", psf,
                ],
            ));
        }
        let (psf, _) = read_fits_image(f.path("psf.fits")).unwrap();
        let (dirty, _) = read_fits_image(f.path("dirty.fits")).unwrap();
        // Another cell, another phase centre.
        let mut p = psf.clone();
        p.geom.cell *= 1.5;
        write(&f.path("psf_cell.fits"), &p);
        let mut p = psf.clone();
        p.geom.phase_centre.dec += 0.01;
        write(&f.path("psf_pc.fits"), &p);
        // The peak moved 3 pixels east.
        let mut p = psf.clone();
        p.data_yx = Array2::from_shape_fn((64, 64), |(y, x)| psf.data_yx[[y, (x + 3) % 64]]);
        write(&f.path("psf_off.fits"), &p);
        // All zero.
        write(&f.path("psf_zero.fits"), &Image::zeros(psf.geom));
        // A main lobe wider than the image.
        let mut p = psf.clone();
        p.data_yx = Array2::from_shape_fn((64, 64), |(y, x)| {
            let r2 = (x as f64 - 32.0).powi(2) + (y as f64 - 32.0).powi(2);
            (-r2 / (2.0 * 30.0f64.powi(2))).exp()
        });
        write(&f.path("psf_wide.fits"), &p);
        // A dirty image with a NaN pixel (x=5, y=7), patched into the f32 data.
        std::fs::copy(f.path("dirty.fits"), f.path("dirty_nan.fits")).unwrap();
        patch_nan(&f.path("dirty_nan.fits"), 7 * 64 + 5);
        // Masks: the wrong size, and empty.
        write(
            &f.path("mask32.fits"),
            &Image::zeros(read_fits_image(f.path("psf32.fits")).unwrap().0.geom),
        );
        write(&f.path("mask_empty.fits"), &Image::zeros(dirty.geom));
        // An input named like an output of --out run.
        std::fs::copy(f.path("dirty.fits"), f.path("run-model.fits")).unwrap();
        // An existing output of --out old.
        std::fs::write(f.path("old-residual.fits"), b"keep").unwrap();
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn fails(&self, args: &[&str], needles: &[&str]) {
        let before = listing(self.tmp.path());
        let o = aperture_in(self.tmp.path(), args);
        eprintln!("checked: aperture {}", args.join(" "));
        assert_error(&o, needles);
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

    fn fails_all(&self, cases: &[Case]) {
        for (args, needles) in cases {
            self.fails(args, needles);
        }
    }
}

/// Sets pixel `index` (file order) of an f32 FITS image to NaN.
fn patch_nan(path: &Path, index: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let end = (0..bytes.len())
        .step_by(80)
        .find(|&i| bytes[i..i + 80].starts_with(b"END     "))
        .unwrap();
    let data = (end / 2880 + 1) * 2880;
    let at = data + 4 * index;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// `clean DIRTY PSF EXTRA... --out out`.
fn clean<'a>(dirty: &'a str, psf: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["clean", dirty, psf];
    a.extend(extra);
    if !extra.contains(&"--out") {
        a.extend(["--out", "out"]);
    }
    a
}

#[test]
fn bad_images_name_the_file() {
    let f = Fixture::new();
    f.fails_all(&[
        (clean("nofile.fits", "psf.fits", &[]), &["nofile.fits"]),
        (clean("dirty.fits", "nopsf.fits", &[]), &["nopsf.fits"]),
        (
            clean("dirty.fits", "psf32.fits", &[]),
            &["psf32.fits", "32 x 32", "dirty.fits"],
        ),
        (
            clean("dirty.fits", "psf_cell.fits", &[]),
            &["psf_cell.fits", "cell"],
        ),
        (
            clean("dirty.fits", "psf_pc.fits", &[]),
            &["psf_pc.fits", "phase centre"],
        ),
        (
            clean("dirty.fits", "psf_off.fits", &[]),
            &["psf_off.fits", "not at the centre", "x=29"],
        ),
        (
            clean("dirty.fits", "psf_zero.fits", &[]),
            &["psf_zero.fits", "no positive pixel"],
        ),
        (
            clean("dirty.fits", "psf_wide.fits", &[]),
            &["psf_wide.fits", "image edge", "--beam"],
        ),
        (
            clean("dirty_nan.fits", "psf.fits", &[]),
            &["dirty_nan.fits", "non-finite", "x=5, y=7"],
        ),
    ]);
}

#[test]
fn bad_options_name_the_option() {
    let f = Fixture::new();
    let (d, p) = ("dirty.fits", "psf.fits");
    f.fails_all(&[
        (clean(d, p, &["--niter", "0"]), &["--niter 0"]),
        (clean(d, p, &["--niter", "-3"]), &["--niter"]),
        (clean(d, p, &["--gain", "0"]), &["--gain 0"]),
        (clean(d, p, &["--gain", "1.5"]), &["--gain 1.5"]),
        (clean(d, p, &["--threshold", "-1"]), &["--threshold -1"]),
        (
            clean(d, p, &["--fractional-threshold", "1"]),
            &["--fractional-threshold 1"],
        ),
        (
            clean(d, p, &["--auto-threshold", "0"]),
            &["--auto-threshold 0"],
        ),
        (clean(d, p, &["--psf-support", "0"]), &["--psf-support 0"]),
        (clean(d, p, &["--scales", "0,3"]), &["--scales", "msclean"]),
        (clean(d, p, &["--nmoment", "2"]), &["--nmoment", "msmfs"]),
        (
            clean(d, p, &["--algorithm", "msclean", "--scales", "0,-3"]),
            &["--scales", "-3"],
        ),
        (
            clean(d, p, &["--algorithm", "msmfs", "--nmoment", "4"]),
            &["--nmoment 4"],
        ),
        (
            clean(d, p, &["--algorithm", "msmfs", "--nmoment", "2"]),
            &["--nmoment 2", "2 frequency windows"],
        ),
        (clean(d, p, &["--algorithm", "wsclean"]), &["--algorithm"]),
        (
            clean(d, p, &["--beam", "10,20,0"]),
            &["--beam 10,20,0", "BMIN"],
        ),
        (clean(d, p, &["--beam", "10,0,0"]), &["--beam 10,0,0"]),
        (clean(d, p, &["--beam", "10,5"]), &["--beam 10,5", "three"]),
        (clean(d, p, &["--window", "bogus"]), &["--window bogus"]),
        (
            clean(d, p, &["--window", "no-edge:x"]),
            &["--window no-edge:x"],
        ),
        (
            clean(d, p, &["--window", "no-edge:40"]),
            &["--window no-edge:40"],
        ),
        (
            clean(d, p, &["--window", "mask32.fits"]),
            &["--window", "mask32.fits", "32 x 32"],
        ),
        (
            clean(d, p, &["--window", "mask_empty.fits"]),
            &["--window mask_empty.fits", "zero everywhere"],
        ),
    ]);
}

#[test]
fn positional_files_come_in_pairs() {
    let f = Fixture::new();
    f.fails_all(&[
        (vec!["clean", "dirty.fits", "--out", "out"], &["DIRTY PSF"]),
        (
            vec![
                "clean",
                "dirty.fits",
                "psf.fits",
                "dirty.fits",
                "psf.fits",
                "--out",
                "out",
            ],
            &["--algorithm msmfs", "4 files"],
        ),
        (
            vec![
                "clean",
                "dirty.fits",
                "psf.fits",
                "dirty.fits",
                "--algorithm",
                "msmfs",
                "--out",
                "out",
            ],
            &["odd number", "dirty.fits has no PSF"],
        ),
        (
            vec![
                "clean",
                "dirty.fits",
                "psf.fits",
                "dirty32.fits",
                "psf32.fits",
                "--algorithm",
                "msmfs",
                "--out",
                "out",
            ],
            &["dirty32.fits", "32 x 32"],
        ),
    ]);
}

#[test]
fn outputs_never_replace_inputs_or_existing_files() {
    let f = Fixture::new();
    std::fs::write(f.path("afile"), b"x").unwrap();
    f.fails_all(&[
        (
            clean("run-model.fits", "psf.fits", &["--out", "run"]),
            &["--out", "run-model.fits", "input image"],
        ),
        (
            clean("dirty.fits", "psf.fits", &["--out", "old"]),
            &["old-residual.fits", "already exists", "--overwrite"],
        ),
        (
            clean("dirty.fits", "psf.fits", &["--out", "afile/x"]),
            &["--out afile/x-model.fits", "not a directory"],
        ),
        (
            clean("dirty.fits", "psf.fits", &["--out", "nodir/x"]),
            &["nodir/x-model.fits", "does not exist"],
        ),
        (
            clean("dirty.fits", "psf.fits", &["--out", "."]),
            &["--out .", "prefix"],
        ),
    ]);
    assert_eq!(std::fs::read(f.path("old-residual.fits")).unwrap(), b"keep");
    // With --overwrite the old outputs are replaced.
    let o = aperture_in(
        f.tmp.path(),
        clean(
            "dirty.fits",
            "psf.fits",
            &["--out", "old", "--overwrite", "--niter", "10"],
        ),
    );
    assert_ok(&o);
    assert_ne!(std::fs::read(f.path("old-residual.fits")).unwrap(), b"keep");
}
