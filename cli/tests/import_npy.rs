//! `aperture import npy`: a simulated bundle imported as a Zarr dataset reads back equal
//! to the bundle, window by window (single precision bit for bit through complex64,
//! double through complex128); bad input is one error line naming the file, URL or
//! option, and leaves nothing behind.

mod common;

use std::path::Path;

use aperture_imaging::vis::VisBlock;
use aperture_pipeline::formats::bundle::read_bundle_full;
use aperture_pipeline::formats::zarr_vis::{open_dataset, window_block};
use aperture_pipeline::storage::Store;
use common::{aperture, arg, assert_error, assert_ok, simulate, stdout};

/// Every window of the dataset at `url`, and its metadata's window count.
fn read_windows(url: &str) -> Vec<VisBlock> {
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
        out
    })
}

/// The bundle in `dir`, split like the dataset's windows of `cpw` channels.
fn bundle_windows(dir: &Path, cpw: usize) -> Vec<VisBlock> {
    let b = read_bundle_full(dir).unwrap().block;
    let windows = aperture_pipeline::formats::zarr_vis::WindowMeta::split(&b.freq_c, cpw).unwrap();
    windows
        .iter()
        .map(|w| window_block(&b, w).unwrap())
        .collect()
}

#[test]
fn a_simulated_bundle_imports_and_reads_back_equal() {
    let tmp = tempfile::tempdir().unwrap();
    // Single precision: complex64 + float32 in the bundle, the same in Zarr.
    let b32 = tmp.path().join("b32");
    simulate(&b32, &["--precision", "f32", "--noise", "0.5"]);
    let out = tmp.path().join("obs.zarr");
    let o = aperture(["import", "npy", arg(&b32), arg(&out)]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.contains("2 x 2 channels"), "{text}");
    assert!(text.contains("3 times x 4,371 baselines"), "{text}");
    assert!(text.contains("complex64"), "{text}");
    assert!(out.join("zarr.json").is_file());
    let got = read_windows(arg(&out));
    assert_eq!(got, bundle_windows(&b32, 2));

    // Double precision through a file:// URL, one channel per window.
    let b64 = tmp.path().join("b64");
    simulate(&b64, &["--noise", "0.5"]);
    let url = format!("file://{}", tmp.path().join("d.zarr").display());
    let o = aperture([
        "import",
        "npy",
        arg(&b64),
        &url,
        "--channels-per-window",
        "1",
    ]);
    assert_ok(&o);
    assert!(stdout(&o).contains("complex128"), "{}", stdout(&o));
    let got = read_windows(&url);
    assert_eq!(got.len(), 4);
    assert_eq!(got, bundle_windows(&b64, 1));
}

#[test]
fn bad_input_names_the_culprit_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    simulate(&b, &["--precision", "f32"]);
    let out = tmp.path().join("v.zarr");
    let import = |extra: &[&str]| {
        let mut args = vec!["import", "npy"];
        args.extend(extra);
        aperture(args)
    };

    // A missing bundle.
    let missing = tmp.path().join("nope");
    assert_error(
        &import(&[arg(&missing), arg(&out)]),
        &[arg(&missing), "does not exist"],
    );
    // An output that cannot be written: its parent is a file.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("v.zarr");
    assert_error(
        &import(&[arg(&b), arg(&bad)]),
        &[arg(&bad), "is not a directory"],
    );
    // A parent directory that does not exist.
    let nodir = tmp.path().join("no/such/v.zarr");
    assert_error(&import(&[arg(&b), arg(&nodir)]), &["does not exist"]);
    // An output inside the bundle.
    let inside = b.join("v.zarr");
    assert_error(&import(&[arg(&b), arg(&inside)]), &["input bundle"]);
    // Windows that do not divide the channels (4 = 2 windows x 2).
    assert_error(
        &import(&[arg(&b), arg(&out), "--channels-per-window", "3"]),
        &["--channels-per-window"],
    );
    assert!(!out.exists(), "a refused import wrote {}", out.display());

    // A dataset that exists is only replaced with --force.
    assert_ok(&import(&[arg(&b), arg(&out)]));
    assert_error(
        &import(&[arg(&b), arg(&out)]),
        &[arg(&out), "already exists", "--force"],
    );
    let o = import(&[arg(&b), arg(&out), "--force", "--channels-per-window", "1"]);
    assert_ok(&o);
    assert_eq!(read_windows(arg(&out)).len(), 4);
    // --force does not delete what is not a dataset.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"keep").unwrap();
    assert_error(
        &import(&[arg(&b), arg(&other)]),
        &["is not empty", "notes.txt"],
    );
    assert_error(
        &import(&[arg(&b), arg(&other), "--force"]),
        &["notes.txt", "not part of a visibility dataset"],
    );
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"keep");
    // A bundle whose rows cannot be placed: two rows with the same time and antennas.
    let dup = tmp.path().join("dup");
    common::copy_bundle(&b, &dup);
    let ant2 = aperture_pipeline::formats::bundle::read_bundle_full(&b)
        .unwrap()
        .block
        .ant2_r;
    let mut ant2: Vec<u32> = ant2;
    ant2[1] = ant2[0];
    let bytes: Vec<u8> = ant2
        .iter()
        .flat_map(|a| (*a as i32).to_le_bytes())
        .collect();
    common::write_npy(&dup.join("ant2.npy"), "<i4", &[ant2.len()], &bytes);
    let fresh = tmp.path().join("fresh.zarr");
    assert_error(
        &import(&[arg(&dup), arg(&fresh)]),
        &["row 1", "duplicates row 0"],
    );
    assert!(!fresh.exists());
}
