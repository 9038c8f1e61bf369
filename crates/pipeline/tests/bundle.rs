//! Numpy bundles: round trips, defaults for optional files, and an error naming the file
//! for every kind of bad input.

mod common;

use std::fs;
use std::path::Path;

use aperture_imaging::coords::RaDec;
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::FormatError;
use aperture_pipeline::formats::bundle::{
    BundleMeta, VisDtype, WriteBundleOptions, read_bundle, read_bundle_full, read_bundle_with_meta,
    write_bundle,
};
use ndarray::{Array1, Array2, ShapeBuilder};
use ndarray_npy::write_npy;
use num_complex::Complex32;

fn write(dir: &Path, block: &VisBlock, vis_dtype: VisDtype) {
    let opts = WriteBundleOptions {
        vis_dtype,
        overwrite: false,
    };
    write_bundle(dir, block, &BundleMeta::for_block(block), opts).unwrap();
}

#[test]
fn complex128_round_trip_is_exact() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("b");
    let block = common::vis_block(11, 4);
    write(&dir, &block, VisDtype::Complex128);
    let back = read_bundle_full(&dir).unwrap();
    assert_eq!(back.vis_dtype, VisDtype::Complex128);
    // Everything, the phase centre included (meta.json holds degrees), comes back exactly.
    assert_eq!(back.block, block);
    // Only the bundle remains: no temporary directory.
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
}

#[test]
fn complex64_round_trip_to_single_precision() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("b");
    let block = common::vis_block(6, 3);
    write(&dir, &block, VisDtype::Complex64);
    let full = read_bundle_full(&dir).unwrap();
    assert_eq!(full.vis_dtype, VisDtype::Complex64);
    let back = full.block;
    for (a, b) in back.vis_rc.iter().zip(block.vis_rc.iter()) {
        assert_eq!(a.re, f64::from(b.re as f32));
        assert_eq!(a.im, f64::from(b.im as f32));
    }
    for (a, b) in back.weight_rc.iter().zip(block.weight_rc.iter()) {
        assert_eq!(*a, f64::from(*b as f32));
    }
    assert_eq!(
        (back.uvw_r, back.freq_c, back.flag_rc),
        (block.uvw_r, block.freq_c, block.flag_rc)
    );
}

#[test]
fn meta_for_block_stores_the_degrees_the_centre_was_made_from() {
    let mut block = common::vis_block(3, 2);
    let pc = BundleMeta::for_block(&block).phase_centre;
    assert_eq!((pc.ra_deg, pc.dec_deg), (201.365, -43.019));
    // 15° → radians → degrees with f64::to_degrees gives 14.999999999999998.
    block.phase_centre = RaDec::from_degrees(15.0, 0.1);
    let meta = BundleMeta::for_block(&block);
    assert_eq!(
        (meta.phase_centre.ra_deg, meta.phase_centre.dec_deg),
        (15.0, 0.1)
    );
    assert_eq!(meta.phase_centre(), block.phase_centre);
}

#[test]
fn optional_files_default_and_meta_extras_survive() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("b");
    let block = common::vis_block(5, 2);
    let mut meta = BundleMeta::for_block(&block);
    meta.telescope = Some("MID".into());
    meta.station_diameter_m = Some(15.0);
    meta.extra.insert("obs_id".into(), "X1".into());
    write_bundle(&dir, &block, &meta, WriteBundleOptions::default()).unwrap();
    for f in ["weight.npy", "flag.npy", "ant1.npy", "ant2.npy", "time.npy"] {
        fs::remove_file(dir.join(f)).unwrap();
    }
    let (back, meta_back) = read_bundle_with_meta(&dir).unwrap();
    assert_eq!(meta_back, meta);
    assert!(back.weight_rc.iter().all(|&w| w == 1.0));
    assert!(back.flag_rc.iter().all(|&f| !f));
    assert!(back.ant1_r.iter().chain(&back.ant2_r).all(|&a| a == 0));
    assert!(back.time_r.iter().all(|&t| t == 0.0));
}

#[test]
fn fortran_order_and_other_integer_types_are_read() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("b");
    let block = common::vis_block(7, 3);
    write(&dir, &block, VisDtype::Complex128);
    let uvw_f = Array2::from_shape_fn((7, 3).f(), |(r, k)| {
        let p = block.uvw_r[r];
        [p.u, p.v, p.w][k]
    });
    write_npy(dir.join("uvw.npy"), &uvw_f).unwrap();
    let ant1: Array1<u64> = block.ant1_r.iter().map(|&a| u64::from(a)).collect();
    write_npy(dir.join("ant1.npy"), &ant1).unwrap();
    let back = read_bundle(&dir).unwrap();
    assert_eq!(back.uvw_r, block.uvw_r);
    assert_eq!(back.ant1_r, block.ant1_r);
}

/// Writes a valid bundle, lets `spoil` damage it, and returns the read error.
fn spoiled(spoil: impl FnOnce(&Path)) -> String {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("b");
    write(&dir, &common::vis_block(4, 3), VisDtype::Complex128);
    spoil(&dir);
    read_bundle(&dir).unwrap_err().to_string()
}

fn assert_mentions(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "{e:?} does not mention {p:?}");
    }
}

#[test]
fn missing_files_are_named() {
    for f in ["uvw.npy", "freq.npy", "vis.npy", "meta.json"] {
        let e = spoiled(|d| fs::remove_file(d.join(f)).unwrap());
        assert_mentions(&e, &[f, "does not exist"]);
    }
    let e = read_bundle("/nonexistent/bundle").unwrap_err();
    assert!(matches!(e, FormatError::Missing { .. }), "{e}");
}

#[test]
fn wrong_dtypes_say_expected_and_got() {
    let e = spoiled(|d| write_npy(d.join("vis.npy"), &Array2::<f64>::zeros((4, 3))).unwrap());
    assert_mentions(&e, &["vis.npy", "expected complex64", "got '<f8'"]);
    let e = spoiled(|d| write_npy(d.join("uvw.npy"), &Array2::<f32>::zeros((4, 3))).unwrap());
    assert_mentions(&e, &["uvw.npy", "float64", "'<f4'"]);
    let e = spoiled(|d| write_npy(d.join("flag.npy"), &Array2::<u8>::zeros((4, 3))).unwrap());
    assert_mentions(&e, &["flag.npy", "bool", "'|u1'"]);
    let e = spoiled(|d| write_npy(d.join("ant2.npy"), &Array1::<f64>::zeros(4)).unwrap());
    assert_mentions(&e, &["ant2.npy", "int32"]);
    let e = spoiled(|d| write_npy(d.join("weight.npy"), &Array2::<i32>::zeros((4, 3))).unwrap());
    assert_mentions(&e, &["weight.npy", "float32"]);
}

#[test]
fn shape_disagreements_name_both_files() {
    let e = spoiled(|d| write_npy(d.join("vis.npy"), &Array2::<Complex32>::zeros((5, 3))).unwrap());
    assert_mentions(&e, &["vis.npy has shape [5, 3] but", "uvw.npy has 4 rows"]);
    let e = spoiled(|d| write_npy(d.join("weight.npy"), &Array2::<f32>::zeros((4, 2))).unwrap());
    assert_mentions(
        &e,
        &["weight.npy has shape [4, 2] but", "freq.npy has 3 channels"],
    );
    let e = spoiled(|d| write_npy(d.join("time.npy"), &Array1::<f64>::zeros(3)).unwrap());
    assert_mentions(&e, &["time.npy has shape [3] but", "uvw.npy has 4 rows"]);
    let e = spoiled(|d| write_npy(d.join("uvw.npy"), &Array2::<f64>::zeros((4, 2))).unwrap());
    assert_mentions(&e, &["uvw.npy", "expected [nrow, 3], got [4, 2]"]);
    let e = spoiled(|d| write_npy(d.join("vis.npy"), &Array1::<Complex32>::zeros(4)).unwrap());
    assert_mentions(&e, &["vis.npy", "wrong shape", "got [4]"]);
}

#[test]
fn bad_values_name_file_and_position() {
    let e = spoiled(|d| {
        let mut v = Array2::<Complex32>::zeros((4, 3));
        v[[2, 1]].im = f32::NAN;
        write_npy(d.join("vis.npy"), &v).unwrap();
    });
    assert_mentions(&e, &["vis.npy", "row 2, channel 1", "non-finite"]);
    let e = spoiled(|d| {
        let mut v = Array2::<f64>::zeros((4, 3));
        v[[3, 0]] = f64::INFINITY;
        write_npy(d.join("uvw.npy"), &v).unwrap();
    });
    assert_mentions(&e, &["uvw.npy", "row 3"]);
    let e = spoiled(|d| {
        let mut w = Array2::<f32>::ones((4, 3));
        w[[1, 2]] = -0.5;
        write_npy(d.join("weight.npy"), &w).unwrap();
    });
    assert_mentions(&e, &["weight.npy", "row 1, channel 2", "negative"]);
    let e = spoiled(|d| write_npy(d.join("freq.npy"), &Array1::from(vec![1e8, 0.0, 2e8])).unwrap());
    assert_mentions(&e, &["freq.npy", "channel 1", "positive"]);
    let e =
        spoiled(|d| write_npy(d.join("ant1.npy"), &Array1::from(vec![0_i64, 1, -2, 3])).unwrap());
    assert_mentions(&e, &["ant1.npy", "row 2", "-2"]);
}

#[test]
fn malformed_files_are_named() {
    let e = spoiled(|d| fs::write(d.join("freq.npy"), b"not numpy").unwrap());
    assert_mentions(&e, &["freq.npy", "not a valid .npy file"]);
    let e = spoiled(|d| {
        let p = d.join("vis.npy");
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
    });
    assert_mentions(&e, &["vis.npy", "truncated"]);
    let e =
        spoiled(|d| fs::write(d.join("meta.json"), r#"{"phase_centre": {"ra_deg": 1}}"#).unwrap());
    assert_mentions(&e, &["meta.json", "phase_centre.dec_deg", "missing"]);
    let e = spoiled(|d| fs::write(d.join("meta.json"), "{oops").unwrap());
    assert_mentions(&e, &["meta.json", "not valid JSON"]);
}

#[test]
fn existing_output_needs_overwrite() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("b");
    let block = common::vis_block(3, 2);
    write(&dir, &block, VisDtype::Complex128);
    let meta = BundleMeta::for_block(&block);
    let e = write_bundle(&dir, &block, &meta, WriteBundleOptions::default()).unwrap_err();
    assert!(matches!(e, FormatError::Exists { .. }), "{e}");
    let other = common::vis_block(5, 2);
    let opts = WriteBundleOptions {
        vis_dtype: VisDtype::Complex64,
        overwrite: true,
    };
    write_bundle(&dir, &other, &BundleMeta::for_block(&other), opts).unwrap();
    assert_eq!(read_bundle(&dir).unwrap().n_rows(), 5);
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
}

#[test]
fn invalid_blocks_and_meta_are_refused_before_writing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("b");
    let mut block = common::vis_block(3, 2);
    let meta = BundleMeta::for_block(&block);
    block.freq_c[1] = -1.0;
    let e = write_bundle(&dir, &block, &meta, WriteBundleOptions::default()).unwrap_err();
    assert_mentions(&e.to_string(), &["bundle", "freq"]);
    let block = common::vis_block(3, 2);
    let mut meta = BundleMeta::for_block(&block);
    meta.phase_centre.dec_deg += 1.0;
    let e = write_bundle(&dir, &block, &meta, WriteBundleOptions::default()).unwrap_err();
    assert_mentions(&e.to_string(), &["phase_centre"]);
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
}
