//! FITS writer/reader: round trips, file structure, foreign images and rejections.

mod common;

use std::fs;
use std::path::Path;

use aperture_imaging::coords::RaDec;
use aperture_pipeline::FormatError;
use aperture_pipeline::formats::fits::{
    Bitpix, Card, CardValue, FitsWriteOptions, RestoringBeam, encode_fits_image, read_fits_image,
    write_fits_image,
};

fn opts(bitpix: Bitpix) -> FitsWriteOptions {
    FitsWriteOptions {
        bitpix,
        bunit: "JY/BEAM".into(),
        object: Some("test field".into()),
        telescope: Some("SKA-LOW".into()),
        date: Some("2025-01-02T03:04:05".into()),
        beam: Some(RestoringBeam {
            bmaj_deg: 0.01,
            bmin_deg: 0.005,
            bpa_deg: -12.5,
        }),
        extra: vec![
            Card::new("EPSILON", 1e-5, "gridder accuracy"),
            Card::new("NVIS", 123_456_i64, ""),
            Card::new("WEIGHTNG", "robust 0.5", ""),
            Card::new("WSTACK", true, "w-stacking used"),
            Card::history(&"a long history line ".repeat(6)),
        ],
    }
}

/// Builds a FITS file from card texts (each padded to 80) and raw big-endian data.
fn raw_fits(cards: &[String], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cards {
        out.extend_from_slice(format!("{c:<80}").as_bytes());
    }
    out.extend_from_slice(format!("{:<80}", "END").as_bytes());
    out.resize(out.len().div_ceil(2880) * 2880, b' ');
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(2880) * 2880, 0);
    out
}

/// Cards of a valid 2-D 16×16 image with BITPIX 16; `replace` swaps cards by keyword.
fn foreign_cards(replace: Replacements) -> Vec<String> {
    let base = [
        "SIMPLE  =                    T",
        "BITPIX  =                   16",
        "NAXIS   =                    2",
        "NAXIS1  =                   16",
        "NAXIS2  =                   16",
        "BSCALE  =                  0.5",
        "BZERO   =                 10.0",
        "CTYPE1  = 'RA---SIN'",
        "CRVAL1  =   2.0000000000000D+01",
        "CDELT1  =  -1.0000000000000D-03",
        "CRPIX1  =                  9.0",
        "CTYPE2  = 'DEC--SIN'",
        "CRVAL2  =                -45.0",
        "CDELT2  =                0.001",
        "CRPIX2  =                    9",
    ];
    base.iter()
        .map(|c| {
            let kw = c[..8].trim_end();
            match replace.iter().find(|(k, _)| *k == kw) {
                Some((_, new)) => new.to_string(),
                None => c.to_string(),
            }
        })
        .collect()
}

/// (keyword, replacement card) pairs for [`foreign_cards`].
type Replacements<'a> = &'a [(&'a str, &'a str)];

fn i16_pixels(n: usize) -> Vec<u8> {
    (0..n * n)
        .flat_map(|i| (i as i16 - 100).to_be_bytes())
        .collect()
}

fn read_err(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    let e = read_fits_image(&p).unwrap_err().to_string();
    assert!(e.contains(name), "error does not name the file: {e}");
    e
}

/// The in-memory encoder (products bound for an object store) gives the file's bytes,
/// and refuses what the writer refuses.
#[test]
fn encoding_in_memory_gives_the_written_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let img = common::image(common::geometry(15.0, -30.5));
    for bitpix in [Bitpix::F32, Bitpix::F64] {
        let path = dir.path().join("img.fits");
        write_fits_image(&path, &img, &opts(bitpix)).unwrap();
        let bytes = encode_fits_image(&img, &opts(bitpix)).unwrap();
        assert_eq!(bytes, fs::read(&path).unwrap(), "{bitpix:?}");
        assert_eq!(bytes.len() % 2880, 0);
    }
    let mut bad = img.clone();
    bad.data_yx[[3, 4]] = f64::NAN;
    let err = encode_fits_image(&bad, &opts(Bitpix::F64)).unwrap_err();
    assert!(err.to_string().contains("x=4, y=3"), "{err}");
}

#[test]
fn f64_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.fits");
    // 15° is a value f64::to_degrees does not recover from radians.
    let img = common::image(common::geometry(15.0, -30.5));
    write_fits_image(&path, &img, &opts(Bitpix::F64)).unwrap();
    let (back, header) = read_fits_image(&path).unwrap();
    assert!(
        back.data_yx
            .iter()
            .zip(img.data_yx.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    // The angles are written in degrees that convert back to the same radians.
    assert_eq!(back.geom, img.geom);
    assert_eq!(header.get_f64("CRVAL1"), Some(15.0));
    assert_eq!(header.get_f64("CRVAL2"), Some(-30.5));
    assert_eq!(header.get_f64("CDELT1"), Some(-30.0 / 3600.0));
    assert_eq!(header.get_f64("CDELT2"), Some(30.0 / 3600.0));

    assert_eq!(header.bunit(), Some("JY/BEAM"));
    assert_eq!(header.beam(), opts(Bitpix::F64).beam);
    assert_eq!(header.get("EPSILON"), Some(&CardValue::Float(1e-5)));
    assert_eq!(header.get_i64("NVIS"), Some(123_456));
    assert_eq!(header.get_str("WEIGHTNG"), Some("robust 0.5"));
    assert_eq!(header.get_bool("WSTACK"), Some(true));
    assert_eq!(header.get_str("ORIGIN"), Some("aperture"));
    assert_eq!(
        header.history().collect::<Vec<_>>().join(" "),
        "a long history line ".repeat(6).trim_end()
    );
}

#[test]
fn f32_round_trip_to_single_precision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.fits");
    let img = common::image(common::geometry(10.0, 20.0));
    write_fits_image(&path, &img, &FitsWriteOptions::default()).unwrap();
    let (back, header) = read_fits_image(&path).unwrap();
    assert_eq!(header.get_i64("BITPIX"), Some(-32));
    for (a, b) in back.data_yx.iter().zip(img.data_yx.iter()) {
        assert_eq!(*a, f64::from(*b as f32));
    }
}

#[test]
fn file_structure_follows_the_standard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.fits");
    let img = common::image(common::geometry(150.1, -30.5));
    write_fits_image(&path, &img, &opts(Bitpix::F32)).unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() % 2880, 0);
    let end = bytes
        .chunks(80)
        .position(|c| c.starts_with(b"END     "))
        .expect("END card");
    let header_blocks = (end * 80).div_ceil(2880).max(1);
    let header_len = header_blocks * 2880;
    assert!(bytes[(end + 1) * 80..header_len].iter().all(|&b| b == b' '));
    assert!(
        bytes[..header_len]
            .iter()
            .all(|b| (0x20..=0x7e).contains(b))
    );
    // Data: 64 × 48 f32, then zero padding.
    let data_len: usize = 64 * 48 * 4;
    assert_eq!(bytes.len(), header_len + data_len.div_ceil(2880) * 2880);
    assert!(bytes[header_len + data_len..].iter().all(|&b| b == 0));
    // First pixel is (x=0, y=0), second is (x=1, y=0): axis 1 varies fastest.
    let px = |i: usize| {
        f32::from_be_bytes(
            bytes[header_len + 4 * i..header_len + 4 * i + 4]
                .try_into()
                .unwrap(),
        )
    };
    assert_eq!(px(0), img.data_yx[[0, 0]] as f32);
    assert_eq!(px(1), img.data_yx[[0, 1]] as f32);
    assert_eq!(px(64), img.data_yx[[1, 0]] as f32);

    let card = |kw: &str| {
        let c = bytes[..header_len]
            .chunks(80)
            .find(|c| c[..8] == *format!("{kw:<8}").as_bytes())
            .unwrap_or_else(|| panic!("{kw} missing"));
        String::from_utf8(c.to_vec()).unwrap()
    };
    assert!(card("SIMPLE").starts_with("SIMPLE  =                    T"));
    assert!(card("BITPIX").starts_with("BITPIX  =                  -32"));
    assert!(card("NAXIS").starts_with("NAXIS   =                    4"));
    assert!(card("CTYPE1").starts_with("CTYPE1  = 'RA---SIN'"));
    assert!(card("CTYPE2").starts_with("CTYPE2  = 'DEC--SIN'"));
    assert!(card("CRPIX1").starts_with("CRPIX1  =                 33.0"));
    assert!(card("CRPIX2").starts_with("CRPIX2  =                 25.0"));
    assert!(card("CTYPE3").starts_with("CTYPE3  = 'FREQ    '"));
    assert!(card("CTYPE4").starts_with("CTYPE4  = 'STOKES  '"));
    assert!(card("RADESYS").starts_with("RADESYS = 'ICRS    '"));
}

#[test]
fn reads_foreign_2d_integer_image_with_scaling() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("foreign.fits");
    fs::write(&p, raw_fits(&foreign_cards(&[]), &i16_pixels(16))).unwrap();
    let (img, _) = read_fits_image(&p).unwrap();
    assert_eq!(img.data_yx.dim(), (16, 16));
    assert_eq!(img.data_yx[[0, 0]], 10.0 + 0.5 * -100.0);
    assert_eq!(img.data_yx[[1, 3]], 10.0 + 0.5 * (19.0 - 100.0));
    assert_eq!(img.geom.cell, 1e-3_f64.to_radians());
    assert_eq!((img.geom.freq_hz, img.geom.bandwidth_hz), (0.0, 0.0));
    assert_eq!(img.geom.phase_centre, RaDec::from_degrees(20.0, -45.0));
}

#[test]
fn reads_every_integer_bitpix() {
    let dir = tempfile::tempdir().unwrap();
    // Raw value v at file index i is i − 100 (8-bit: i, unsigned); stored as BZERO + 0.5 v.
    type Encode = fn(i64) -> Vec<u8>;
    let cases: [(&str, Encode, i64); 3] = [
        ("8", |v| vec![v as u8], 0),
        ("32", |v| (v as i32).to_be_bytes().to_vec(), -100),
        ("64", |v| v.to_be_bytes().to_vec(), -100),
    ];
    for (bitpix, encode, offset) in cases {
        let card = format!("BITPIX  = {bitpix:>20}");
        let cards = foreign_cards(&[("BITPIX", &card)]);
        let data: Vec<u8> = (0..256).flat_map(|i| encode(i + offset)).collect();
        let p = dir.path().join(format!("b{bitpix}.fits"));
        fs::write(&p, raw_fits(&cards, &data)).unwrap();
        let (img, _) = read_fits_image(&p).unwrap();
        for ((y, x), &v) in img.data_yx.indexed_iter() {
            let raw = (y * 16 + x) as i64 + offset;
            assert_eq!(v, 10.0 + 0.5 * raw as f64, "BITPIX {bitpix} at ({x}, {y})");
        }
    }
}

#[test]
fn zero_bandwidth_is_written_as_one_hertz() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.fits");
    let mut geom = common::geometry(10.0, 20.0);
    geom.bandwidth_hz = 0.0;
    write_fits_image(&path, &common::image(geom), &FitsWriteOptions::default()).unwrap();
    let (back, header) = read_fits_image(&path).unwrap();
    assert_eq!(header.get_f64("CDELT3"), Some(1.0));
    assert_eq!(back.geom.bandwidth_hz, 1.0);
}

#[test]
fn writing_replaces_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.fits");
    fs::write(&path, b"previous contents").unwrap();
    let img = common::image(common::geometry(10.0, 20.0));
    write_fits_image(&path, &img, &FitsWriteOptions::default()).unwrap();
    let (back, _) = read_fits_image(&path).unwrap();
    assert_eq!(back.geom, img.geom);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn reads_3d_image_with_frequency_in_mhz() {
    let dir = tempfile::tempdir().unwrap();
    let mut cards = foreign_cards(&[("NAXIS", "NAXIS   =                    3")]);
    cards.insert(5, "NAXIS3  =                    1".into());
    cards.extend(
        [
            "CTYPE3  = 'FREQ'",
            "CRVAL3  =                150.0",
            "CDELT3  =                  2.0",
            "CRPIX3  =                  1.0",
            "CUNIT3  = 'MHz'",
        ]
        .map(String::from),
    );
    let p = dir.path().join("cube.fits");
    fs::write(&p, raw_fits(&cards, &i16_pixels(16))).unwrap();
    let (img, _) = read_fits_image(&p).unwrap();
    assert_eq!((img.geom.freq_hz, img.geom.bandwidth_hz), (150e6, 2e6));
}

#[test]
fn rejects_what_cannot_be_represented() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let px = i16_pixels(16);
    let cases: &[(&str, Replacements, &str)] = &[
        (
            "tan.fits",
            &[("CTYPE1", "CTYPE1  = 'RA---TAN'")],
            "projection 'TAN'",
        ),
        (
            "glon.fits",
            &[("CTYPE1", "CTYPE1  = 'GLON-SIN'")],
            "CTYPE1 = 'GLON-SIN'",
        ),
        (
            "rect.fits",
            &[("CDELT2", "CDELT2  =               0.0011")],
            "non-square pixels",
        ),
        (
            "flip.fits",
            &[("CDELT1", "CDELT1  =                0.001")],
            "CDELT1 < 0",
        ),
        (
            "crpix.fits",
            &[("CRPIX1", "CRPIX1  =                  8.5")],
            "NAXIS1/2 + 1 = 9",
        ),
        (
            "odd.fits",
            &[
                ("NAXIS1", "NAXIS1  =                   17"),
                ("CRPIX1", "CRPIX1  =                  9.0"),
            ],
            "must be even",
        ),
        (
            "tan2.fits",
            &[("CTYPE2", "CTYPE2  = 'DEC--TAN'")],
            "projection 'TAN'",
        ),
    ];
    for (name, replace, want) in cases {
        let e = read_err(d, name, &raw_fits(&foreign_cards(replace), &px));
        assert!(e.contains(want), "{name}: {e}");
    }
    // A third axis: two planes, or one plane of Stokes Q.
    let with_axis3 = |naxis3: &str, cards: &[&str]| {
        let mut c = foreign_cards(&[("NAXIS", "NAXIS   =                    3")]);
        c.insert(5, format!("NAXIS3  = {naxis3:>20}"));
        c.extend(cards.iter().map(|s| s.to_string()));
        c
    };
    let cube = with_axis3("2", &["CTYPE3  = 'FREQ'", "CRVAL3  =                1.0E8"]);
    let two_planes: Vec<u8> = [px.clone(), px.clone()].concat();
    let e = read_err(d, "cube.fits", &raw_fits(&cube, &two_planes));
    assert!(e.contains("NAXIS3 = 2") && e.contains("length 1"), "{e}");
    let q = with_axis3(
        "1",
        &["CTYPE3  = 'STOKES'", "CRVAL3  =                  2.0"],
    );
    let e = read_err(d, "stokes_q.fits", &raw_fits(&q, &px));
    assert!(e.contains("Stokes value 2"), "{e}");
    let mut rot = foreign_cards(&[]);
    rot.push("PC1_2   =                  0.1".into());
    assert!(read_err(d, "rot.fits", &raw_fits(&rot, &px)).contains("PC1_2"));
    let mut blank = foreign_cards(&[]);
    blank.push("BLANK   =                  -99".into());
    let e = read_err(d, "blank.fits", &raw_fits(&blank, &px));
    assert!(e.contains("pixel (x=1, y=0)") && e.contains("BLANK"), "{e}");
}

#[test]
fn rejects_nan_pixels_naming_the_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let cards = foreign_cards(&[
        ("BITPIX", "BITPIX  =                  -32"),
        ("BSCALE", ""),
        ("BZERO", ""),
    ]);
    let mut data: Vec<u8> = (0..256).flat_map(|i| (i as f32).to_be_bytes()).collect();
    let at = 16 * 5 + 3;
    data[4 * at..4 * at + 4].copy_from_slice(&f32::NAN.to_be_bytes());
    let e = read_err(dir.path(), "nan.fits", &raw_fits(&cards, &data));
    assert!(
        e.contains("pixel (x=3, y=5)") && e.contains("index 83"),
        "{e}"
    );
}

#[test]
fn rejects_truncated_and_non_fits_files() {
    let dir = tempfile::tempdir().unwrap();
    let full = raw_fits(&foreign_cards(&[]), &i16_pixels(16));
    let e = read_err(dir.path(), "short.fits", &full[..2880 + 100]);
    assert!(e.contains("truncated"), "{e}");
    let e = read_err(dir.path(), "nohdr.fits", &full[..1000]);
    assert!(e.contains("not a FITS file"), "{e}");
    let e = read_err(dir.path(), "text.fits", &[b'x'; 2880]);
    assert!(e.contains("not a FITS file"), "{e}");
    let mut no_end = raw_fits(&foreign_cards(&[]), &[]);
    no_end.truncate(2880);
    let end_at = no_end
        .chunks(80)
        .position(|c| c.starts_with(b"END"))
        .unwrap()
        * 80;
    no_end[end_at..end_at + 3].copy_from_slice(b"   ");
    let e = read_err(dir.path(), "noend.fits", &no_end);
    assert!(e.contains("truncated"), "{e}");
    let missing = dir.path().join("absent.fits");
    assert!(matches!(
        read_fits_image(&missing),
        Err(FormatError::Missing { .. })
    ));
}

#[test]
fn failed_writes_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.fits");
    let mut img = common::image(common::geometry(1.0, 2.0));
    img.data_yx[[3, 4]] = f64::NAN;
    let e = write_fits_image(&path, &img, &FitsWriteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("pixel (x=4, y=3)"), "{e}");

    let img = common::image(common::geometry(1.0, 2.0));
    let mut o = FitsWriteOptions::default();
    o.extra.push(Card::new("CRPIX1", 1.0, ""));
    let e = write_fits_image(&path, &img, &o).unwrap_err();
    assert!(e.to_string().contains("CRPIX1"), "{e}");

    let mut o = FitsWriteOptions::default();
    o.extra.push(Card::new("LONGSTR", "x".repeat(80), ""));
    assert!(
        write_fits_image(&path, &img, &o)
            .unwrap_err()
            .to_string()
            .contains("LONGSTR")
    );

    let nested = dir.path().join("no/such/dir/img.fits");
    let e = write_fits_image(&nested, &img, &FitsWriteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("img.fits"), "{e}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}
