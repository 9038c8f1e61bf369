//! Helpers for the command-line tests: running the built `aperture` binary, small
//! simulated bundles, raw `.npy` writing and checks on error output.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `aperture` with `args` (quietly: no progress lines).
pub fn aperture<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    aperture_in(Path::new("."), args)
}

/// Runs `aperture` with `args` in directory `dir` (quietly).
pub fn aperture_in<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_aperture"))
        .current_dir(dir)
        .arg("--quiet")
        .args(args)
        .output()
        .expect("running the aperture binary")
}

/// Runs `aperture invert BUNDLE EXTRA... --out OUT`.
pub fn invert(bundle: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["invert", arg(bundle)];
    args.extend(extra);
    args.extend(["--out", arg(out)]);
    aperture(args)
}

/// A path as a command-line argument (temporary paths are UTF-8).
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that the command succeeded, showing its output otherwise.
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// Asserts exit code 2 and a single `error: …` line on stderr containing every needle.
pub fn assert_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit code 2; stderr:\n{err}\nstdout:\n{}",
        stdout(o)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "stderr does not name {n:?}: {err}");
    }
    assert!(
        o.stdout.is_empty(),
        "no results expected on stdout: {}",
        stdout(o)
    );
}

/// Every path under `dir` (recursively), relative to it.
pub fn listing(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// The common arguments of a small, fast LOW simulation: rmax 300 m (94 stations),
/// 2 windows x 2 channels over 100-150 MHz, 3 times (52 452 visibilities).
pub const SMALL: [&str; 10] = [
    "--telescope",
    "low",
    "--rmax",
    "300",
    "--windows",
    "2",
    "--channels-per-window",
    "2",
    "--times",
    "3",
];

/// Simulates the small observation into `out` with `extra` arguments.
pub fn simulate(out: &Path, extra: &[&str]) {
    let mut args = vec!["simulate"];
    args.extend(SMALL);
    args.extend(extra);
    args.extend(["--out", arg(out)]);
    assert_ok(&aperture(args));
}

/// Copies a bundle directory (flat) to `to`.
pub fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// Writes a version-1.0 `.npy` file with dtype `descr` (e.g. `<f8`), C order.
pub fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let shape_s = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// Little-endian bytes of f64 values.
pub fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// True when `python3` can import `modules`; otherwise prints why a check is skipped.
pub fn python_has(modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping the astropy check: python3 with {modules} not available");
    }
    ok
}
