//! Conversions between a window's `VisBlock` arrays and the element vectors of its
//! chunks: a time chunk of `[time_chunk, nbaseline, nchan, 1]` in C order is exactly the
//! block rows `t0·nbaseline .. t1·nbaseline` in row-major order, padded with the fill
//! value past the last time (Zarr stores edge chunks whole).
//!
//! Visibilities and weights are narrowed to complex64/float32 for `VisDtype::Complex64`
//! (round to nearest, relative error ≤ 2⁻²⁴) and kept as they are for `Complex128`.

use std::ops::Range;

use aperture_imaging::coords::UvwMetres;
use ndarray::{ArrayView2, s};
use num_complex::{Complex32, Complex64};

/// Elements of the rows `rows` of `a` (row-major), mapped by `f`, padded with `pad` to
/// `len` elements.
pub(crate) fn chunk_of<T: Copy, U: Copy>(
    a: ArrayView2<'_, T>,
    rows: Range<usize>,
    len: usize,
    pad: U,
    f: impl Fn(T) -> U,
) -> Vec<U> {
    let mut out = Vec::with_capacity(len);
    match a.slice(s![rows.clone(), ..]).as_slice() {
        Some(flat) => out.extend(flat.iter().map(|&v| f(v))),
        None => out.extend(a.slice(s![rows, ..]).iter().map(|&v| f(v))),
    }
    out.resize(len, pad);
    out
}

/// uvw of `rows` as `[row, 3]` f64 elements, padded with zeros to `len`.
pub(crate) fn uvw_chunk(uvw_r: &[UvwMetres], rows: Range<usize>, len: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(len);
    out.extend(uvw_r[rows].iter().flat_map(|p| [p.u, p.v, p.w]));
    out.resize(len, 0.0);
    out
}

pub(crate) fn narrow_c(v: Complex64) -> Complex32 {
    Complex32::new(v.re as f32, v.im as f32)
}

pub(crate) fn widen_c(v: Complex32) -> Complex64 {
    Complex64::new(v.re.into(), v.im.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn chunks_are_row_slices_padded() {
        let a = Array2::from_shape_fn((4, 2), |(r, c)| (10 * r + c) as i32);
        assert_eq!(
            chunk_of(a.view(), 2..4, 6, -1, |v| v),
            [20, 21, 30, 31, -1, -1]
        );
        // A non-contiguous view gives the same elements.
        let t = a.t().to_owned();
        assert_eq!(chunk_of(t.t(), 1..2, 2, -1, |v| v * 2), [20, 22]);
        let uvw = [UvwMetres::new(1.0, 2.0, 3.0), UvwMetres::new(4.0, 5.0, 6.0)];
        assert_eq!(uvw_chunk(&uvw, 1..2, 6), [4.0, 5.0, 6.0, 0.0, 0.0, 0.0]);
        let z = Complex64::new(0.1, -1.0 / 3.0);
        assert_eq!(
            widen_c(narrow_c(z)),
            Complex64::new(0.1f32.into(), (-1.0f32 / 3.0).into())
        );
    }
}
