//! The geometry of one gridding run: padded grid size, kernel, w-planes, and the map
//! from a visibility's (u, v, w) to grid and plane coordinates.
//!
//! Grid coordinates are centred: cell (nu/2, nv/2) holds u = v = 0. With image pixel
//! offsets X = x − npix_x/2, Y = y − npix_y/2, l = −X·cell and m = Y·cell, the invert
//! phase e^{2πi(ul + vm)} equals e^{2πi(g_u X/nu + g_v Y/nv)} for
//! g_u = −u·cell·nu, g_v = v·cell·nv (u, v in wavelengths).

use super::kernel::EsKernel;
use crate::ImagingError;
use crate::SPEED_OF_LIGHT;
use crate::coords::UvwMetres;

/// Everything the gridding passes need to agree on.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub npix_x: usize,
    pub npix_y: usize,
    /// Pixel size, radians.
    pub cell: f64,
    /// Padded grid size along u (pairs with x) and v (pairs with y).
    pub nu: usize,
    pub nv: usize,
    /// Oversampling factor σ actually used (≈ nu/npix_x).
    pub sigma: f64,
    pub kernel: EsKernel,
    /// Whether w is handled (w-stacking); without it the flat-sky 2-D transform is used.
    pub wstacking: bool,
    /// Number of w-planes (1 without w-stacking).
    pub nplanes: usize,
    /// w of plane 0 and the plane spacing, wavelengths.
    pub w0: f64,
    pub dw: f64,
    /// Half the range of n − 1 over the image, which spans [−2·c_half, 0].
    pub c_half: f64,
}

/// Where one sample lands: first grid cell and plane, and the fractional offsets
/// z = 2δ − 1 ∈ [−1, 1) used by the piecewise kernels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub iu0: i64,
    pub iv0: i64,
    pub iw0: i64,
    pub zu: f64,
    pub zv: f64,
    pub zw: f64,
    /// The sample was mirrored to w ≥ 0: (u, v, w, V) → (−u, −v, −w, V̄).
    pub flip: bool,
}

impl Layout {
    #[inline(always)]
    fn split(&self, g: f64) -> (i64, f64) {
        let half = self.kernel.support as f64 * 0.5;
        let i0 = (g - half).ceil();
        (i0 as i64, 2.0 * (i0 - g + half) - 1.0)
    }

    /// Grid position of a sample with baseline `uvw` (metres) at frequency `freq_hz`.
    ///
    /// With w-stacking, samples with w < 0 are mirrored to (−u, −v, −w) and their
    /// visibility conjugated: for a real sky V(−u,−v,−w) = V̄(u,v,w), so this is exact and
    /// halves the range of w the planes must cover (as ducc0 does).
    #[inline(always)]
    pub fn position(&self, uvw: UvwMetres, freq_hz: f64) -> Position {
        let flip = self.wstacking && uvw.w < 0.0;
        // A product, not a quotient: this runs once per sample and plane.
        let s = if flip { -freq_hz } else { freq_hz } * (1.0 / SPEED_OF_LIGHT);
        let gu = self.nu as f64 * 0.5 - uvw.u * s * self.cell * self.nu as f64;
        let gv = self.nv as f64 * 0.5 + uvw.v * s * self.cell * self.nv as f64;
        let (iu0, zu) = self.split(gu);
        let (iv0, zv) = self.split(gv);
        let (iw0, zw) = if self.wstacking {
            self.split((uvw.w * s - self.w0) / self.dw)
        } else {
            (0, 0.0)
        };
        Position {
            iu0,
            iv0,
            iw0,
            zu,
            zv,
            zw,
            flip,
        }
    }

    /// Whether the kernel footprint of `p` lies inside the grid and the plane stack.
    #[inline(always)]
    pub fn fits(&self, p: &Position) -> bool {
        let w = self.kernel.support as i64;
        let wp = if self.wstacking { w } else { 1 };
        p.iu0 >= 0
            && p.iv0 >= 0
            && p.iw0 >= 0
            && p.iu0 + w <= self.nu as i64
            && p.iv0 + w <= self.nv as i64
            && p.iw0 + wp <= self.nplanes as i64
    }

    /// The error for a sample whose footprint leaves the grid.
    pub fn out_of_grid_error(&self, uvw: UvwMetres, freq_hz: f64) -> ImagingError {
        let s = freq_hz / SPEED_OF_LIGHT;
        let uv = (uvw.u * s).abs().max((uvw.v * s).abs());
        let max_cell = 0.5 / uv;
        ImagingError::invalid(
            "cell",
            format!(
                "{:.4} arcsec is too coarse for a baseline of {:.1} wavelengths \
                 (u={:.1} m, v={:.1} m at {:.4} MHz): the largest cell that samples it is \
                 {:.4} arcsec",
                self.cell.to_degrees() * 3600.0,
                uv,
                uvw.u,
                uvw.v,
                freq_hz / 1e6,
                max_cell.to_degrees()
                    * 3600.0
                    * (1.0 - self.kernel.support as f64 / self.nu as f64),
            ),
        )
    }

    /// Centre of the image's range of n − 1 (the w-kernel is shifted by it): n − 1 is 0
    /// at the image centre, so the range is [−2·c_half, 0] and its centre −c_half.
    pub fn c_mid(&self) -> f64 {
        -self.c_half
    }

    /// Support in the w direction (1 without w-stacking).
    pub fn w_support(&self) -> usize {
        if self.wstacking {
            self.kernel.support
        } else {
            1
        }
    }

    /// w (wavelengths) of plane `j`.
    pub fn plane_w(&self, j: usize) -> f64 {
        self.w0 + j as f64 * self.dw
    }
}
