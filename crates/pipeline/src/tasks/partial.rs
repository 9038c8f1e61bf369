//! The internal format of partial results (per-shard sums and reduction-tree nodes):
//! named f64 images, named scalars and optional calibration normal equations, which add
//! element-wise. Layout: `APERTURE-PARTIAL1\n`, a u64 (LE) header length, the JSON
//! header, then each array's f64 values little-endian in header order.

use std::collections::BTreeMap;

use aperture_imaging::calib::NormalEquations;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::TaskError;

const MAGIC: &[u8] = b"APERTURE-PARTIAL1\n";

/// A summable partial result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partial {
    pub arrays: BTreeMap<String, Array2<f64>>,
    pub scalars: BTreeMap<String, f64>,
    /// Calibration normal equations (global T solutions), summed by the tree.
    pub neq: Option<NormalEquations>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    arrays: Vec<(String, [usize; 2])>,
    scalars: BTreeMap<String, f64>,
    neq: Option<NormalEquations>,
}

impl Partial {
    /// Adds `other` element-wise; shapes and names must agree.
    pub fn add(&mut self, other: &Partial, what: &str) -> Result<(), TaskError> {
        if self.arrays.is_empty() && self.scalars.is_empty() && self.neq.is_none() {
            *self = other.clone();
            return Ok(());
        }
        let names = |p: &Partial| p.arrays.keys().cloned().collect::<Vec<_>>();
        if names(self) != names(other) {
            return Err(TaskError::corrupt(
                what,
                format!(
                    "partials hold different images: {:?} vs {:?}",
                    names(self),
                    names(other)
                ),
            ));
        }
        for (k, a) in &mut self.arrays {
            let b = &other.arrays[k];
            if a.dim() != b.dim() {
                return Err(TaskError::corrupt(
                    what,
                    format!(
                        "image {k} is {:?} in one partial and {:?} in another",
                        a.dim(),
                        b.dim()
                    ),
                ));
            }
            *a += b;
        }
        for (k, v) in &other.scalars {
            *self.scalars.entry(k.clone()).or_default() += v;
        }
        match (&mut self.neq, &other.neq) {
            (Some(a), Some(b)) => a
                .add(b)
                .map_err(|e| TaskError::corrupt(what, format!("normal equations: {e}")))?,
            (None, Some(b)) => self.neq = Some(b.clone()),
            _ => {}
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            arrays: self
                .arrays
                .iter()
                .map(|(k, a)| (k.clone(), [a.nrows(), a.ncols()]))
                .collect(),
            scalars: self.scalars.clone(),
            neq: self.neq.clone(),
        };
        let json = serde_json::to_vec(&header).unwrap_or_default();
        let n: usize = self.arrays.values().map(|a| a.len()).sum();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + json.len() + 8 * n);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for a in self.arrays.values() {
            for v in a.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Parses bytes written by [`Partial::to_bytes`]; `key` names the object in errors.
    pub fn from_bytes(bytes: &[u8], key: &str) -> Result<Self, TaskError> {
        let bad = |why: &str| TaskError::corrupt(key, why.to_string());
        if !bytes.starts_with(MAGIC) {
            return Err(bad("not an aperture partial (bad magic)"));
        }
        let rest = &bytes[MAGIC.len()..];
        if rest.len() < 8 {
            return Err(bad("truncated header"));
        }
        let hlen =
            u64::from_le_bytes(rest[..8].try_into().map_err(|_| bad("header length"))?) as usize;
        let rest = &rest[8..];
        if rest.len() < hlen {
            return Err(bad("truncated header"));
        }
        let header: Header =
            serde_json::from_slice(&rest[..hlen]).map_err(|e| bad(&format!("bad header: {e}")))?;
        let mut data = &rest[hlen..];
        let mut arrays = BTreeMap::new();
        for (name, [ny, nx]) in header.arrays {
            let n = ny.checked_mul(nx).ok_or_else(|| bad("array too large"))?;
            if data.len() < 8 * n {
                return Err(bad(&format!("truncated data of image {name}")));
            }
            let vals: Vec<f64> = data[..8 * n]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            data = &data[8 * n..];
            let a = Array2::from_shape_vec((ny, nx), vals).map_err(|_| bad("array shape"))?;
            arrays.insert(name, a);
        }
        if !data.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            arrays,
            scalars: header.scalars,
            neq: header.neq,
        })
    }

    pub fn array(&self, name: &str, key: &str) -> Result<&Array2<f64>, TaskError> {
        self.arrays
            .get(name)
            .ok_or_else(|| TaskError::corrupt(key, format!("has no image {name:?}")))
    }

    pub fn scalar(&self, name: &str, key: &str) -> Result<f64, TaskError> {
        self.scalars
            .get(name)
            .copied()
            .ok_or_else(|| TaskError::corrupt(key, format!("has no value {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sum() {
        let mut a = Partial::default();
        a.arrays.insert("d0".into(), Array2::from_elem((3, 4), 1.5));
        a.scalars.insert("sumwt".into(), 2.0);
        let b = Partial::from_bytes(&a.to_bytes(), "k").expect("parses");
        assert_eq!(a, b);
        let mut s = a.clone();
        s.add(&b, "k").expect("adds");
        assert_eq!(s.arrays["d0"][[2, 3]], 3.0);
        assert_eq!(s.scalars["sumwt"], 4.0);
        let mut bytes = a.to_bytes();
        bytes.truncate(bytes.len() - 3);
        let err = Partial::from_bytes(&bytes, "cycles/000/partial/00001.bin").unwrap_err();
        assert!(
            err.to_string().contains("cycles/000/partial/00001.bin"),
            "{err}"
        );
    }
}
