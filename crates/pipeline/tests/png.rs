//! PNG quick-looks: dimensions, north-up orientation, degenerate images, atomic output.

mod common;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use aperture_imaging::image::Image;
use aperture_pipeline::formats::png::{encode_png_quicklook, quicklook_path, write_png_quicklook};

/// Decodes an RGB PNG into (width, height, rows of pixels).
fn decode(path: &Path) -> (u32, u32, Vec<Vec<[u8; 3]>>) {
    let dec = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let rows = buf[..info.buffer_size()]
        .chunks(info.line_size)
        .map(|r| r.chunks(3).map(|p| [p[0], p[1], p[2]]).collect())
        .collect();
    (info.width, info.height, rows)
}

fn luma(p: [u8; 3]) -> u32 {
    2126 * u32::from(p[0]) + 7152 * u32::from(p[1]) + 722 * u32::from(p[2])
}

#[test]
fn bright_pixel_is_flipped_to_north_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.png");
    let mut img = Image::zeros(common::geometry(10.0, -20.0));
    let (x, y) = (5, 7);
    img.data_yx[[y, x]] = 1.0;
    write_png_quicklook(&path, &img).unwrap();
    let (w, h, rows) = decode(&path);
    assert_eq!((w, h), (64, 48));
    let (bx, by) = (0..48)
        .flat_map(|r| (0..64).map(move |c| (c, r)))
        .max_by_key(|&(c, r)| luma(rows[r][c]))
        .unwrap();
    assert_eq!((bx, by), (x, 48 - 1 - y));
    assert!(luma(rows[by][bx]) > luma(rows[0][0]));
}

#[test]
fn constant_and_noisy_images_render() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flat.png");
    let img = Image::zeros(common::geometry(10.0, -20.0));
    write_png_quicklook(&path, &img).unwrap();
    let (_, _, rows) = decode(&path);
    assert!(rows.iter().flatten().all(|p| *p == rows[0][0]));

    let mut img = common::image(common::geometry(10.0, -20.0));
    img.data_yx[[0, 0]] = f64::NAN;
    let path = dir.path().join("ramp.png");
    write_png_quicklook(&path, &img).unwrap();
    let (_, _, rows) = decode(&path);
    // The ramp rises with x: left dimmer than right.
    assert!(luma(rows[10][2]) < luma(rows[10][60]));
}

/// The in-memory encoder gives the bytes the file writer writes.
#[test]
fn encoding_in_memory_gives_the_written_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ramp.png");
    let img = common::image(common::geometry(10.0, -20.0));
    write_png_quicklook(&path, &img).unwrap();
    let bytes = encode_png_quicklook(&img, "products/ramp.png").unwrap();
    assert_eq!(bytes, std::fs::read(&path).unwrap());
}

#[test]
fn quicklook_path_replaces_extension() {
    assert_eq!(quicklook_path("out/dirty.fits"), Path::new("out/dirty.png"));
    assert_eq!(quicklook_path("image"), Path::new("image.png"));
}

#[test]
fn failed_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let img = Image::zeros(common::geometry(10.0, -20.0));
    let e = write_png_quicklook(dir.path().join("missing/x.png"), &img).unwrap_err();
    assert!(e.to_string().contains("x.png"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
