//! Wide-field imaging advice after RASCIL's `advise_wide_field`: cell size from the
//! synthesised beam, image size from the primary beam and a guard band, w-stacking planes
//! from the w range; plus FFT-friendly sizes.
//!
//! Definitions as in RASCIL (`rascil.processing_components.imaging.base`):
//! synthesised beam = 1/B_max (rad, B_max in wavelengths at the highest frequency);
//! cell = beam / oversampling; primary beam FoV = λ_max/D (RASCIL uses no 1.1 factor);
//! image FoV = guard_band · primary beam FoV; w step = √(2 ΔA)/(π FoV²) with ΔA the allowed
//! coherence loss (Cornwell, Humphreys & Voronkov 2012, eq. 24); w planes =
//! max(1, ⌊2 w_max / w step⌋). Differences: B_max here is the largest projected
//! √(u² + v²) (RASCIL takes the largest |u|, |v| or |w| component), and npix is rounded up
//! to an even 2^a 3^b 5^c ≥ 16 (RASCIL rounds to nearest, then offers several roundings).

use crate::vis::VisBlock;
use crate::{ImagingError, SPEED_OF_LIGHT};

/// Tunables of the advice, defaults as RASCIL's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdviceParams {
    /// Pixels per synthesised beam (RASCIL default 3).
    pub oversampling_synthesised_beam: f64,
    /// Image FoV in primary-beam widths (RASCIL default 6).
    pub guard_band_image: f64,
    /// Allowed coherence loss ΔA for the w sampling (RASCIL default 0.02).
    pub del_a: f64,
    /// Optional upper limit on npix (the advised size is reduced to the largest even
    /// 2^a 3^b 5^c not above it, keeping the cell).
    pub npix_cap: Option<usize>,
}

impl Default for AdviceParams {
    fn default() -> Self {
        Self {
            oversampling_synthesised_beam: 3.0,
            guard_band_image: 6.0,
            del_a: 0.02,
            npix_cap: None,
        }
    }
}

/// The advice; angles in radians, baselines in wavelengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WideFieldAdvice {
    pub max_baseline_lambda: f64,
    pub w_max_lambda: f64,
    /// Wavelength used for the primary beam (the longest), m.
    pub wavelength_m: f64,
    pub diameter_m: f64,
    pub synthesised_beam_rad: f64,
    pub cell_rad: f64,
    pub primary_beam_fov_rad: f64,
    pub image_fov_rad: f64,
    /// ⌈image FoV / cell⌉ before FFT rounding and capping.
    pub npix_exact: usize,
    /// Advised pixels per side: even, 2^a 3^b 5^c, ≥ 16, capped if asked.
    pub npix: usize,
    /// True when `npix_cap` reduced npix (the image then covers less than `image_fov_rad`).
    pub npix_capped: bool,
    /// w sampling for the primary beam, wavelengths (RASCIL's default `wstep`).
    pub w_step_lambda: f64,
    /// w planes for the primary beam (RASCIL's `vis_slices`).
    pub w_planes: usize,
    /// w sampling and planes for the whole image FoV.
    pub w_step_image_lambda: f64,
    pub w_planes_image: usize,
    /// Time sampling that keeps smearing below a beam at the image edge, s (RASCIL's
    /// `time_sampling_image` = 86400 · beam / image FoV).
    pub time_sampling_image_s: f64,
}

/// Advice from the longest projected baseline and largest |w| (wavelengths, at the highest
/// frequency), the dish/station diameter and the longest wavelength (m).
pub fn advise_wide_field(
    max_baseline_lambda: f64,
    w_max_lambda: f64,
    diameter_m: f64,
    wavelength_m: f64,
    params: &AdviceParams,
) -> Result<WideFieldAdvice, ImagingError> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(ImagingError::invalid(
                name,
                format!("{v}; must be positive"),
            ))
        }
    };
    positive("max_baseline_lambda", max_baseline_lambda)?;
    positive("diameter", diameter_m)?;
    positive("wavelength", wavelength_m)?;
    positive(
        "oversampling_synthesised_beam",
        params.oversampling_synthesised_beam,
    )?;
    positive("guard_band_image", params.guard_band_image)?;
    if !(w_max_lambda.is_finite() && w_max_lambda >= 0.0) {
        return Err(ImagingError::invalid(
            "w_max_lambda",
            format!("{w_max_lambda}; must be finite and non-negative"),
        ));
    }
    if !(params.del_a > 0.0 && params.del_a < 1.0) {
        return Err(ImagingError::invalid(
            "del_a",
            format!("{}; must be in (0, 1)", params.del_a),
        ));
    }
    if let Some(cap) = params.npix_cap
        && cap < 16
    {
        return Err(ImagingError::invalid(
            "npix_cap",
            format!("{cap}; must be at least 16"),
        ));
    }

    let beam = 1.0 / max_baseline_lambda;
    let cell = beam / params.oversampling_synthesised_beam;
    let pb_fov = wavelength_m / diameter_m;
    let image_fov = params.guard_band_image * pb_fov;
    let ratio = (image_fov / cell).ceil();
    // 2^40 pixels per side is far beyond any image; beyond it, f64 → usize is meaningless.
    const NPIX_LIMIT: f64 = (1u64 << 40) as f64;
    let (npix_exact, npix, capped) = if ratio <= NPIX_LIMIT {
        let exact = ratio.max(1.0) as usize;
        let nice = good_fft_size_235(exact.max(16));
        match params.npix_cap {
            Some(cap) if nice > cap => (exact, largest_235_even_at_most(cap), true),
            _ => (exact, nice, false),
        }
    } else if let Some(cap) = params.npix_cap {
        (usize::MAX, largest_235_even_at_most(cap), true)
    } else {
        return Err(ImagingError::Unsupported(format!(
            "advised image of {ratio:.3e} pixels per side is too large; set an npix cap"
        )));
    };
    let w_step = |fov: f64| (2.0 * params.del_a).sqrt() / (std::f64::consts::PI * fov * fov);
    let planes = |step: f64| ((2.0 * w_max_lambda / step).floor() as usize).max(1);
    let (ws_pb, ws_img) = (w_step(pb_fov), w_step(image_fov));
    Ok(WideFieldAdvice {
        max_baseline_lambda,
        w_max_lambda,
        wavelength_m,
        diameter_m,
        synthesised_beam_rad: beam,
        cell_rad: cell,
        primary_beam_fov_rad: pb_fov,
        image_fov_rad: image_fov,
        npix_exact,
        npix,
        npix_capped: capped,
        w_step_lambda: ws_pb,
        w_planes: planes(ws_pb),
        w_step_image_lambda: ws_img,
        w_planes_image: planes(ws_img),
        time_sampling_image_s: 86_400.0 * beam / image_fov,
    })
}

/// Advice for a visibility block: baselines and w at the highest frequency, the primary
/// beam at the lowest; rows with no unflagged channel are ignored.
pub fn advise_for_block(
    block: &VisBlock,
    diameter_m: f64,
    params: &AdviceParams,
) -> Result<WideFieldAdvice, ImagingError> {
    block.validate()?;
    let f_max = block.freq_c.iter().copied().fold(f64::MIN, f64::max);
    let f_min = block.freq_c.iter().copied().fold(f64::MAX, f64::min);
    let (mut b_max, mut w_max) = (0.0f64, 0.0f64);
    let mut any = false;
    for (r, p) in block.uvw_r.iter().enumerate() {
        if block.flag_rc.row(r).iter().all(|&f| f) {
            continue;
        }
        any = true;
        b_max = b_max.max(p.uv_length());
        w_max = w_max.max(p.w.abs());
    }
    if !any {
        return Err(ImagingError::Unsupported(
            "advise: every sample is flagged".into(),
        ));
    }
    let k = f_max / SPEED_OF_LIGHT;
    if b_max == 0.0 {
        return Err(ImagingError::invalid(
            "uvw",
            "all projected baselines are zero",
        ));
    }
    advise_wide_field(
        b_max * k,
        w_max * k,
        diameter_m,
        SPEED_OF_LIGHT / f_min,
        params,
    )
}

/// The smallest even n' ≥ n whose prime factors are all in {2, 3, 5, 7} (sizes rustfft and
/// the gridder transform fast); 2 for n ≤ 2, `usize::MAX` if none fits (n > 2^63).
pub fn good_fft_size(n: usize) -> usize {
    smallest_smooth_even(n, &[2, 3, 5, 7])
}

/// The smallest even n' ≥ n with prime factors in {2, 3, 5} only.
pub fn good_fft_size_235(n: usize) -> usize {
    smallest_smooth_even(n, &[2, 3, 5])
}

/// Sizes up to this are found by trying even numbers upwards; above, smooth numbers
/// thin out and enumerating them is cheaper.
const SCAN_LIMIT: usize = 1 << 20;

/// The smallest even number ≥ n whose factors are all in `primes`. Up to
/// [`SCAN_LIMIT`] it tries the even numbers from n up: smooth numbers are dense there (a
/// gap of a few hundred at 10⁵), so that is a few hundred divisions where enumerating
/// every smooth number below n visits thousands (the planner asks this for every
/// kernel and sampled window). Larger n enumerate the smooth numbers.
fn smallest_smooth_even(n: usize, primes: &[usize]) -> usize {
    let smooth = |mut m: usize| {
        for &p in primes {
            while m.is_multiple_of(p) {
                m /= p;
            }
        }
        m == 1
    };
    if n <= SCAN_LIMIT {
        let mut m = n.max(2).next_multiple_of(2);
        while !smooth(m) {
            m += 2;
        }
        return m;
    }
    fn walk(v: usize, from: usize, primes: &[usize], target: usize, best: &mut usize) {
        if v >= target {
            *best = (*best).min(v);
            return;
        }
        for (i, &p) in primes.iter().enumerate().skip(from) {
            if let Some(nv) = v.checked_mul(p)
                && nv < *best
            {
                walk(nv, i, primes, target, best);
            }
        }
    }
    let mut best = usize::MAX;
    walk(2, 0, primes, n, &mut best);
    best
}

/// The largest even 2^a 3^b 5^c ≤ `cap` (cap ≥ 2).
fn largest_235_even_at_most(cap: usize) -> usize {
    fn walk(v: usize, from: usize, cap: usize, best: &mut usize) {
        *best = (*best).max(v);
        for (i, &p) in [2usize, 3, 5].iter().enumerate().skip(from) {
            if let Some(nv) = v.checked_mul(p)
                && nv <= cap
            {
                walk(nv, i, cap, best);
            }
        }
    }
    let mut best = 2;
    walk(2, 0, cap.max(2), &mut best);
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::{RaDec, UvwMetres};
    use crate::sim::invalid_name as name;

    fn is_smooth(mut n: usize, primes: &[usize]) -> bool {
        for &p in primes {
            while n.is_multiple_of(p) {
                n /= p;
            }
        }
        n == 1
    }

    #[test]
    fn fft_sizes_against_brute_force() {
        for n in 0..3000usize {
            let want = (n.max(2)..)
                .find(|&m| m.is_multiple_of(2) && is_smooth(m, &[2, 3, 5, 7]))
                .unwrap();
            assert_eq!(good_fft_size(n), want, "n = {n}");
            let want = (n.max(2)..)
                .find(|&m| m.is_multiple_of(2) && is_smooth(m, &[2, 3, 5]))
                .unwrap();
            assert_eq!(good_fft_size_235(n), want, "n = {n}");
        }
        assert_eq!(good_fft_size(1 << 40), 1 << 40);
        assert_eq!(good_fft_size(1_000_001), 1_000_188); // 2²·3⁶·7³
        assert!(is_smooth(1_000_188, &[2, 3, 5, 7]));
        assert_eq!(good_fft_size(usize::MAX), usize::MAX);
        // The scan below SCAN_LIMIT and the enumeration above agree where they meet.
        for n in [SCAN_LIMIT - 3, SCAN_LIMIT, SCAN_LIMIT + 1] {
            let m = good_fft_size(n);
            assert!(
                m >= n && m.is_multiple_of(2) && is_smooth(m, &[2, 3, 5, 7]),
                "{n} -> {m}"
            );
            assert!(
                (n..m)
                    .filter(|k| k.is_multiple_of(2))
                    .all(|k| !is_smooth(k, &[2, 3, 5, 7]))
            );
        }
        for cap in [16usize, 17, 100, 1000, 4097] {
            let want = (2..=cap)
                .rev()
                .find(|&m| m.is_multiple_of(2) && is_smooth(m, &[2, 3, 5]))
                .unwrap();
            assert_eq!(largest_235_even_at_most(cap), want);
        }
    }

    #[test]
    fn rascil_definitions() {
        // B = 1000 λ, D = 35 m, λ = 3 m: beam 1e-3 rad, cell 3.333e-4, PB 3/35 rad,
        // image FoV 6·3/35 = 0.5143 rad → 1543 px → 1600 (2^6·5²).
        let a = advise_wide_field(1000.0, 50.0, 35.0, 3.0, &AdviceParams::default()).unwrap();
        assert!((a.synthesised_beam_rad - 1e-3).abs() < 1e-18);
        assert!((a.cell_rad - 1e-3 / 3.0).abs() < 1e-18);
        assert!((a.primary_beam_fov_rad - 3.0 / 35.0).abs() < 1e-16);
        assert!((a.image_fov_rad - 18.0 / 35.0).abs() < 1e-15);
        assert_eq!(a.npix_exact, 1543);
        assert_eq!(a.npix, 1600);
        // w step for the primary beam: √0.04/(π (3/35)²) = 8.665 λ; planes ⌊100/8.665⌋ = 11.
        let ws = 0.2 / (std::f64::consts::PI * (3.0f64 / 35.0).powi(2));
        assert!((a.w_step_lambda - ws).abs() < 1e-12);
        assert_eq!(a.w_planes, 11);
        assert_eq!(a.w_planes_image, 415); // ⌊100 · 36 / ws⌋ = ⌊415.46⌋
        assert!((a.time_sampling_image_s - 86_400.0 * 1e-3 * 35.0 / 18.0).abs() < 1e-9);
        let capped = AdviceParams {
            npix_cap: Some(999),
            ..Default::default()
        };
        let c = advise_wide_field(1000.0, 50.0, 35.0, 3.0, &capped).unwrap();
        // Largest even 2^a 3^b 5^c ≤ 999 is 972 = 2²·3⁵.
        assert_eq!((c.npix, c.npix_capped), (972, true));
        // Small images are raised to 16 pixels.
        let s = advise_wide_field(1.0, 0.0, 35.0, 3.0, &AdviceParams::default()).unwrap();
        assert_eq!((s.npix, s.w_planes), (16, 1));
    }

    #[test]
    fn block_advice_uses_highest_and_lowest_frequency() {
        let uvw = vec![
            UvwMetres::new(300.0, 400.0, 20.0),
            UvwMetres::new(-10.0, 0.0, -60.0),
        ];
        let c = SPEED_OF_LIGHT;
        let mut b = VisBlock::zeros(
            uvw,
            vec![c / 3.0, c / 2.0],
            vec![0, 0],
            vec![1, 2],
            vec![0.0, 0.0],
            RaDec::default(),
        );
        let a = advise_for_block(&b, 35.0, &AdviceParams::default()).unwrap();
        // Longest |uv| = 500 m at λ = 2 m: 250 λ; |w| 60 m → 30 λ; primary beam at λ = 3 m.
        assert!((a.max_baseline_lambda - 250.0).abs() < 1e-9);
        assert!((a.w_max_lambda - 30.0).abs() < 1e-9);
        assert!((a.wavelength_m - 3.0).abs() < 1e-12);
        // Flagging the long baseline leaves the short one (10 m → 5 λ).
        b.flag_rc.row_mut(0).fill(true);
        let a = advise_for_block(&b, 35.0, &AdviceParams::default()).unwrap();
        assert!((a.max_baseline_lambda - 5.0).abs() < 1e-9);
        b.flag_rc.fill(true);
        assert!(advise_for_block(&b, 35.0, &AdviceParams::default()).is_err());
    }

    #[test]
    fn bad_parameters_are_named() {
        let d = AdviceParams::default();
        assert_eq!(
            name(advise_wide_field(0.0, 0.0, 35.0, 3.0, &d)),
            "max_baseline_lambda"
        );
        assert_eq!(name(advise_wide_field(1e3, 0.0, -1.0, 3.0, &d)), "diameter");
        assert_eq!(
            name(advise_wide_field(1e3, f64::NAN, 35.0, 3.0, &d)),
            "w_max_lambda"
        );
        let p = AdviceParams {
            npix_cap: Some(8),
            ..d
        };
        assert_eq!(name(advise_wide_field(1e3, 0.0, 35.0, 3.0, &p)), "npix_cap");
        let p = AdviceParams {
            guard_band_image: 0.0,
            ..d
        };
        assert_eq!(
            name(advise_wide_field(1e3, 0.0, 35.0, 3.0, &p)),
            "guard_band_image"
        );
        assert!(matches!(
            advise_wide_field(1e30, 0.0, 35.0, 3.0, &d),
            Err(ImagingError::Unsupported(_))
        ));
    }
}
