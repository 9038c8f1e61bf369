//! A maintained maximum of |image| × mask over a rectangle of the image: per-tile maxima
//! and per-tile-row maxima, so that after a PSF patch is subtracted only the tiles it
//! touched are rescanned and the global peak is found from one maximum per tile row.

/// Tile side in pixels.
pub(crate) const TILE: usize = 16;

/// Tile and tile-row maxima of |image| × mask over an `nx × ny` image, counting only
/// pixels at least `border` from the image edge.
#[derive(Debug, Clone)]
pub(crate) struct PeakTracker {
    dims: Dims,
    tile_max: Vec<f64>,
    tile_idx: Vec<usize>,
    row_max: Vec<f64>,
    row_idx: Vec<usize>,
}

/// The image size, the counted rectangle (half open) and the tiles per row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    nx: usize,
    ny: usize,
    bx: (usize, usize),
    by: (usize, usize),
    ntx: usize,
    /// The mask is 1 everywhere (set by [`PeakTracker::rebuild`]): |v| × 1 = |v|, so
    /// the mask need not be read.
    open: bool,
}

/// One row of tiles (tile row `ty`), borrowed from a [`PeakTracker`] so that the rows
/// can be rescanned on different threads.
pub(crate) struct TileRow<'a> {
    ty: usize,
    tile_max: &'a mut [f64],
    tile_idx: &'a mut [usize],
    row_max: &'a mut f64,
    row_idx: &'a mut usize,
}

/// max(|v|·w) over a row, −1 when it is empty. Four independent lanes (the compare
/// vectorises to packed maxima); the maximum does not depend on the order, so this is
/// the sequential fold's value. Values are finite (a NaN product is skipped, as
/// `f64::max` skips it).
#[inline]
fn masked_max(row: &[f64], mask: &[f64]) -> f64 {
    lanes_max(row, mask, |v, w| v.abs() * w)
}

/// max |v| over a row, −1 when it is empty (as [`masked_max`] with a mask of ones).
#[inline]
fn open_max(row: &[f64]) -> f64 {
    lanes_max(row, row, |v, _| v.abs())
}

/// max f(v, w) over a row and its mask in four lanes, −1 when the row is empty.
#[inline(always)]
fn lanes_max(row: &[f64], mask: &[f64], f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [-1.0f64; 4];
    let (rc, mc) = (row.chunks_exact(4), mask.chunks_exact(4));
    let (rr, mr) = (rc.remainder(), mc.remainder());
    for (r, m) in rc.zip(mc) {
        for k in 0..4 {
            let v = f(r[k], m[k]);
            acc[k] = if v > acc[k] { v } else { acc[k] };
        }
    }
    for (v, w) in rr.iter().zip(mr) {
        let v = f(*v, *w);
        acc[0] = if v > acc[0] { v } else { acc[0] };
    }
    let a = if acc[1] > acc[0] { acc[1] } else { acc[0] };
    let b = if acc[3] > acc[2] { acc[3] } else { acc[2] };
    if b > a { b } else { a }
}

impl Dims {
    /// Rescans tiles tx0..tx1 of `row` from the image rows `img` (whose first row is
    /// image row `y_base`) and sets the row's maximum.
    fn scan(
        &self,
        row: &mut TileRow,
        img: &[f64],
        y_base: usize,
        mask: &[f64],
        tx: (usize, usize),
    ) {
        let (nx, ty) = (self.nx, row.ty);
        let ya = (ty * TILE).max(self.by.0);
        let yb = ((ty + 1) * TILE).min(self.by.1);
        for t in tx.0..tx.1 {
            let xa = (t * TILE).max(self.bx.0);
            let xb = ((t + 1) * TILE).min(self.bx.1);
            // Maximum per image row first, the position only in the first row holding
            // the tile's maximum.
            let (mut best, mut by) = (-1.0f64, usize::MAX);
            // A tile wholly inside the border (a border wider than a tile) counts nothing.
            for y in (ya..yb).filter(|_| xa < xb) {
                let r = (y - y_base) * nx;
                let row = &img[r + xa..r + xb];
                let rmax = if self.open {
                    open_max(row)
                } else {
                    masked_max(row, &mask[y * nx + xa..y * nx + xb])
                };
                if rmax > best {
                    best = rmax;
                    by = y;
                }
            }
            let bi = if by == usize::MAX {
                0
            } else {
                let r = (by - y_base) * nx;
                let off = img[r + xa..r + xb]
                    .iter()
                    .zip(&mask[by * nx + xa..by * nx + xb])
                    .position(|(v, w)| v.abs() * w == best)
                    .unwrap_or(0);
                by * nx + xa + off
            };
            row.tile_max[t] = best;
            row.tile_idx[t] = bi;
        }
        let (mut best, mut bt) = (-1.0f64, 0);
        for (t, &v) in row.tile_max.iter().enumerate() {
            if v > best {
                best = v;
                bt = t;
            }
        }
        *row.row_max = best;
        *row.row_idx = row.tile_idx[bt];
    }
}

impl TileRow<'_> {
    /// The tile row's index.
    pub fn ty(&self) -> usize {
        self.ty
    }

    /// Rescans tiles tx.0..tx.1 of this row from `band`, the image rows from
    /// ty·TILE on (at least up to the row's last counted pixel row).
    pub fn rescan(&mut self, dims: &Dims, band: &[f64], mask: &[f64], tx: (usize, usize)) {
        let y_base = self.ty * TILE;
        dims.scan(self, band, y_base, mask, tx);
    }
}

impl PeakTracker {
    pub fn new(nx: usize, ny: usize, border: usize) -> Self {
        let (ntx, nty) = (nx.div_ceil(TILE), ny.div_ceil(TILE));
        Self {
            dims: Dims {
                nx,
                ny,
                bx: (border.min(nx), nx.saturating_sub(border)),
                by: (border.min(ny), ny.saturating_sub(border)),
                ntx,
                open: false,
            },
            tile_max: vec![0.0; ntx * nty],
            tile_idx: vec![0; ntx * nty],
            row_max: vec![0.0; nty],
            row_idx: vec![0; nty],
        }
    }

    /// Rescans the whole image.
    pub fn rebuild(&mut self, img: &[f64], mask: &[f64]) {
        self.dims.open = mask.iter().all(|&w| w == 1.0);
        self.update(img, mask, 0, self.dims.nx, 0, self.dims.ny);
    }

    /// The tile columns and rows that intersect x in x0..x1, y in y0..y1 (half open,
    /// non-empty).
    pub fn tile_span(
        x0: usize,
        x1: usize,
        y0: usize,
        y1: usize,
    ) -> ((usize, usize), (usize, usize)) {
        (
            (x0 / TILE, (x1 - 1) / TILE + 1),
            (y0 / TILE, (y1 - 1) / TILE + 1),
        )
    }

    /// Rescans the tiles that intersect x in x0..x1, y in y0..y1 (half open).
    pub fn update(
        &mut self,
        img: &[f64],
        mask: &[f64],
        x0: usize,
        x1: usize,
        y0: usize,
        y1: usize,
    ) {
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let (tx, ty) = Self::tile_span(x0, x1, y0, y1);
        let (dims, rows) = self.rows_mut(ty);
        for mut row in rows {
            dims.scan(&mut row, img, 0, mask, tx);
        }
    }

    /// Tile rows ty.0..ty.1, to be rescanned independently with [`Dims::scan`] through
    /// [`TileRow::rescan`].
    pub fn rows_mut(&mut self, ty: (usize, usize)) -> (Dims, Vec<TileRow<'_>>) {
        let ntx = self.dims.ntx;
        let rows = self.tile_max[ty.0 * ntx..ty.1 * ntx]
            .chunks_mut(ntx)
            .zip(self.tile_idx[ty.0 * ntx..ty.1 * ntx].chunks_mut(ntx))
            .zip(self.row_max[ty.0..ty.1].iter_mut())
            .zip(self.row_idx[ty.0..ty.1].iter_mut())
            .enumerate()
            .map(|(i, (((tile_max, tile_idx), row_max), row_idx))| TileRow {
                ty: ty.0 + i,
                tile_max,
                tile_idx,
                row_max,
                row_idx,
            })
            .collect();
        (self.dims, rows)
    }

    /// The largest |image| × mask and its flat index `y·nx + x`.
    pub fn best(&self) -> (f64, usize) {
        let (mut best, mut bi) = (-1.0f64, 0);
        for (v, i) in self.row_max.iter().zip(&self.row_idx) {
            if *v > best {
                best = *v;
                bi = *i;
            }
        }
        (best.max(0.0), bi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_the_masked_peak_through_updates() {
        let (nx, ny) = (70, 45);
        // A window that excludes columns, and none (the mask is then not read).
        track(
            nx,
            ny,
            (0..nx * ny)
                .map(|i| if (i % nx) > 5 { 1.0 } else { 0.0 })
                .collect(),
        );
        track(nx, ny, vec![1.0; nx * ny]);
    }

    fn track(nx: usize, ny: usize, mask: Vec<f64>) {
        let mut rng = crate::sim::Rng::new(3);
        let mut img: Vec<f64> = (0..nx * ny).map(|_| rng.normal()).collect();
        let brute = |img: &[f64]| {
            img.iter()
                .zip(&mask)
                .map(|(v, m)| v.abs() * m)
                .fold(0.0, f64::max)
        };
        let mut t = PeakTracker::new(nx, ny, 0);
        t.rebuild(&img, &mask);
        assert_eq!(t.best().0, brute(&img));
        let mut tb = PeakTracker::new(nx, ny, 3);
        tb.rebuild(&img, &mask);
        let inner = (0..nx * ny)
            .filter(|i| (3..nx - 3).contains(&(i % nx)) && (3..ny - 3).contains(&(i / nx)))
            .map(|i| img[i].abs() * mask[i])
            .fold(0.0, f64::max);
        assert_eq!(tb.best().0, inner);
        for k in 0..200 {
            let (x0, y0) = (rng.below(nx as u64) as usize, rng.below(ny as u64) as usize);
            let (x1, y1) = ((x0 + 1 + k % 40).min(nx), (y0 + 1 + k % 17).min(ny));
            for y in y0..y1 {
                for x in x0..x1 {
                    img[y * nx + x] *= 0.5 + rng.uniform();
                }
            }
            t.update(&img, &mask, x0, x1, y0, y1);
            let (v, i) = t.best();
            assert_eq!(v, brute(&img));
            assert_eq!(img[i].abs() * mask[i], v);
            // The same rescan tile row by tile row from bands of the image (as the
            // threads do it): the same state.
            let mut tr = t.clone();
            let (tx, ty) = PeakTracker::tile_span(0, nx, y0, y1);
            let ntx = tr.dims.ntx;
            tr.tile_max[ty.0 * ntx..ty.1 * ntx].fill(-5.0);
            tr.row_max[ty.0..ty.1].fill(-5.0);
            let (dims, rows) = tr.rows_mut(ty);
            for (mut row, band) in rows
                .into_iter()
                .zip(img[ty.0 * TILE * nx..].chunks(TILE * nx))
            {
                row.rescan(&dims, band, &mask, tx);
            }
            assert_eq!(tr.tile_max, t.tile_max);
            assert_eq!(tr.tile_idx, t.tile_idx);
            assert_eq!(
                (tr.row_max, tr.row_idx),
                (t.row_max.clone(), t.row_idx.clone())
            );
        }
    }
}
