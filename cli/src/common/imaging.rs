//! Imaging defaults: the image size and cell advised from the data (RASCIL's
//! `advise_wide_field`), the band an image represents, and a memory check before large
//! allocations.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use aperture_imaging::ImagingError;
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::sim::{AdviceParams, WideFieldAdvice, advise_for_block, good_fft_size_235};
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::formats::bundle::BundleMeta;

use super::fmt::bytes;
use super::runtime::proc_bytes;

/// Station diameter assumed when a bundle's `meta.json` gives none (SKA-Low, m).
pub const DEFAULT_DIAMETER_M: f64 = 35.0;

/// Largest |l| (and |m|) of an advised image. Advice for small dishes at low frequencies
/// can ask for a field reaching the horizon; the default image stops at ±0.6 (±37°).
pub const MAX_ADVISED_HALF_EXTENT: f64 = 0.6;

/// Bytes per image pixel an invert or predict needs, roughly: the padded complex grid
/// (oversampling up to 2 per axis, 16 bytes per cell) plus a few real images.
pub const BYTES_PER_PIXEL: f64 = 4.0 * 16.0 + 3.0 * 8.0;

/// Arcseconds to radians.
pub fn arcsec_to_rad(a: f64) -> f64 {
    (a / 3600.0).to_radians()
}

/// Radians to arcseconds.
pub fn rad_to_arcsec(r: f64) -> f64 {
    r.to_degrees() * 3600.0
}

/// The station diameter from a bundle's metadata, and whether the default was used.
pub fn station_diameter(meta: &BundleMeta) -> (f64, bool) {
    match meta.station_diameter_m {
        Some(d) => (d, false),
        None => (DEFAULT_DIAMETER_M, true),
    }
}

/// Centre frequency (mean of the channels) and bandwidth of a list of channel centres.
/// The bandwidth is the span of the channel centres widened by one mean channel spacing,
/// i.e. the whole band for evenly spaced channels; 0 for a single channel.
pub fn band(freq_c: &[f64]) -> (f64, f64) {
    let n = freq_c.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = freq_c.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let lo = freq_c.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = freq_c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, (hi - lo) * n as f64 / (n - 1) as f64)
}

/// The image the data call for, with the user's overrides.
#[derive(Debug, Clone, Copy)]
pub struct GeometryChoice {
    pub geom: ImageGeometry,
    /// The advice, when any default was needed.
    pub advice: Option<WideFieldAdvice>,
    /// True when the advised field was limited to ±[`MAX_ADVISED_HALF_EXTENT`].
    pub field_limited: bool,
}

/// Chooses the image for `block`: `npix` and `cell_rad` when given, else advised from
/// the longest baseline (cell: a third of the synthesised beam at the highest frequency)
/// and the primary beam of a `diameter_m` station at the lowest (field: six beam widths).
/// With only `cell_rad` given, npix covers the advised field at that cell.
/// `what` names the data in errors (e.g. the bundle path).
pub fn choose_geometry(
    block: &VisBlock,
    diameter_m: f64,
    npix: Option<usize>,
    cell_rad: Option<f64>,
    what: &Path,
) -> Result<GeometryChoice> {
    let (cell, npix_value, field_limited, advice) = match (npix, cell_rad) {
        (Some(n), Some(c)) => (c, n, false, None),
        _ => {
            let a = advise_for_block(block, diameter_m, &AdviceParams::default()).map_err(|e| {
                anyhow!(
                    "{}: cannot advise an image size ({e}); give --npix and --cell",
                    what.display()
                )
            })?;
            let cell = cell_rad.unwrap_or(a.cell_rad);
            let (n, limited) = match npix {
                Some(n) => (n, false),
                None => advised_npix(&a, cell, what)?,
            };
            (cell, n, limited, Some(a))
        }
    };
    let (freq, bandwidth) = band(&block.freq_c);
    let geom = ImageGeometry::square(npix_value, cell, block.phase_centre, freq, bandwidth)
        .map_err(|e| geometry_error(e, npix_value, npix.is_some(), cell, cell_rad.is_some()))?;
    Ok(GeometryChoice {
        geom,
        advice,
        field_limited,
    })
}

/// Pixels covering the advised field (at most ±[`MAX_ADVISED_HALF_EXTENT`]) at `cell`,
/// rounded up to an even 2^a 3^b 5^c; and whether the field was limited.
fn advised_npix(a: &WideFieldAdvice, cell: f64, what: &Path) -> Result<(usize, bool)> {
    let limited = a.image_fov_rad > 2.0 * MAX_ADVISED_HALF_EXTENT;
    let fov = a.image_fov_rad.min(2.0 * MAX_ADVISED_HALF_EXTENT);
    let exact = (fov / cell).ceil();
    if !(exact.is_finite() && exact < (1u64 << 40) as f64) {
        bail!(
            "{}: the advised image is too large at this cell; give --npix",
            what.display()
        );
    }
    Ok((good_fft_size_235((exact as usize).max(16)), limited))
}

/// Names the option behind an invalid image geometry.
fn geometry_error(
    e: ImagingError,
    npix: usize,
    npix_given: bool,
    cell: f64,
    cell_given: bool,
) -> anyhow::Error {
    let reason = match &e {
        ImagingError::InvalidParameter { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    let cell_as = rad_to_arcsec(cell);
    match (&e, npix_given, cell_given) {
        (ImagingError::InvalidParameter { name, .. }, true, _) if name == "npix" => {
            anyhow!("--npix {npix}: must be even and at least 16")
        }
        (_, true, true) => anyhow!("--npix {npix} with --cell {cell_as}: {reason}"),
        (_, _, true) => anyhow!("--cell {cell_as}: {reason}"),
        (_, true, _) => anyhow!("--npix {npix}: {reason}"),
        _ => anyhow!(
            "advised image ({npix} pixels of {cell_as:.3} arcsec): {reason}; give --npix and --cell"
        ),
    }
}

/// Checks `--npix` before any data is read.
pub fn check_npix(npix: Option<usize>) -> Result<()> {
    if let Some(n) = npix
        && (n < 16 || n % 2 != 0)
    {
        bail!("--npix {n}: must be even and at least 16");
    }
    Ok(())
}

/// Checks `--cell` (arcseconds) before any data is read; returns radians.
pub fn check_cell(cell_arcsec: Option<f64>) -> Result<Option<f64>> {
    match cell_arcsec {
        Some(c) if !(c.is_finite() && c > 0.0) => {
            bail!("--cell {c}: must be a positive number of arcseconds")
        }
        Some(c) => Ok(Some(arcsec_to_rad(c))),
        None => Ok(None),
    }
}

/// Errors (naming `what`) when `need` bytes clearly exceed the memory the system can
/// still give (`MemAvailable`; no check where that is unknown).
pub fn check_memory(need: f64, what: &str) -> Result<()> {
    if let Some(avail) = proc_bytes("/proc/meminfo", "MemAvailable:")
        && need > avail as f64
    {
        bail!(
            "{what}: needs about {} but only {} of memory is available",
            bytes(need as u64),
            bytes(avail)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_of_even_channels_is_the_whole_band() {
        let f = [106.25e6, 118.75e6, 131.25e6, 143.75e6];
        let (c, bw) = band(&f);
        assert!((c - 125e6).abs() < 1e-6 && (bw - 50e6).abs() < 1e-6);
        assert_eq!(band(&[1e8]), (1e8, 0.0));
    }

    #[test]
    fn npix_and_cell_checks() {
        assert!(check_npix(Some(16)).is_ok() && check_npix(None).is_ok());
        for n in [1023, 8, 0] {
            let e = check_npix(Some(n)).unwrap_err().to_string();
            assert_eq!(e, format!("--npix {n}: must be even and at least 16"));
        }
        assert!(check_cell(Some(-1.0)).is_err() && check_cell(Some(f64::NAN)).is_err());
        assert!((check_cell(Some(3600.0)).unwrap().unwrap() - 1f64.to_radians()).abs() < 1e-15);
    }
}
