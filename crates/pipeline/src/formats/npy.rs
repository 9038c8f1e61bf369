//! `.npy` array files (the numpy format, versions 1.0–3.0, NEP 1) on top of
//! `ndarray-npy`: the header is read first so dtype and shape errors can be reported
//! (and sizes checked against the file length) before any data is allocated.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};

use ndarray::{ArrayBase, ArrayD, Data, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ReadDataError, ReadableElement, WritableElement, WriteNpyExt};

use crate::error::FormatError;
use crate::formats::atomic::write_file_synced;

/// Element types aperture reads, independent of byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    C8,
    C16,
    F4,
    F8,
    Bool,
    I4,
    I8,
    U4,
    U8,
}

impl Dtype {
    /// Parses a numpy type descriptor such as `<c8`, `>f8` or `|b1`.
    fn from_descr(descr: &str) -> Option<Self> {
        let (order, kind) = descr.split_at_checked(1)?;
        if !matches!(order, "<" | ">" | "|" | "=") {
            return None;
        }
        Some(match kind {
            "c8" => Self::C8,
            "c16" => Self::C16,
            "f4" => Self::F4,
            "f8" => Self::F8,
            "b1" => Self::Bool,
            "i4" => Self::I4,
            "i8" => Self::I8,
            "u4" => Self::U4,
            "u8" => Self::U8,
            _ => return None,
        })
    }

    pub fn itemsize(self) -> u64 {
        match self {
            Self::Bool => 1,
            Self::F4 | Self::I4 | Self::U4 => 4,
            Self::C8 | Self::F8 | Self::I8 | Self::U8 => 8,
            Self::C16 => 16,
        }
    }
}

/// An opened `.npy` file whose header has been read.
pub struct NpyFile {
    path: PathBuf,
    header: Header,
    descr: String,
    dtype: Option<Dtype>,
    reader: BufReader<File>,
    /// Bytes of header (magic, version, length, dict) before the data.
    header_bytes: u64,
    /// Bytes after the header.
    data_bytes: u64,
}

impl std::fmt::Debug for NpyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpyFile")
            .field("path", &self.path)
            .field("descr", &self.descr)
            .field("shape", &self.header.shape)
            .finish()
    }
}

impl NpyFile {
    /// Opens `path` and parses its header.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io("opening", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| FormatError::io("inspecting", path, e))?
            .len();
        let mut reader = BufReader::new(file);
        let header = Header::from_reader(&mut reader).map_err(|e| FormatError::Npy {
            path: path.to_path_buf(),
            reason: format!("bad header: {e}"),
        })?;
        let pos = reader
            .stream_position()
            .map_err(|e| FormatError::io("reading", path, e))?;
        let descr = match header.type_descriptor.as_string() {
            Some(s) => s.clone(),
            None => header.type_descriptor.to_string(),
        };
        Ok(Self {
            path: path.to_path_buf(),
            dtype: Dtype::from_descr(&descr),
            descr,
            header,
            reader,
            header_bytes: pos,
            data_bytes: len.saturating_sub(pos),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    pub fn dtype(&self) -> Option<Dtype> {
        self.dtype
    }

    /// A dtype error listing what was `expected` against this file's descriptor.
    pub fn dtype_error(&self, expected: &str) -> FormatError {
        FormatError::Dtype {
            path: self.path.clone(),
            expected: expected.to_owned(),
            got: format!("'{}'", self.descr),
        }
    }

    /// Reads the data as `T`, which must match [`NpyFile::dtype`]; Fortran-ordered files
    /// are converted to standard (C) order.
    pub fn read<T: ReadableElement + Clone>(mut self) -> Result<ArrayD<T>, FormatError> {
        let dtype = self
            .dtype
            .ok_or_else(|| self.dtype_error("a supported dtype"))?;
        let len = self
            .header
            .shape
            .iter()
            .try_fold(1_usize, |acc, &n| acc.checked_mul(n))
            .ok_or_else(|| self.npy_error("the shape overflows"))?;
        let need = (len as u64)
            .checked_mul(dtype.itemsize())
            .ok_or_else(|| self.npy_error("the shape overflows"))?;
        if self.data_bytes < need {
            return Err(FormatError::Truncated {
                path: self.path.clone(),
                expected: self.header_bytes + need,
                got: self.header_bytes + self.data_bytes,
            });
        }
        if self.data_bytes > need {
            return Err(self.npy_error(&format!(
                "{} bytes of data follow the header but shape {:?} needs {need}",
                self.data_bytes, self.header.shape
            )));
        }
        let data = T::read_to_end_exact_vec(&mut self.reader, &self.header.type_descriptor, len)
            .map_err(|e| match e {
                ReadDataError::Io(e) => FormatError::io("reading", &self.path, e),
                ReadDataError::WrongDescriptor(_) => self.dtype_error("a matching element type"),
                other => self.npy_error(&other.to_string()),
            })?;
        let shape = IxDyn(&self.header.shape);
        let arr = if self.header.layout.is_fortran() {
            ArrayD::from_shape_vec(shape.f(), data)
        } else {
            ArrayD::from_shape_vec(shape, data)
        }
        .map_err(|e| self.npy_error(&e.to_string()))?;
        Ok(if arr.is_standard_layout() {
            arr
        } else {
            arr.as_standard_layout().into_owned()
        })
    }

    fn npy_error(&self, reason: &str) -> FormatError {
        FormatError::Npy {
            path: self.path.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// Writes `array` (owned or a view) to `path` (format 1.0; C order, or Fortran order for
/// a Fortran-layout array, as `ndarray-npy` chooses) and fsyncs it.
pub fn write_npy<A, S, D>(path: &Path, array: &ArrayBase<S, D>) -> Result<(), FormatError>
where
    A: WritableElement,
    S: Data<Elem = A>,
    D: ndarray::Dimension,
{
    write_file_synced(path, |w| {
        array.write_npy(w).map_err(|e| match e {
            ndarray_npy::WriteNpyError::Io(e) => FormatError::io("writing", path, e),
            other => FormatError::Npy {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use num_complex::Complex32;

    #[test]
    fn descriptors() {
        assert_eq!(Dtype::from_descr("<c8"), Some(Dtype::C8));
        assert_eq!(Dtype::from_descr(">f8"), Some(Dtype::F8));
        assert_eq!(Dtype::from_descr("|b1"), Some(Dtype::Bool));
        assert_eq!(Dtype::from_descr("<U10"), None);
        assert_eq!(Dtype::from_descr(""), None);
    }

    #[test]
    fn write_read_round_trip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let a = Array2::from_shape_fn((3, 2), |(i, j)| Complex32::new(i as f32, j as f32));
        write_npy(&p, &a).unwrap();
        let f = NpyFile::open(&p).unwrap();
        assert_eq!((f.dtype(), f.shape()), (Some(Dtype::C8), &[3, 2][..]));
        let back = f.read::<Complex32>().unwrap();
        assert_eq!(back, a.into_dyn());

        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let err = NpyFile::open(&p).unwrap().read::<Complex32>().unwrap_err();
        assert!(matches!(err, FormatError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("a.npy"));
    }

    /// A `.npy` file as numpy writes it: version 1.0, header padded to 64 bytes.
    fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut header = dict.to_owned();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn big_endian_and_fortran_order_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("be.npy");
        let values = [1.5_f64, -2.25, 1e300];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let dict = "{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }";
        std::fs::write(&p, npy_bytes(dict, &data)).unwrap();
        let f = NpyFile::open(&p).unwrap();
        assert_eq!(f.dtype(), Some(Dtype::F8));
        assert_eq!(f.read::<f64>().unwrap().as_slice().unwrap(), values);

        // [[0, 1, 2], [3, 4, 5]] stored column by column, as little-endian int32.
        let p = dir.path().join("f.npy");
        let data: Vec<u8> = [0_i32, 3, 1, 4, 2, 5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let dict = "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }";
        std::fs::write(&p, npy_bytes(dict, &data)).unwrap();
        let back = NpyFile::open(&p).unwrap().read::<i32>().unwrap();
        assert!(back.is_standard_layout());
        assert_eq!(back.as_slice().unwrap(), [0, 1, 2, 3, 4, 5]);
    }
}
