//! Writing a `VisBlock` as a numpy bundle, atomically (temporary sibling directory,
//! renamed into place).

use std::io::Write;
use std::path::Path;

use aperture_imaging::vis::VisBlock;
use ndarray::{Array1, Array2, aview1};
use num_complex::Complex32;

use super::meta::BundleMeta;
use super::{VisDtype, files};
use crate::error::FormatError;
use crate::formats::angle::rad_to_deg;
use crate::formats::atomic::{write_dir_atomic, write_file_synced};
use crate::formats::npy::write_npy;

/// Options for [`write_bundle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteBundleOptions {
    pub vis_dtype: VisDtype,
    /// Replace an existing non-empty directory instead of failing.
    pub overwrite: bool,
}

/// Angular tolerance (radians) for `meta.phase_centre` agreeing with the block's; far
/// below any astrometric meaning, far above the degree↔radian rounding error.
const PHASE_CENTRE_TOL: f64 = 1e-12;

fn check_meta(block: &VisBlock, meta: &BundleMeta) -> Result<(), FormatError> {
    meta.validate()?;
    let m = meta.phase_centre();
    let b = block.phase_centre;
    let dra = (m.ra - b.ra + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
        - std::f64::consts::PI;
    if dra.abs() > PHASE_CENTRE_TOL || (m.dec - b.dec).abs() > PHASE_CENTRE_TOL {
        return Err(FormatError::invalid(
            "bundle metadata key phase_centre",
            format!(
                "({}, {}) deg differs from the visibilities' phase centre ({}, {}) deg; \
                 start from BundleMeta::for_block",
                meta.phase_centre.ra_deg,
                meta.phase_centre.dec_deg,
                rad_to_deg(b.ra),
                rad_to_deg(b.dec)
            ),
        ));
    }
    Ok(())
}

fn to_i32(ants: &[u32], name: &str) -> Result<Array1<i32>, FormatError> {
    ants.iter()
        .enumerate()
        .map(|(r, &a)| {
            i32::try_from(a).map_err(|_| {
                FormatError::invalid(name, format!("row {r}: antenna index {a} exceeds int32"))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Array1::from)
}

fn vis_c8(block: &VisBlock) -> Result<Array2<Complex32>, FormatError> {
    let v = block
        .vis_rc
        .mapv(|v| Complex32::new(v.re as f32, v.im as f32));
    if let Some(((r, c), _)) = v
        .indexed_iter()
        .find(|(_, v)| !(v.re.is_finite() && v.im.is_finite()))
    {
        return Err(FormatError::invalid(
            "vis",
            format!("row {r}, channel {c} overflows complex64; write complex128"),
        ));
    }
    Ok(v)
}

fn weight_f4(block: &VisBlock) -> Result<Array2<f32>, FormatError> {
    let w = block.weight_rc.mapv(|w| w as f32);
    if let Some(((r, c), _)) = w.indexed_iter().find(|(_, w)| !w.is_finite()) {
        return Err(FormatError::invalid(
            "weight",
            format!("row {r}, channel {c} overflows float32; write complex128 (float64 weights)"),
        ));
    }
    Ok(w)
}

fn write_meta(path: &Path, meta: &BundleMeta) -> Result<(), FormatError> {
    let text = serde_json::to_string_pretty(meta).map_err(|e| {
        FormatError::invalid("bundle metadata", format!("cannot be serialised: {e}"))
    })?;
    write_file_synced(path, |w| {
        w.write_all(text.as_bytes())
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|e| FormatError::io("writing", path, e))
    })
}

/// Writes `block` as a bundle in `dir` (layout in the module docs) with `meta.json` from
/// `meta`, whose phase centre must match the block's (see [`BundleMeta::for_block`]).
///
/// The files are written to `<dir>.tmp-<pid>`, synced and renamed to `dir`; on error the
/// temporary directory is removed. An existing non-empty `dir` is an error unless
/// `opts.overwrite` is set.
pub fn write_bundle(
    dir: impl AsRef<Path>,
    block: &VisBlock,
    meta: &BundleMeta,
    opts: WriteBundleOptions,
) -> Result<(), FormatError> {
    let dir = dir.as_ref();
    block.validate().map_err(|source| FormatError::Bundle {
        path: dir.to_path_buf(),
        source,
    })?;
    check_meta(block, meta)?;
    let ant1 = to_i32(&block.ant1_r, "ant1")?;
    let ant2 = to_i32(&block.ant2_r, "ant2")?;
    let single = match opts.vis_dtype {
        VisDtype::Complex64 => Some((vis_c8(block)?, weight_f4(block)?)),
        VisDtype::Complex128 => None,
    };
    let uvw = Array2::from_shape_fn((block.n_rows(), 3), |(r, k)| {
        let p = block.uvw_r[r];
        [p.u, p.v, p.w][k]
    });

    write_dir_atomic(dir, opts.overwrite, |tmp| {
        write_npy(&tmp.join(files::UVW), &uvw)?;
        write_npy(&tmp.join(files::FREQ), &aview1(&block.freq_c))?;
        match &single {
            Some((v, w)) => {
                write_npy(&tmp.join(files::VIS), v)?;
                write_npy(&tmp.join(files::WEIGHT), w)?;
            }
            None => {
                write_npy(&tmp.join(files::VIS), &block.vis_rc)?;
                write_npy(&tmp.join(files::WEIGHT), &block.weight_rc)?;
            }
        }
        write_npy(&tmp.join(files::FLAG), &block.flag_rc)?;
        write_npy(&tmp.join(files::ANT1), &ant1)?;
        write_npy(&tmp.join(files::ANT2), &ant2)?;
        write_npy(&tmp.join(files::TIME), &aview1(&block.time_r))?;
        write_meta(&tmp.join(files::META), meta)
    })
}
