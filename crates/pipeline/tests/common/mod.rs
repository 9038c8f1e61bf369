//! Helpers shared by the integration tests: test images and blocks, and running Python.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::vis::VisBlock;
use ndarray::Array2;
use num_complex::Complex64;

/// A non-square geometry, so that a transposition cannot go unnoticed.
pub fn geometry(ra_deg: f64, dec_deg: f64) -> ImageGeometry {
    let g = ImageGeometry {
        npix_x: 64,
        npix_y: 48,
        cell: (30.0_f64 / 3600.0).to_radians(),
        phase_centre: RaDec::from_degrees(ra_deg, dec_deg),
        freq_hz: 1.4e9,
        bandwidth_hz: 2.5e7,
    };
    g.validate().unwrap();
    g
}

/// An image whose every pixel differs and is not exactly representable in f32.
pub fn image(geom: ImageGeometry) -> Image {
    let data_yx = Array2::from_shape_fn((geom.npix_y, geom.npix_x), |(y, x)| {
        (x as f64 * 0.1 + 1.0 / 3.0) - y as f64 * 1.0e-3 * std::f64::consts::PI
    });
    Image { geom, data_yx }
}

/// A small visibility block with varied values in every array.
pub fn vis_block(nrow: usize, nchan: usize) -> VisBlock {
    VisBlock {
        uvw_r: (0..nrow)
            .map(|r| UvwMetres::new(r as f64 * 1.5 + 0.1, -(r as f64) / 3.0, 0.01 * r as f64))
            .collect(),
        freq_c: (0..nchan).map(|c| 1.0e8 + c as f64 * 1.0e6).collect(),
        vis_rc: Array2::from_shape_fn((nrow, nchan), |(r, c)| {
            Complex64::new(r as f64 / 7.0 + c as f64, -(c as f64) / 3.0)
        }),
        weight_rc: Array2::from_shape_fn((nrow, nchan), |(r, c)| 1.0 + (r * c) as f64 / 9.0),
        flag_rc: Array2::from_shape_fn((nrow, nchan), |(r, c)| (r + c) % 3 == 0),
        ant1_r: (0..nrow).map(|r| (r % 5) as u32).collect(),
        ant2_r: (0..nrow).map(|r| (r % 5 + 1) as u32).collect(),
        time_r: (0..nrow).map(|r| 5.0e9 + r as f64 * 0.9).collect(),
        phase_centre: RaDec::from_degrees(201.365, -43.019),
    }
}

/// True when `python3` can import every module in `modules`; otherwise prints why the
/// calling test is skipped.
pub fn python_has(modules: &[&str]) -> bool {
    let imports = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = Command::new("python3")
        .args(["-c", &imports])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: {} not installed", modules.join(", "));
    }
    ok
}

/// Runs `python3 -c script args…`, asserting success; returns stdout.
pub fn run_python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python output is UTF-8")
}
