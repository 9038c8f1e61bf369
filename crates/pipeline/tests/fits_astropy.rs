//! Cross-check with astropy: the written FITS verifies without warnings, astropy's WCS
//! puts sky positions on the same pixels as `ImageGeometry::radec_to_pixel`, and
//! `getdata` returns our array as data[0, 0, y, x]. Skipped if astropy is missing.

mod common;

use aperture_imaging::coords::RaDec;
use aperture_pipeline::formats::fits::{
    Bitpix, Card, FitsWriteOptions, RestoringBeam, write_fits_image,
};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
import json, sys, warnings
warnings.simplefilter("error")
import numpy as np
import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

cfg = json.load(open(sys.argv[1]))
with fits.open(cfg["path"]) as hdul:
    hdul.verify("exception")
    header = hdul[0].header
data = fits.getdata(cfg["path"])
assert data.shape == tuple(cfg["shape"]), (data.shape, cfg["shape"])
expected = np.array(cfg["data"], dtype=np.float64)
assert np.array_equal(data[0, 0], expected), "pixel values or orientation differ"
for key, value in cfg["cards"].items():
    assert header[key] == value and type(header[key]) is type(value), (key, header[key], value)
wcs = WCS(header).celestial
pixels = []
for ra, dec in cfg["sky"]:
    x, y = wcs.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg, frame="icrs"))
    pixels.append([float(x), float(y)])
print(json.dumps({"pixels": pixels}))
"#;

#[test]
fn astropy_agrees_on_wcs_and_data() {
    if !common::python_has(&["astropy"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A southern field, one across RA = 0, and one near the pole.
    for (i, (ra0, dec0)) in [(150.1, -30.5), (359.95, 12.0), (45.0, 85.0)]
        .into_iter()
        .enumerate()
    {
        let img = common::image(common::geometry(ra0, dec0));
        let path = dir.path().join(format!("img{i}.fits"));
        let opts = FitsWriteOptions {
            bitpix: Bitpix::F64,
            bunit: "JY/BEAM".into(),
            object: Some("field".into()),
            telescope: Some("SKA-LOW".into()),
            date: Some("2025-01-02T03:04:05.5".into()),
            beam: Some(RestoringBeam {
                bmaj_deg: 0.02,
                bmin_deg: 0.01,
                bpa_deg: 30.0,
            }),
            extra: vec![
                Card::new("EPSILON", 1e-5, "gridder accuracy"),
                Card::new("NVIS", 987_654_321_i64, ""),
                Card::new("WEIGHTNG", "briggs 'robust' 0", ""),
                Card::new("WSTACK", false, ""),
                Card::history("written by the aperture test suite"),
            ],
        };
        write_fits_image(&path, &img, &opts).unwrap();

        let g = img.geom;
        let sky: Vec<RaDec> = [(0.0, 0.0), (0.2, -0.1), (-0.15, 0.12), (0.05, 0.17)]
            .iter()
            .map(|(dra, ddec)| {
                RaDec::from_degrees(ra0 + dra / dec0.to_radians().cos(), dec0 + ddec)
            })
            .collect();
        let cfg = json!({
            "path": path,
            "shape": [1, 1, g.npix_y, g.npix_x],
            "data": img.data_yx.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
            "cards": {"BUNIT": "JY/BEAM", "EPSILON": 1e-5, "NVIS": 987_654_321,
                      "WEIGHTNG": "briggs 'robust' 0", "WSTACK": false, "BMAJ": 0.02,
                      "CRPIX1": 33.0, "CRPIX2": 25.0, "CDELT3": 2.5e7,
                      "CRVAL1": ra0, "CRVAL2": dec0, "CDELT2": 30.0 / 3600.0},
            "sky": sky.iter().map(|d| [d.ra.to_degrees(), d.dec.to_degrees()]).collect::<Vec<_>>(),
        });
        let cfg_path = dir.path().join(format!("cfg{i}.json"));
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let out: Value = serde_json::from_str(&common::run_python(SCRIPT, &[&cfg_path])).unwrap();
        for (dir_sky, got) in sky.iter().zip(out["pixels"].as_array().unwrap()) {
            let (x, y) = g.radec_to_pixel(*dir_sky).unwrap();
            let (ax, ay) = (got[0].as_f64().unwrap(), got[1].as_f64().unwrap());
            assert!(
                (x - ax).abs() < 1e-6 && (y - ay).abs() < 1e-6,
                "field {i}: aperture ({x}, {y}) vs astropy ({ax}, {ay})"
            );
        }
    }
}
