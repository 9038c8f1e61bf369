//! The image's natural uv grid and the gridded weight density W_k used by uniform and
//! Briggs weighting, kept as a mergeable object so shards can sum their densities.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::ImagingError;
use crate::image::ImageGeometry;
use crate::vis::VisBlock;

/// The uv grid that an image's FFT samples: `n_u × n_v` cells of size
/// `du = 1/(npix_x·cell)`, `dv = 1/(npix_y·cell)` wavelengths.
///
/// A sample at (u, v) wavelengths belongs to the nearest cell, `k_u = round(u/du)`,
/// `k_v = round(v/dv)`, and lies inside the grid iff `|u/du| ≤ n_u/2` and
/// `|v/dv| ≤ n_v/2`, i.e. `|u|, |v| ≤ 1/(2·cell)`, the Nyquist limit of the image pixel.
/// The grid is periodic like the FFT it stands for, so `k = +n/2` and `k = −n/2` are the
/// same cell (each the other's Hermitian conjugate). Cells are stored centred, `[v, u]`:
/// column `(k_u + n_u/2) mod n_u`, row `(k_v + n_v/2) mod n_v`, so `k = 0` is at
/// `[n_v/2, n_u/2]` and the column index grows with u (not with the image's x, which
/// runs against l).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UvGrid {
    n_u: usize,
    n_v: usize,
    du: f64,
    dv: f64,
}

impl UvGrid {
    /// The natural uv grid of `geom` (validated first).
    pub fn for_image(geom: &ImageGeometry) -> Result<Self, ImagingError> {
        geom.validate()?;
        Ok(Self {
            n_u: geom.npix_x,
            n_v: geom.npix_y,
            du: 1.0 / (geom.npix_x as f64 * geom.cell),
            dv: 1.0 / (geom.npix_y as f64 * geom.cell),
        })
    }

    /// Number of cells along u (= npix_x).
    pub fn n_u(&self) -> usize {
        self.n_u
    }

    /// Number of cells along v (= npix_y).
    pub fn n_v(&self) -> usize {
        self.n_v
    }

    /// Cell size along u, wavelengths.
    pub fn du(&self) -> f64 {
        self.du
    }

    /// Cell size along v, wavelengths.
    pub fn dv(&self) -> f64 {
        self.dv
    }

    /// Shape of a density array over this grid, `(n_v, n_u)`.
    pub fn shape_vu(&self) -> (usize, usize) {
        (self.n_v, self.n_u)
    }

    /// Row-major index (`iv·n_u + iu`) of the cell holding (u, v) in wavelengths, or
    /// `None` when the point lies beyond the Nyquist limit (or is not finite).
    pub fn cell_index(&self, u_lambda: f64, v_lambda: f64) -> Option<usize> {
        let x = u_lambda / self.du;
        let y = v_lambda / self.dv;
        let (hu, hv) = (self.n_u / 2, self.n_v / 2);
        // Written so that NaN fails the test.
        if !(x.abs() <= hu as f64 && y.abs() <= hv as f64) {
            return None;
        }
        // |k| ≤ n/2, so k + n/2 ∈ [0, n]; index n wraps to 0 (the periodic Nyquist cell).
        let iu = (x.round() as i64 + hu as i64) as usize % self.n_u;
        let iv = (y.round() as i64 + hv as i64) as usize % self.n_v;
        Some(iv * self.n_u + iu)
    }

    /// The `[v, u]` position of a row-major cell index.
    pub fn vu_of(&self, index: usize) -> [usize; 2] {
        [index / self.n_u, index % self.n_u]
    }

    /// Index of the cell holding (−u, −v) when `index` holds (u, v).
    pub fn conjugate_index(&self, index: usize) -> usize {
        let (iv, iu) = (index / self.n_u, index % self.n_u);
        ((self.n_v - iv) % self.n_v) * self.n_u + (self.n_u - iu) % self.n_u
    }
}

/// The gridded weight density W_k over a [`UvGrid`], Hermitian-complete: every sample of
/// weight w at cell k adds w to W_k and w to W_{−k} (2w when k = −k). Hence
/// Σ_k W_k = 2 Σ_i w_i over the in-grid samples, and W_k = W_{−k}.
///
/// Memory: one f64 per cell, 8·npix_x·npix_y bytes (128 MiB for 4096², 2 GiB for
/// 16384², 8 GiB for 32768²). Densities of disjoint blocks add ([`UvDensity::merge`]), which
/// is how a distributed "weights map → reduce" stage builds the global density.
#[derive(Debug, Clone, PartialEq)]
pub struct UvDensity {
    grid: UvGrid,
    density_vu: Array2<f64>,
}

impl UvDensity {
    /// An empty density over `grid`.
    pub fn zeros(grid: UvGrid) -> Self {
        Self {
            density_vu: Array2::zeros(grid.shape_vu()),
            grid,
        }
    }

    /// Rebuilds a density from its parts (e.g. read back from storage); checks the shape
    /// and that every cell is finite and non-negative.
    pub fn from_parts(grid: UvGrid, density_vu: Array2<f64>) -> Result<Self, ImagingError> {
        let (nv, nu) = grid.shape_vu();
        if density_vu.dim() != (nv, nu) {
            let (gv, gu) = density_vu.dim();
            return Err(ImagingError::ShapeMismatch {
                name: "density".into(),
                expected: format!("[{nv}, {nu}]"),
                got: format!("[{gv}, {gu}]"),
            });
        }
        for (i, &d) in density_vu.iter().enumerate() {
            if !d.is_finite() {
                return Err(ImagingError::NonFinite {
                    name: "density".into(),
                    index: i,
                });
            }
            if d < 0.0 {
                return Err(ImagingError::invalid(
                    "density",
                    format!("cell {i} is {d}; densities must be non-negative"),
                ));
            }
        }
        Ok(Self { grid, density_vu })
    }

    /// The grid and the `[v, u]` density array.
    pub fn into_parts(self) -> (UvGrid, Array2<f64>) {
        (self.grid, self.density_vu)
    }

    pub fn grid(&self) -> &UvGrid {
        &self.grid
    }

    /// W_k indexed `[v, u]` as described on [`UvGrid`].
    pub fn density_vu(&self) -> &Array2<f64> {
        &self.density_vu
    }

    /// W at a row-major cell index from [`UvGrid::cell_index`]; `None` past the grid.
    pub fn at_index(&self, index: usize) -> Option<f64> {
        self.density_vu.get(self.grid.vu_of(index)).copied()
    }

    /// Grids the effective weights of `block` (validated first; flagged samples count 0).
    /// Returns the number of samples with non-zero weight that fall outside the grid.
    pub fn accumulate(&mut self, block: &VisBlock) -> Result<usize, ImagingError> {
        block.validate()?;
        Ok(self.accumulate_unchecked(block))
    }

    /// [`UvDensity::accumulate`] for a block already validated.
    pub(super) fn accumulate_unchecked(&mut self, block: &VisBlock) -> usize {
        let grid = self.grid;
        let scale_c = wavelength_scale_c(block);
        let cells = &mut self.density_vu;
        let mut n_outside = 0;
        let rows = block.weight_rc.rows().into_iter().zip(block.flag_rc.rows());
        for (uvw, (weight_c, flag_c)) in block.uvw_r.iter().zip(rows) {
            for ((&w, &flagged), &s) in weight_c.iter().zip(&flag_c).zip(&scale_c) {
                if flagged || w == 0.0 {
                    continue;
                }
                match grid.cell_index(uvw.u * s, uvw.v * s) {
                    Some(k) => {
                        cells[grid.vu_of(k)] += w;
                        cells[grid.vu_of(grid.conjugate_index(k))] += w;
                    }
                    None => n_outside += 1,
                }
            }
        }
        n_outside
    }

    /// Adds another density over the same grid (a reduction step).
    pub fn merge(&mut self, other: &UvDensity) -> Result<(), ImagingError> {
        if self.grid != other.grid {
            return Err(ImagingError::ShapeMismatch {
                name: "density grid".into(),
                expected: format!("{:?}", self.grid),
                got: format!("{:?}", other.grid),
            });
        }
        self.density_vu += &other.density_vu;
        Ok(())
    }

    /// Σ_i w_i over the gridded samples, = Σ_k W_k / 2.
    pub fn sum_weights(&self) -> f64 {
        self.density_vu.sum() / 2.0
    }

    /// Number of cells with W_k > 0 (conjugate cells counted separately).
    pub fn n_occupied(&self) -> usize {
        self.density_vu.iter().filter(|&&d| d > 0.0).count()
    }

    /// The weight-averaged density Σ_k W_k² / Σ_k W_k (0 for an empty grid): the mean
    /// cell density seen by a unit of weight. Computed over the Hermitian-complete grid it
    /// equals the same ratio over CASA's/WSClean's folded half-plane grid.
    pub fn mean_density(&self) -> f64 {
        let (s1, s2) = self
            .density_vu
            .iter()
            .fold((0.0, 0.0), |(s1, s2), &d| (s1 + d, s2 + d * d));
        if s1 > 0.0 { s2 / s1 } else { 0.0 }
    }

    /// Briggs's f² = (5·10^(−R))² / (Σ_k W_k² / Σ_k W_k) (Briggs 1995, PhD thesis, ch. 3;
    /// CASA `VisImagingWeight`, WSClean `ImageWeights`), for robust R in −2…2.
    /// Returns 0 for an empty grid, where no sample needs it.
    pub fn briggs_f2(&self, robust: f64) -> Result<f64, ImagingError> {
        super::validate_robust(robust)?;
        Ok(self.briggs_f2_unchecked(robust))
    }

    /// [`UvDensity::briggs_f2`] without the range check on `robust`.
    pub(super) fn briggs_f2_unchecked(&self, robust: f64) -> f64 {
        let mean = self.mean_density();
        if mean > 0.0 {
            let s = 5.0 * 10f64.powf(-robust);
            s * s / mean
        } else {
            0.0
        }
    }
}

/// The gridded weight density of one block over the natural uv grid of `geom`
/// (both validated). Samples outside the grid are left out of the density.
pub fn uv_cell_density(block: &VisBlock, geom: &ImageGeometry) -> Result<UvDensity, ImagingError> {
    let mut density = UvDensity::zeros(UvGrid::for_image(geom)?);
    density.accumulate(block)?;
    Ok(density)
}

/// Metres → wavelengths factor per channel, freq / c.
pub(super) fn wavelength_scale_c(block: &VisBlock) -> Vec<f64> {
    block
        .freq_c
        .iter()
        .map(|f| f / crate::SPEED_OF_LIGHT)
        .collect()
}
