//! Correlation types (POLARIZATION/CORR_TYPE, casacore's `Stokes::StokesTypes`) and how
//! Stokes I and its weight are formed from them.
//!
//! I = (XX + YY)/2 for linear feeds and (RR + LL)/2 for circular ones (Hamaker, Bregman &
//! Sault 1996, A&AS 117, 137, eqs. 8–9, for unit feeds). Each hand's weight is the inverse
//! of its noise variance, so var(I) = (1/w_p + 1/w_q)/4 and w_I = 4/(1/w_p + 1/w_q)
//! (2w when both are w). When one hand is flagged (or has no positive, finite weight or
//! value), I is taken from the other hand alone, with that hand's weight; when both are,
//! the sample is flagged.

use num_complex::Complex64;

/// The name of a casacore Stokes type code (`casacore/measures/Measures/Stokes.h`).
pub fn corr_name(code: i32) -> String {
    const NAMES: [&str; 33] = [
        "Undefined",
        "I",
        "Q",
        "U",
        "V",
        "RR",
        "RL",
        "LR",
        "LL",
        "XX",
        "XY",
        "YX",
        "YY",
        "RX",
        "RY",
        "LX",
        "LY",
        "XR",
        "XL",
        "YR",
        "YL",
        "PP",
        "PQ",
        "QP",
        "QQ",
        "RCircular",
        "LCircular",
        "Linear",
        "Ptotal",
        "Plinear",
        "PFtotal",
        "PFlinear",
        "Pangle",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("{code}?"), |s| (*s).to_owned())
}

/// The CORR_TYPE codes as a readable list, e.g. `XY(10), YX(11)`.
pub fn corr_list(codes: &[i32]) -> String {
    codes
        .iter()
        .map(|&c| format!("{}({c})", corr_name(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

const I: i32 = 1;
const RR: i32 = 5;
const LL: i32 = 8;
const XX: i32 = 9;
const YY: i32 = 12;

/// Which correlations of a cell make Stokes I.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StokesI {
    /// I = (corr p + corr q)/2: the two parallel hands (indices into the correlation axis).
    Parallel { p: usize, q: usize },
    /// The data hold I itself at this correlation index.
    Direct { i: usize },
}

/// The feed basis a correlation set uses, for the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    Linear,
    Circular,
    Stokes,
}

impl Basis {
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Circular => "circular",
            Self::Stokes => "stokes",
        }
    }
}

impl StokesI {
    /// The recipe for a CORR_TYPE list, or `None` when it has neither I nor both parallel
    /// hands of one basis (e.g. only cross hands, or XX alone). Linear wins over circular
    /// when, unusually, both are present; I itself wins over both.
    pub fn from_corr_types(codes: &[i32]) -> Option<(Self, Basis)> {
        let at = |c: i32| codes.iter().position(|&x| x == c);
        if let Some(i) = at(I) {
            return Some((Self::Direct { i }, Basis::Stokes));
        }
        if let (Some(p), Some(q)) = (at(XX), at(YY)) {
            return Some((Self::Parallel { p, q }, Basis::Linear));
        }
        if let (Some(p), Some(q)) = (at(RR), at(LL)) {
            return Some((Self::Parallel { p, q }, Basis::Circular));
        }
        None
    }
}

/// One correlation of one sample: value, weight, flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hand {
    pub vis: Complex64,
    pub weight: f64,
    pub flag: bool,
}

impl Hand {
    /// Usable: unflagged, with a finite value and a positive, finite weight.
    fn usable(&self) -> bool {
        !self.flag
            && self.weight.is_finite()
            && self.weight > 0.0
            && self.vis.re.is_finite()
            && self.vis.im.is_finite()
    }
}

/// A Stokes-I sample: value, weight and flag. Flagged samples carry zero value and weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub vis: Complex64,
    pub weight: f64,
    pub flag: bool,
}

impl Sample {
    pub const FLAGGED: Sample = Sample {
        vis: Complex64 { re: 0.0, im: 0.0 },
        weight: 0.0,
        flag: true,
    };
}

/// Stokes I from two parallel hands (see the module documentation).
pub fn combine_parallel(p: Hand, q: Hand) -> Sample {
    match (p.usable(), q.usable()) {
        (true, true) => Sample {
            vis: (p.vis + q.vis) * 0.5,
            weight: 4.0 / (1.0 / p.weight + 1.0 / q.weight),
            flag: false,
        },
        (true, false) => Sample {
            vis: p.vis,
            weight: p.weight,
            flag: false,
        },
        (false, true) => Sample {
            vis: q.vis,
            weight: q.weight,
            flag: false,
        },
        (false, false) => Sample::FLAGGED,
    }
}

/// Stokes I stored directly.
pub fn direct(i: Hand) -> Sample {
    if i.usable() {
        Sample {
            vis: i.vis,
            weight: i.weight,
            flag: false,
        }
    } else {
        Sample::FLAGGED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hand(re: f64, weight: f64, flag: bool) -> Hand {
        Hand {
            vis: Complex64::new(re, -re),
            weight,
            flag,
        }
    }

    #[test]
    fn recipes_from_corr_types() {
        let r = StokesI::from_corr_types(&[9, 10, 11, 12]);
        assert_eq!(r, Some((StokesI::Parallel { p: 0, q: 3 }, Basis::Linear)));
        let r = StokesI::from_corr_types(&[8, 5]);
        assert_eq!(r, Some((StokesI::Parallel { p: 1, q: 0 }, Basis::Circular)));
        assert_eq!(
            StokesI::from_corr_types(&[1]),
            Some((StokesI::Direct { i: 0 }, Basis::Stokes))
        );
        for bad in [&[10, 11][..], &[9][..], &[9, 8][..], &[][..]] {
            assert_eq!(StokesI::from_corr_types(bad), None, "{bad:?}");
        }
        assert_eq!(corr_list(&[10, 11, 99]), "XY(10), YX(11), 99?(99)");
    }

    #[test]
    fn both_hands_average_with_inverse_variance_weights() {
        let s = combine_parallel(hand(1.0, 2.0, false), hand(3.0, 6.0, false));
        assert_eq!(s.vis, Complex64::new(2.0, -2.0));
        // var = (1/2 + 1/6)/4 = 1/6.
        assert!((s.weight - 6.0).abs() < 1e-12);
        assert!(!s.flag);
        let s = combine_parallel(hand(1.0, 5.0, false), hand(1.0, 5.0, false));
        assert_eq!(s.weight, 10.0);
    }

    #[test]
    fn one_flagged_hand_gives_the_other_with_its_weight() {
        let s = combine_parallel(hand(1.0, 2.0, true), hand(3.0, 6.0, false));
        assert_eq!(
            (s.vis, s.weight, s.flag),
            (Complex64::new(3.0, -3.0), 6.0, false)
        );
        let s = combine_parallel(hand(1.0, 2.0, false), hand(f64::NAN, 6.0, false));
        assert_eq!((s.vis, s.weight), (Complex64::new(1.0, -1.0), 2.0));
        let s = combine_parallel(hand(1.0, 0.0, false), hand(3.0, 6.0, false));
        assert_eq!(s.weight, 6.0);
        assert_eq!(
            combine_parallel(hand(1.0, 2.0, true), hand(1.0, -1.0, false)),
            Sample::FLAGGED
        );
        assert_eq!(direct(hand(1.0, 2.0, true)), Sample::FLAGGED);
        assert_eq!(direct(hand(1.0, 2.0, false)).weight, 2.0);
    }
}
