//! Exact direct Fourier transforms — the oracles the gridder is tested against:
//! predict from point components or an image, and invert, the exact adjoint of the image
//! predict. Measurement equation (DESIGN.md; Thompson, Moran & Swenson 2017, eq. 3.7):
//! V(u,v,w) = Σ I(l,m)/n · exp(−2πi(ul + vm + w(n−1))), u, v, w in wavelengths.
//!
//! Everything is f64; each phase is formed in turns, reduced to [−½, ½] and only then
//! multiplied by 2π, so large |uvw| lose no accuracy. Rows (predict) or image rows (invert)
//! run in parallel with rayon.

use ndarray::Array2;
use ndarray::Axis;
use ndarray::parallel::prelude::*;
use num_complex::Complex64;

use super::sky::SkyModel;
use crate::coords::{Lmn, RaDec, UvwMetres};
use crate::image::{Image, ImageGeometry};
use crate::{ImagingError, SPEED_OF_LIGHT};

/// exp(−2πi·t): the phase in turns is reduced modulo 1 before `sin_cos`.
#[inline]
fn phasor_minus(turns: f64) -> Complex64 {
    let f = turns - turns.round();
    let (s, c) = (std::f64::consts::TAU * f).sin_cos();
    Complex64::new(c, -s)
}

/// A direction as it enters the phase: l, m and n − 1 (cancellation-free).
#[derive(Debug, Clone, Copy)]
struct Term {
    l: f64,
    m: f64,
    nm1: f64,
}

impl Term {
    fn new(lmn: Lmn) -> Self {
        Self {
            l: lmn.l,
            m: lmn.m,
            nm1: lmn.n_minus_one(),
        }
    }

    /// ul + vm + w(n−1) in metres for a baseline in metres.
    #[inline]
    fn path(&self, p: &UvwMetres) -> f64 {
        p.u * self.l + p.v * self.m + p.w * self.nm1
    }
}

fn check_geometry(uvw_r: &[UvwMetres], freq_c: &[f64]) -> Result<(), ImagingError> {
    if let Some(i) = uvw_r
        .iter()
        .position(|p| !(p.u.is_finite() && p.v.is_finite() && p.w.is_finite()))
    {
        return Err(ImagingError::NonFinite {
            name: "uvw".into(),
            index: i,
        });
    }
    if let Some(i) = freq_c.iter().position(|f| !(f.is_finite() && *f > 0.0)) {
        return Err(ImagingError::invalid(
            "freq",
            format!(
                "channel {i} has frequency {} Hz; must be positive",
                freq_c[i]
            ),
        ));
    }
    Ok(())
}

/// V[row, chan] = Σ_s amp(s, chan) · exp(−2πi · path_s(row) · ν_chan / c).
fn predict_terms(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    terms: &[Term],
    amp: impl Fn(usize, usize) -> f64 + Sync,
) -> Array2<Complex64> {
    let scale_c: Vec<f64> = freq_c.iter().map(|f| f / SPEED_OF_LIGHT).collect();
    let mut vis_rc = Array2::<Complex64>::zeros((uvw_r.len(), freq_c.len()));
    vis_rc
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(uvw_r.par_iter())
        .for_each(|(mut row_c, p)| {
            for (s, t) in terms.iter().enumerate() {
                let path = t.path(p);
                for (c, sc) in scale_c.iter().enumerate() {
                    row_c[c] += amp(s, c) * phasor_minus(path * sc);
                }
            }
        });
    vis_rc
}

/// Visibilities of point components, [row, chan]:
/// V = Σ_s S_s(ν) · exp(−2πi(ul + vm + w(n−1))), with (l, m, n) of each source relative to
/// `phase_centre` (`RaDec::to_lmn`). No 1/n: a point source's flux is already an integral
/// over solid angle. Sources on or behind the tangent plane's horizon (n ≤ 0) are errors.
pub fn predict_components(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    phase_centre: RaDec,
    sky: &SkyModel,
) -> Result<Array2<Complex64>, ImagingError> {
    check_geometry(uvw_r, freq_c)?;
    sky.validate()?;
    let mut terms = Vec::with_capacity(sky.sources.len());
    for (i, s) in sky.sources.iter().enumerate() {
        let lmn = s.dir.to_lmn(phase_centre);
        if lmn.n <= 0.0 {
            return Err(ImagingError::invalid(
                format!("sources[{i}]"),
                "more than 90° from the phase centre (n ≤ 0)",
            ));
        }
        terms.push(Term::new(lmn));
    }
    let mut flux_sc = Array2::<f64>::zeros((sky.sources.len(), freq_c.len()));
    for ((s, c), v) in flux_sc.indexed_iter_mut() {
        *v = sky.sources[s].flux_at(freq_c[c], sky.ref_freq_hz);
    }
    Ok(predict_terms(uvw_r, freq_c, &terms, |s, c| flux_sc[[s, c]]))
}

/// Visibilities of an image, [row, chan]: V = Σ_pixels I(x,y)/n · exp(−2πi(ul + vm + w(n−1))),
/// (l, m) from `ImageGeometry::pixel_to_lm`, the image's phase centre being the
/// visibilities'. Zero pixels are skipped.
pub fn predict_image(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    image: &Image,
) -> Result<Array2<Complex64>, ImagingError> {
    check_geometry(uvw_r, freq_c)?;
    let geom = &image.geom;
    geom.validate()?;
    check_image_shape(image)?;
    let mut terms = Vec::new();
    let mut amp_p = Vec::new();
    for (k, ((y, x), &v)) in image.data_yx.indexed_iter().enumerate() {
        if !v.is_finite() {
            return Err(ImagingError::NonFinite {
                name: "image".into(),
                index: k,
            });
        }
        if v == 0.0 {
            continue;
        }
        let lmn = pixel_lmn(geom, x, y)?;
        terms.push(Term::new(lmn));
        amp_p.push(v / lmn.n);
    }
    Ok(predict_terms(uvw_r, freq_c, &terms, |s, _| amp_p[s]))
}

/// The exact adjoint of [`predict_image`], not normalised:
/// D(x,y) = (1/n) · Re Σ_{row,chan} weight · vis · exp(+2πi(ul + vm + w(n−1))).
/// The caller divides by the sum of weights for a dirty image in Jy/beam.
///
/// (predict_image maps a real image to complex visibilities; with the real inner product
/// Re⟨a, b⟩ on visibilities its adjoint applied to weight·vis is the real part above.)
pub fn invert_image(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    vis_rc: &Array2<Complex64>,
    weight_rc: &Array2<f64>,
    geom: &ImageGeometry,
) -> Result<Image, ImagingError> {
    check_geometry(uvw_r, freq_c)?;
    geom.validate()?;
    let want = (uvw_r.len(), freq_c.len());
    for (name, dim) in [("vis", vis_rc.dim()), ("weight", weight_rc.dim())] {
        if dim != want {
            return Err(ImagingError::ShapeMismatch {
                name: name.into(),
                expected: format!("[{}, {}]", want.0, want.1),
                got: format!("[{}, {}]", dim.0, dim.1),
            });
        }
    }
    if let Some(i) = vis_rc
        .iter()
        .position(|v| !(v.re.is_finite() && v.im.is_finite()))
    {
        return Err(ImagingError::NonFinite {
            name: "vis".into(),
            index: i,
        });
    }
    if let Some(i) = weight_rc.iter().position(|w| !w.is_finite()) {
        return Err(ImagingError::NonFinite {
            name: "weight".into(),
            index: i,
        });
    }
    // Only non-zero weighted samples contribute: per row, the list (ν/c, w·V).
    let scale_c: Vec<f64> = freq_c.iter().map(|f| f / SPEED_OF_LIGHT).collect();
    let samples_r: Vec<Vec<(f64, Complex64)>> = (0..uvw_r.len())
        .map(|r| {
            (0..freq_c.len())
                .filter_map(|c| {
                    let wv = weight_rc[[r, c]] * vis_rc[[r, c]];
                    (wv != Complex64::new(0.0, 0.0)).then_some((scale_c[c], wv))
                })
                .collect()
        })
        .collect();
    // Pixel lmn up front so errors surface before the parallel loop.
    let mut lmn_yx = Array2::<Lmn>::default((geom.npix_y, geom.npix_x));
    for ((y, x), v) in lmn_yx.indexed_iter_mut() {
        *v = pixel_lmn(geom, x, y)?;
    }
    let mut img = Image::zeros(*geom);
    img.data_yx
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(lmn_yx.axis_iter(Axis(0)).into_par_iter())
        .for_each(|(mut out_x, lmn_x)| {
            for (o, lmn) in out_x.iter_mut().zip(lmn_x.iter()) {
                let t = Term::new(*lmn);
                let mut acc = 0.0;
                for (p, samples) in uvw_r.iter().zip(&samples_r) {
                    let path = t.path(p);
                    for &(sc, wv) in samples {
                        // Re[wv · exp(+2πiφ)] = Re[wv · conj(exp(−2πiφ))].
                        let e = phasor_minus(path * sc);
                        acc += wv.re * e.re + wv.im * e.im;
                    }
                }
                *o = acc / lmn.n;
            }
        });
    Ok(img)
}

fn check_image_shape(image: &Image) -> Result<(), ImagingError> {
    let g = &image.geom;
    if image.data_yx.dim() != (g.npix_y, g.npix_x) {
        return Err(ImagingError::ShapeMismatch {
            name: "image".into(),
            expected: format!("[{}, {}]", g.npix_y, g.npix_x),
            got: format!("[{}, {}]", image.data_yx.dim().0, image.data_yx.dim().1),
        });
    }
    Ok(())
}

fn pixel_lmn(geom: &ImageGeometry, x: usize, y: usize) -> Result<Lmn, ImagingError> {
    let (l, m) = geom.pixel_to_lm(x as f64, y as f64);
    Lmn::from_lm(l, m).filter(|p| p.n > 0.0).ok_or_else(|| {
        ImagingError::invalid("cell", format!("pixel ({x}, {y}) is beyond the horizon"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::Rng;
    use crate::sim::sky::PointSource;

    fn random_uvw(n: usize, scale: f64, seed: u64) -> Vec<UvwMetres> {
        let mut r = Rng::new(seed);
        (0..n)
            .map(|_| {
                UvwMetres::new(
                    scale * r.normal(),
                    scale * r.normal(),
                    0.3 * scale * r.normal(),
                )
            })
            .collect()
    }

    fn one_source(dir: RaDec, flux: f64, alpha: f64) -> SkyModel {
        SkyModel {
            sources: vec![PointSource {
                dir,
                flux_jy: flux,
                spectral_index: alpha,
            }],
            ref_freq_hz: 1e8,
        }
    }

    #[test]
    fn source_at_phase_centre_gives_its_flux_everywhere() {
        let pc = RaDec::from_degrees(15.0, -45.0);
        let uvw = random_uvw(200, 3000.0, 1);
        let freq = [0.8e8, 1e8, 1.2e8];
        let sky = one_source(pc, 2.5, -0.7);
        let v = predict_components(&uvw, &freq, pc, &sky).unwrap();
        for ((_, c), z) in v.indexed_iter() {
            let s = 2.5 * (freq[c] / 1e8).powf(-0.7);
            assert!((z.re - s).abs() < 1e-14 && z.im.abs() < 1e-14);
        }
    }

    #[test]
    fn off_centre_component_matches_a_direct_evaluation() {
        // Independent evaluation: n − 1 directly and std's complex exponential.
        let pc = RaDec::from_degrees(15.0, -45.0);
        let dir = RaDec::from_degrees(17.0, -43.0);
        let uvw = random_uvw(50, 5000.0, 2);
        let freq = [1.3e8];
        let v = predict_components(&uvw, &freq, pc, &one_source(dir, 1.0, 0.0)).unwrap();
        let (sd, cd) = dir.dec.sin_cos();
        let (sd0, cd0) = pc.dec.sin_cos();
        let dra = dir.ra - pc.ra;
        let (l, m) = (cd * dra.sin(), sd * cd0 - cd * sd0 * dra.cos());
        let n = (1.0 - l * l - m * m).sqrt();
        for (r, p) in uvw.iter().enumerate() {
            let k = freq[0] / SPEED_OF_LIGHT;
            let phase = -2.0 * std::f64::consts::PI * k * (p.u * l + p.v * m + p.w * (n - 1.0));
            let want = Complex64::from_polar(1.0, phase);
            // |phase| ≲ 1e3 rad here, so the direct form is good to ~1e-12.
            assert!((v[[r, 0]] - want).norm() < 1e-11, "row {r}");
        }
    }

    #[test]
    fn centre_pixel_equals_centre_component_and_off_centre_pixels_carry_n() {
        let pc = RaDec::from_degrees(0.0, -30.0);
        let geom = ImageGeometry::square(32, 0.01, pc, 1e8, 1e6).unwrap();
        let uvw = random_uvw(100, 300.0, 3);
        let freq = [0.9e8, 1.1e8];
        let mut img = Image::zeros(geom);
        img.data_yx[[16, 16]] = 1.0;
        let vi = predict_image(&uvw, &freq, &img).unwrap();
        let centre = geom.pixel_to_radec(16.0, 16.0).unwrap();
        let vc = predict_components(&uvw, &freq, pc, &one_source(centre, 1.0, 0.0)).unwrap();
        assert!(vi.iter().zip(&vc).all(|(a, b)| (a - b).norm() < 1e-13));
        // A source far off-centre (l ≈ 0.1, n ≈ 0.99) on a pixel centre.
        let dir = geom.pixel_to_radec(6.0, 25.0).unwrap();
        let sky = one_source(dir, 3.0, 0.0);
        let vi = predict_image(&uvw, &freq, &sky.to_image(&geom, 1e8).unwrap()).unwrap();
        let vc = predict_components(&uvw, &freq, pc, &sky).unwrap();
        assert!(vi.iter().zip(&vc).all(|(a, b)| (a - b).norm() < 1e-12));
    }

    #[test]
    fn invert_is_the_exact_adjoint_of_predict_image() {
        // Re⟨P I, W V⟩ = ⟨I, invert(V, W)⟩ for a wide field (|l| up to 0.16: w-terms matter).
        let pc = RaDec::from_degrees(40.0, -60.0);
        let geom = ImageGeometry::square(32, 0.01, pc, 1e8, 1e6).unwrap();
        let uvw = random_uvw(300, 200.0, 4);
        let freq = [0.8e8, 1e8, 1.2e8];
        let mut rng = Rng::new(5);
        let mut img = Image::zeros(geom);
        img.data_yx.mapv_inplace(|_| rng.normal());
        let vis = Array2::from_shape_fn((300, 3), |_| Complex64::new(rng.normal(), rng.normal()));
        let wgt = Array2::from_shape_fn((300, 3), |_| rng.uniform());
        let pi = predict_image(&uvw, &freq, &img).unwrap();
        let lhs: f64 = pi
            .iter()
            .zip(&vis)
            .zip(&wgt)
            .map(|((a, b), w)| (a.conj() * b).re * w)
            .sum();
        let d = invert_image(&uvw, &freq, &vis, &wgt, &geom).unwrap();
        let rhs: f64 = img.data_yx.iter().zip(&d.data_yx).map(|(a, b)| a * b).sum();
        let scale = lhs.abs().max(rhs.abs());
        assert!((lhs - rhs).abs() < 1e-10 * scale, "{lhs} vs {rhs}");
    }

    #[test]
    fn dirty_image_of_a_point_source_peaks_at_flux_over_n() {
        // D(p) = (1/n_p) Σ_rc w S e^{−iφ} e^{+iφ} = S Σw / n_p at the source pixel.
        let pc = RaDec::from_degrees(0.0, -30.0);
        let geom = ImageGeometry::square(32, 0.005, pc, 1e8, 1e6).unwrap();
        let uvw = random_uvw(400, 500.0, 6);
        let freq = [1e8];
        let dir = geom.pixel_to_radec(10.0, 20.0).unwrap();
        let n = dir.to_lmn(pc).n;
        let vis = predict_components(&uvw, &freq, pc, &one_source(dir, 2.0, 0.0)).unwrap();
        let wgt = Array2::from_elem((400, 1), 1.0);
        let d = invert_image(&uvw, &freq, &vis, &wgt, &geom).unwrap();
        let (peak, x, y) = d.peak();
        assert_eq!((x, y), (10, 20));
        assert!((peak / 400.0 - 2.0 / n).abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let pc = RaDec::default();
        let geom = ImageGeometry::square(16, 0.01, pc, 1e8, 1e6).unwrap();
        let uvw = random_uvw(4, 10.0, 7);
        let vis = Array2::<Complex64>::zeros((4, 1));
        let wgt = Array2::<f64>::ones((3, 1));
        assert!(matches!(
            invert_image(&uvw, &[1e8], &vis, &wgt, &geom),
            Err(ImagingError::ShapeMismatch { .. })
        ));
        assert!(predict_components(&uvw, &[-1.0], pc, &one_source(pc, 1.0, 0.0)).is_err());
        let behind = one_source(RaDec::new(std::f64::consts::PI, 0.0), 1.0, 0.0);
        assert!(predict_components(&uvw, &[1e8], pc, &behind).is_err());
        let mut bad = uvw.clone();
        bad[2].w = f64::NAN;
        assert!(predict_components(&bad, &[1e8], pc, &one_source(pc, 1.0, 0.0)).is_err());
    }
}
