//! Reading a numpy bundle into a `VisBlock`: all headers are checked (dtype, shape, and
//! agreement between files) before any data is read, then values are checked.

use std::path::{Path, PathBuf};

use aperture_imaging::coords::UvwMetres;
use aperture_imaging::vis::VisBlock;
use ndarray::{Array, Array1, Array2, ArrayD, Dimension};
use num_complex::{Complex32, Complex64};

use super::meta::BundleMeta;
use super::{Bundle, VisDtype, files};
use crate::error::FormatError;
use crate::formats::npy::{Dtype, NpyFile};

/// Opens `path` if it exists; `None` for an absent optional file.
fn open_optional(path: &Path) -> Result<Option<NpyFile>, FormatError> {
    match NpyFile::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(FormatError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn shape_error(f: &NpyFile, expected: String) -> FormatError {
    FormatError::Shape {
        path: f.path().to_path_buf(),
        expected,
        got: format!("{:?}", f.shape()),
    }
}

/// The axis lengths every file is checked against, and the files that define them.
struct Dims {
    nrow: usize,
    nchan: usize,
    uvw: PathBuf,
    freq: PathBuf,
}

impl Dims {
    /// Checks a [nrow, nchan] file, naming the file that disagrees.
    fn check_rc(&self, f: &NpyFile) -> Result<(), FormatError> {
        let s = f.shape();
        if s.len() != 2 {
            return Err(shape_error(
                f,
                format!(
                    "[{}, {}] (rows of {}, channels of {})",
                    self.nrow,
                    self.nchan,
                    files::UVW,
                    files::FREQ
                ),
            ));
        }
        self.check_rows(f, s[0])?;
        if s[1] != self.nchan {
            return Err(self.inconsistent(f, &self.freq, format!("has {} channels", self.nchan)));
        }
        Ok(())
    }

    /// Checks a [nrow] file.
    fn check_r(&self, f: &NpyFile) -> Result<(), FormatError> {
        let s = f.shape();
        if s.len() != 1 {
            return Err(shape_error(
                f,
                format!("[{}] (rows of {})", self.nrow, files::UVW),
            ));
        }
        self.check_rows(f, s[0])
    }

    fn check_rows(&self, f: &NpyFile, rows: usize) -> Result<(), FormatError> {
        if rows != self.nrow {
            return Err(self.inconsistent(f, &self.uvw, format!("has {} rows", self.nrow)));
        }
        Ok(())
    }

    fn inconsistent(&self, f: &NpyFile, other: &Path, detail: String) -> FormatError {
        FormatError::Inconsistent {
            path: f.path().to_path_buf(),
            shape: f.shape().to_vec(),
            other: other.to_path_buf(),
            detail,
        }
    }
}

/// `a` with the static dimension `D` (its shape was checked from the header).
fn fixed_dim<T, D: Dimension>(a: ArrayD<T>, path: &Path) -> Result<Array<T, D>, FormatError> {
    a.into_dimensionality::<D>().map_err(|e| FormatError::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

const F8: &str = "float64 ('<f8')";

fn read_f64(f: NpyFile) -> Result<ArrayD<f64>, FormatError> {
    match f.dtype() {
        Some(Dtype::F8) => f.read::<f64>(),
        _ => Err(f.dtype_error(F8)),
    }
}

/// The visibilities as complex128, and how they were stored.
fn read_vis(f: NpyFile) -> Result<(Array2<Complex64>, VisDtype), FormatError> {
    let path = f.path().to_path_buf();
    let (a, dtype) = match f.dtype() {
        Some(Dtype::C16) => (f.read::<Complex64>()?, VisDtype::Complex128),
        Some(Dtype::C8) => (
            f.read::<Complex32>()?
                .mapv(|v| Complex64::new(v.re.into(), v.im.into())),
            VisDtype::Complex64,
        ),
        _ => return Err(f.dtype_error("complex64 ('<c8') or complex128 ('<c16')")),
    };
    let a: Array2<_> = fixed_dim(a, &path)?;
    for ((r, c), v) in a.indexed_iter() {
        if !(v.re.is_finite() && v.im.is_finite()) {
            return Err(FormatError::NonFinite {
                path,
                at: format!("row {r}, channel {c}"),
            });
        }
    }
    Ok((a, dtype))
}

fn read_weight(f: NpyFile) -> Result<Array2<f64>, FormatError> {
    let path = f.path().to_path_buf();
    let a = match f.dtype() {
        Some(Dtype::F8) => f.read::<f64>()?,
        Some(Dtype::F4) => f.read::<f32>()?.mapv(f64::from),
        _ => return Err(f.dtype_error("float32 ('<f4') or float64 ('<f8')")),
    };
    let a: Array2<_> = fixed_dim(a, &path)?;
    for ((r, c), &w) in a.indexed_iter() {
        let at = format!("row {r}, channel {c}");
        if !w.is_finite() {
            return Err(FormatError::NonFinite { path, at });
        }
        if w < 0.0 {
            return Err(FormatError::BadValue {
                path,
                at,
                reason: format!("weight {w} is negative; weights must be non-negative"),
            });
        }
    }
    Ok(a)
}

fn read_flag(f: NpyFile) -> Result<Array2<bool>, FormatError> {
    let path = f.path().to_path_buf();
    match f.dtype() {
        Some(Dtype::Bool) => fixed_dim(f.read::<bool>()?, &path),
        _ => Err(f.dtype_error("bool ('|b1')")),
    }
}

/// Antenna indices: any of int32, int64, uint32, uint64, each in 0..=u32::MAX.
fn read_ant(f: NpyFile) -> Result<Vec<u32>, FormatError> {
    fn narrow<T>(a: ArrayD<T>, path: &Path) -> Result<Vec<u32>, FormatError>
    where
        T: Copy + TryInto<u32> + std::fmt::Display,
    {
        a.iter()
            .enumerate()
            .map(|(r, &v)| {
                v.try_into().map_err(|_| FormatError::BadValue {
                    path: path.to_path_buf(),
                    at: format!("row {r}"),
                    reason: format!("antenna index {v} is not in 0..={}", u32::MAX),
                })
            })
            .collect()
    }
    let path = f.path().to_path_buf();
    match f.dtype() {
        Some(Dtype::I4) => narrow(f.read::<i32>()?, &path),
        Some(Dtype::I8) => narrow(f.read::<i64>()?, &path),
        Some(Dtype::U4) => narrow(f.read::<u32>()?, &path),
        Some(Dtype::U8) => narrow(f.read::<u64>()?, &path),
        _ => Err(f.dtype_error("int32 ('<i4'), int64 ('<i8'), uint32 or uint64")),
    }
}

fn read_uvw(f: NpyFile) -> Result<Vec<UvwMetres>, FormatError> {
    let path = f.path().to_path_buf();
    let a: Array2<_> = fixed_dim(read_f64(f)?, &path)?;
    a.rows()
        .into_iter()
        .enumerate()
        .map(|(r, p)| {
            let uvw = UvwMetres::new(p[0], p[1], p[2]);
            if uvw.u.is_finite() && uvw.v.is_finite() && uvw.w.is_finite() {
                Ok(uvw)
            } else {
                Err(FormatError::NonFinite {
                    path: path.clone(),
                    at: format!("row {r}"),
                })
            }
        })
        .collect()
}

fn read_freq(f: NpyFile) -> Result<Vec<f64>, FormatError> {
    let path = f.path().to_path_buf();
    let a: Array1<_> = fixed_dim(read_f64(f)?, &path)?;
    for (c, &v) in a.iter().enumerate() {
        if !(v.is_finite() && v > 0.0) {
            return Err(FormatError::BadValue {
                path,
                at: format!("channel {c}"),
                reason: format!("frequency {v} Hz; frequencies must be positive and finite"),
            });
        }
    }
    Ok(a.to_vec())
}

fn read_time(f: NpyFile) -> Result<Vec<f64>, FormatError> {
    let path = f.path().to_path_buf();
    let a: Array1<_> = fixed_dim(read_f64(f)?, &path)?;
    if let Some(r) = a.iter().position(|v| !v.is_finite()) {
        return Err(FormatError::NonFinite {
            path,
            at: format!("row {r}"),
        });
    }
    Ok(a.to_vec())
}

fn read_meta(dir: &Path) -> Result<BundleMeta, FormatError> {
    let path = dir.join(files::META);
    let text = std::fs::read_to_string(&path).map_err(|e| FormatError::io("opening", &path, e))?;
    BundleMeta::parse(&text, &path)
}

/// Reads the bundle in `dir`: the validated [`VisBlock`], `meta.json` and the stored
/// precision of `vis.npy`. Every header is checked (dtype, shape, agreement between
/// files) before any data is read; optional files take the defaults of the module docs.
pub fn read_bundle_full(dir: impl AsRef<Path>) -> Result<Bundle, FormatError> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(FormatError::Missing {
            path: dir.to_path_buf(),
        });
    }
    let meta = read_meta(dir)?;

    // Headers first: dtype and shape problems are reported before any data is read.
    let uvw = NpyFile::open(&dir.join(files::UVW))?;
    if uvw.shape().len() != 2 || uvw.shape()[1] != 3 {
        return Err(shape_error(&uvw, "[nrow, 3]".into()));
    }
    let freq = NpyFile::open(&dir.join(files::FREQ))?;
    if freq.shape().len() != 1 {
        return Err(shape_error(&freq, "[nchan]".into()));
    }
    let dims = Dims {
        nrow: uvw.shape()[0],
        nchan: freq.shape()[0],
        uvw: uvw.path().to_path_buf(),
        freq: freq.path().to_path_buf(),
    };
    let vis = NpyFile::open(&dir.join(files::VIS))?;
    dims.check_rc(&vis)?;
    let weight = open_optional(&dir.join(files::WEIGHT))?;
    let flag = open_optional(&dir.join(files::FLAG))?;
    for f in weight.iter().chain(flag.iter()) {
        dims.check_rc(f)?;
    }
    let ant1 = open_optional(&dir.join(files::ANT1))?;
    let ant2 = open_optional(&dir.join(files::ANT2))?;
    let time = open_optional(&dir.join(files::TIME))?;
    for f in ant1.iter().chain(ant2.iter()).chain(time.iter()) {
        dims.check_r(f)?;
    }

    let (nrow, nchan) = (dims.nrow, dims.nchan);
    let uvw_r = read_uvw(uvw)?;
    let freq_c = read_freq(freq)?;
    let (vis_rc, vis_dtype) = read_vis(vis)?;
    let block = VisBlock {
        uvw_r,
        freq_c,
        vis_rc,
        weight_rc: weight
            .map(read_weight)
            .transpose()?
            .unwrap_or_else(|| Array2::ones((nrow, nchan))),
        flag_rc: flag
            .map(read_flag)
            .transpose()?
            .unwrap_or_else(|| Array2::from_elem((nrow, nchan), false)),
        ant1_r: ant1
            .map(read_ant)
            .transpose()?
            .unwrap_or_else(|| vec![0; nrow]),
        ant2_r: ant2
            .map(read_ant)
            .transpose()?
            .unwrap_or_else(|| vec![0; nrow]),
        time_r: time
            .map(read_time)
            .transpose()?
            .unwrap_or_else(|| vec![0.0; nrow]),
        phase_centre: meta.phase_centre(),
    };
    block.validate().map_err(|source| FormatError::Bundle {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(Bundle {
        block,
        meta,
        vis_dtype,
    })
}
