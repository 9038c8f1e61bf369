//! Cost model of one frequency window: gridding ∝ visibilities × support² (per w-plane
//! touched), FFT ∝ w-planes × padded npix² log npix, from the gridder's own layout
//! choice (`choose_layout_costed`), and memory = grids + image moments + the window.

use aperture_imaging::SPEED_OF_LIGHT;
use aperture_imaging::gridder::{DataExtent, Request, choose_layout_parts};
use aperture_imaging::image::ImageGeometry;

use super::{InputFacts, PlanError};

/// What one window costs one task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostEstimate {
    /// One invert (or one predict) of the window alone, single-threaded seconds.
    pub grid_seconds: f64,
    /// The part of `grid_seconds` that grows with the window's samples.
    pub gridding_seconds: f64,
    /// The part paid once per gridder call (w-plane FFTs and screens): a batch of
    /// windows imaged in one call pays it once.
    pub plane_seconds: f64,
    /// Bytes of the padded complex grid the gridder holds.
    pub grid_bytes: u64,
    pub nu: u32,
    pub support: u32,
    pub nplanes: u32,
}

/// Estimates window `w` of `facts` imaged on `geom` at the requested accuracy.
pub fn estimate_window(
    facts: &InputFacts,
    geom: &ImageGeometry,
    req: &Request,
    w: u32,
) -> Result<CostEstimate, PlanError> {
    let f = facts.window_freq_max(w);
    let k = f / SPEED_OF_LIGHT;
    let data = DataExtent {
        nvis: (facts.rows() * u64::from(facts.channels_per_window)) as usize,
        w_min: 0.0,
        w_max: facts.max_w_m * k,
        uv_extent: (facts.max_uv_m * k * geom.cell).min(0.5),
    };
    let (layout, cost) = choose_layout_parts(geom, &data, req)
        .map_err(|e| PlanError::input("spec.image", e.to_string()))?;
    let bytes_per = if req.double { 16 } else { 8 };
    Ok(CostEstimate {
        grid_seconds: cost.total(),
        gridding_seconds: cost.gridding,
        plane_seconds: cost.planes,
        grid_bytes: (layout.nu * layout.nv) as u64 * bytes_per,
        nu: layout.nu as u32,
        support: layout.kernel.support as u32,
        nplanes: layout.nplanes as u32,
    })
}
