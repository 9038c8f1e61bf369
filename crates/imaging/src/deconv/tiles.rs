//! A maintained maximum of |image| × mask over a rectangle of the image: per-tile maxima
//! and per-tile-row maxima, so that after a PSF patch is subtracted only the tiles it
//! touched are rescanned and the global peak is found from one maximum per tile row.

/// Tile side in pixels.
const TILE: usize = 16;

/// Tile and tile-row maxima of |image| × mask over an `nx × ny` image, counting only
/// pixels at least `border` from the image edge.
#[derive(Debug, Clone)]
pub(crate) struct PeakTracker {
    nx: usize,
    ny: usize,
    /// The counted rectangle, half open.
    bx: (usize, usize),
    by: (usize, usize),
    ntx: usize,
    tile_max: Vec<f64>,
    tile_idx: Vec<usize>,
    row_max: Vec<f64>,
    row_idx: Vec<usize>,
}

impl PeakTracker {
    pub fn new(nx: usize, ny: usize, border: usize) -> Self {
        let (ntx, nty) = (nx.div_ceil(TILE), ny.div_ceil(TILE));
        Self {
            nx,
            ny,
            bx: (border.min(nx), nx.saturating_sub(border)),
            by: (border.min(ny), ny.saturating_sub(border)),
            ntx,
            tile_max: vec![0.0; ntx * nty],
            tile_idx: vec![0; ntx * nty],
            row_max: vec![0.0; nty],
            row_idx: vec![0; nty],
        }
    }

    /// Rescans the whole image.
    pub fn rebuild(&mut self, img: &[f64], mask: &[f64]) {
        self.update(img, mask, 0, self.nx, 0, self.ny);
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
        let (tx0, tx1) = (x0 / TILE, (x1 - 1) / TILE + 1);
        let (ty0, ty1) = (y0 / TILE, (y1 - 1) / TILE + 1);
        let nx = self.nx;
        for ty in ty0..ty1 {
            let ya = (ty * TILE).max(self.by.0);
            let yb = ((ty + 1) * TILE).min(self.by.1);
            for tx in tx0..tx1 {
                let xa = (tx * TILE).max(self.bx.0);
                let xb = ((tx + 1) * TILE).min(self.bx.1);
                let (mut best, mut bi) = (-1.0f64, 0);
                for y in ya..yb {
                    let r = y * nx;
                    let row = &img[r + xa..r + xb];
                    let m = &mask[r + xa..r + xb];
                    // Maximum first (vectorises), position only when it improves.
                    let rmax = row
                        .iter()
                        .zip(m)
                        .fold(-1.0f64, |acc, (v, w)| acc.max(v.abs() * w));
                    if rmax > best {
                        best = rmax;
                        let off = row
                            .iter()
                            .zip(m)
                            .position(|(v, w)| v.abs() * w == rmax)
                            .unwrap_or(0);
                        bi = r + xa + off;
                    }
                }
                self.tile_max[ty * self.ntx + tx] = best;
                self.tile_idx[ty * self.ntx + tx] = bi;
            }
            let tiles = &self.tile_max[ty * self.ntx..(ty + 1) * self.ntx];
            let (mut best, mut bt) = (-1.0f64, 0);
            for (t, &v) in tiles.iter().enumerate() {
                if v > best {
                    best = v;
                    bt = t;
                }
            }
            self.row_max[ty] = best;
            self.row_idx[ty] = self.tile_idx[ty * self.ntx + bt];
        }
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
        let mut rng = crate::sim::Rng::new(3);
        let mut img: Vec<f64> = (0..nx * ny).map(|_| rng.normal()).collect();
        let mask: Vec<f64> = (0..nx * ny)
            .map(|i| if (i % nx) > 5 { 1.0 } else { 0.0 })
            .collect();
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
        }
    }
}
