//! Bulk reads of a block of rows of an array column, each cell sliced, in one casacore
//! call (`ArrayColumn::getColumnCells` in `cc/bulk.cc`): rubbl_casatables 0.10 reads one
//! cell per call, and rebuilds its column objects on every call, which made the data
//! pass several times slower than python-casacore's `getcol` (issue #9). The handle
//! is a second `casacore::Table` of the same table (casacore's table cache shares the
//! underlying table); like every casacore call it is used and dropped under
//! [`casacore_lock`](crate::casacore_lock).

use std::ffi::c_void;
use std::path::Path;
use std::ptr::NonNull;

use num_complex::Complex;

unsafe extern "C" {
    fn aperture_ms_open(
        path: *const u8,
        path_len: usize,
        err: *mut u8,
        errlen: usize,
    ) -> *mut c_void;
    fn aperture_ms_close(table: *mut c_void);
    fn aperture_ms_get_cells(
        table: *mut c_void,
        column: *const u8,
        column_len: usize,
        kind: i32,
        rows: *const u64,
        nrows: usize,
        ndim: usize,
        blc: *const i64,
        len: *const i64,
        cell: *const i64,
        out: *mut c_void,
        out_len: usize,
        bad_row: *mut usize,
        err: *mut u8,
        errlen: usize,
    ) -> i32;
    fn aperture_ms_column_storage(
        table: *mut c_void,
        column: *const u8,
        column_len: usize,
        seqnr: *mut u64,
        tile_rows: *mut u64,
        tile_bytes: *mut u64,
        cube_rows: *mut u64,
        err: *mut u8,
        errlen: usize,
    ) -> i32;
}

/// Where a column's cells are stored (`cc/bulk.cc`, `aperture_ms_column_storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColumnStorage {
    /// The data manager's sequence number: its files are `table.f<seqnr>*`.
    pub(crate) seqnr: u64,
    /// For a tiled storage manager: the tile's rows, the bytes of one row of tiles and
    /// the hypercube's rows (of the cube holding row 0).
    pub(crate) tiles: Option<crate::prefetch::Tiles>,
}

/// Element types `cc/bulk.cc` reads, with casacore's layout (`Bool` is one byte,
/// `Complex` is `std::complex<float>`, two floats).
///
/// # Safety
/// `KIND` must name the casacore type with the same size and layout as `Self`.
pub(crate) unsafe trait Elem: Copy + Default + Send {
    const KIND: i32;
}
// SAFETY: casacore::Bool is C++ bool (one byte, 0 or 1), as Rust's bool.
unsafe impl Elem for bool {
    const KIND: i32 = 0;
}
// SAFETY: casacore::Float is float.
unsafe impl Elem for f32 {
    const KIND: i32 = 1;
}
// SAFETY: casacore::Double is double.
unsafe impl Elem for f64 {
    const KIND: i32 = 2;
}
// SAFETY: casacore::Complex is std::complex<float>: (re, im), as num_complex (repr(C)).
unsafe impl Elem for Complex<f32> {
    const KIND: i32 = 3;
}
// SAFETY: casacore::DComplex is std::complex<double>.
unsafe impl Elem for Complex<f64> {
    const KIND: i32 = 4;
}

/// Why a bulk read failed.
#[derive(Debug)]
pub(crate) enum BulkError {
    /// `rows[index]` has a cell of another shape (or none).
    Shape { index: usize },
    /// casacore's message.
    Casacore(String),
}

/// A read-only handle of one table for bulk reads.
#[derive(Debug)]
pub(crate) struct BulkTable {
    ptr: NonNull<c_void>,
}

const ERRLEN: usize = 2048;

fn message(err: &[u8]) -> String {
    let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
    String::from_utf8_lossy(&err[..end]).into_owned()
}

impl BulkTable {
    /// Opens the table at `dir` (call under the casacore lock).
    pub(crate) fn open(dir: &Path) -> Result<Self, String> {
        let path = dir.to_string_lossy();
        let mut err = vec![0u8; ERRLEN];
        // SAFETY: the path and error buffers are valid for the lengths given; the C++
        // side copies the path and catches every exception.
        let ptr = unsafe { aperture_ms_open(path.as_ptr(), path.len(), err.as_mut_ptr(), ERRLEN) };
        NonNull::new(ptr)
            .map(|ptr| Self { ptr })
            .ok_or_else(|| message(&err))
    }

    /// Reads `column`'s cells of `rows` (ascending), each of shape `cell` (casacore axis
    /// order, fastest first) and sliced to `blc` + `len`, into `out` (resized), laid out
    /// row after row with axis 0 fastest (on failure, `out` holds unspecified values).
    /// Call under the casacore lock.
    pub(crate) fn cells<T: Elem>(
        &mut self,
        column: &str,
        rows: &[u64],
        blc: &[i64],
        len: &[i64],
        cell: &[i64],
        out: &mut Vec<T>,
    ) -> Result<(), BulkError> {
        assert!(blc.len() == len.len() && len.len() == cell.len());
        let n = rows.len() * len.iter().map(|&l| l.max(0) as usize).product::<usize>();
        // casacore overwrites every element (or the call fails), so a reused buffer of the
        // right length is not cleared first: clearing it cost the reading thread a pass
        // over every byte read.
        if out.len() != n {
            out.clear();
            out.resize(n, T::default());
        }
        let mut err = vec![0u8; ERRLEN];
        let mut bad_row = 0usize;
        // SAFETY: every pointer is valid for the length passed with it; `out` holds
        // exactly `n` elements of the type `T::KIND` names, which the C++ side checks
        // against the slice before writing; it catches every exception.
        let rc = unsafe {
            aperture_ms_get_cells(
                self.ptr.as_ptr(),
                column.as_ptr(),
                column.len(),
                T::KIND,
                rows.as_ptr(),
                rows.len(),
                len.len(),
                blc.as_ptr(),
                len.as_ptr(),
                cell.as_ptr(),
                out.as_mut_ptr().cast(),
                n,
                &mut bad_row,
                err.as_mut_ptr(),
                ERRLEN,
            )
        };
        match rc {
            0 => Ok(()),
            -2 => Err(BulkError::Shape { index: bad_row }),
            _ => Err(BulkError::Casacore(message(&err))),
        }
    }
}

impl BulkTable {
    /// Where `column` is stored (call under the casacore lock).
    pub(crate) fn storage(&mut self, column: &str) -> Result<ColumnStorage, String> {
        let mut err = vec![0u8; ERRLEN];
        let (mut seqnr, mut tile_rows, mut tile_bytes, mut cube_rows) = (0u64, 0u64, 0u64, 0u64);
        // SAFETY: the column name and error buffer are valid for the lengths given, the
        // four outputs are valid u64s; the C++ side catches every exception.
        let rc = unsafe {
            aperture_ms_column_storage(
                self.ptr.as_ptr(),
                column.as_ptr(),
                column.len(),
                &mut seqnr,
                &mut tile_rows,
                &mut tile_bytes,
                &mut cube_rows,
                err.as_mut_ptr(),
                ERRLEN,
            )
        };
        if rc != 0 {
            return Err(message(&err));
        }
        let tiles = (tile_rows > 0 && tile_bytes > 0).then_some(crate::prefetch::Tiles {
            tile_rows,
            tile_bytes,
            cube_rows,
        });
        Ok(ColumnStorage { seqnr, tiles })
    }
}

impl Drop for BulkTable {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from aperture_ms_open and is freed once, here.
        unsafe { aperture_ms_close(self.ptr.as_ptr()) }
    }
}
