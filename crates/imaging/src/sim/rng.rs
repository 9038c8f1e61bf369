//! A small deterministic pseudo-random generator: xoshiro256** (Blackman & Vigna 2018,
//! "Scrambled linear pseudorandom number generators") seeded through SplitMix64
//! (Steele, Lea & Flood 2014), with uniform and standard-normal draws.
//!
//! Only integer arithmetic and IEEE-exact float operations (plus [`super::detmath`]) are
//! used, so a seed gives the same stream on every platform.

use super::detmath;

/// One SplitMix64 step: advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** generator with a cached second normal deviate (polar method).
#[derive(Debug, Clone, PartialEq)]
pub struct Rng {
    s: [u64; 4],
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator whose state is four SplitMix64 outputs of `seed` (never all zero).
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self::from_state(s)
    }

    /// An independent stream `stream` of `seed`: the seed and stream index are mixed by
    /// SplitMix64 before seeding, so e.g. one stream per visibility row can be drawn in
    /// parallel and still be reproducible.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut sm = seed ^ 0x6A09_E667_F3BC_C909;
        let a = splitmix64(&mut sm);
        let mut sm2 = stream.wrapping_add(a);
        Self::new(splitmix64(&mut sm2) ^ a.rotate_left(17))
    }

    /// A generator with an explicit state (the all-zero state is replaced by seed 0).
    pub fn from_state(s: [u64; 4]) -> Self {
        if s == [0; 4] {
            return Self::new(0);
        }
        Self {
            s,
            spare_normal: None,
        }
    }

    /// Next 64 random bits (xoshiro256**).
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1): the top 53 bits over 2^53.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in the open interval (0, 1): (k + ½)/2^53 for the top 53 bits k, rounded to
    /// the nearest double. Above ½ the doubles are 2^−53 apart, so the value rounds to a
    /// neighbour; for the largest k that would be 1, which is replaced by 1 − 2^−53.
    pub fn uniform_open(&mut self) -> f64 {
        const BELOW_ONE: f64 = 1.0 - f64::EPSILON / 2.0;
        let u = ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        u.min(BELOW_ONE)
    }

    /// Uniform in [lo, hi).
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n) by rejection (unbiased); 0 when n = 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let zone = u64::MAX - (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_u64();
            if x <= zone {
                return x % n;
            }
        }
    }

    /// Standard normal deviate by Marsaglia's polar method (Marsaglia & Bray 1964); the
    /// second deviate of each pair is cached.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let a = 2.0 * self.uniform() - 1.0;
            let b = 2.0 * self.uniform() - 1.0;
            let s = a * a + b * b;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * detmath::ln(s) / s).sqrt();
                self.spare_normal = Some(b * f);
                return a * f;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_vector() {
        // Reference outputs for seed 1234567 (Vigna's splitmix64.c).
        let mut s = 1_234_567u64;
        let want = [
            6_457_827_717_110_365_317u64,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
            4_593_380_528_125_082_431,
            16_408_922_859_458_223_821,
        ];
        for w in want {
            assert_eq!(splitmix64(&mut s), w);
        }
    }

    #[test]
    fn xoshiro256starstar_reference_vector() {
        // Reference outputs from state [1, 2, 3, 4] (Vigna's xoshiro256starstar.c).
        let mut r = Rng::from_state([1, 2, 3, 4]);
        let want = [
            11_520u64,
            0,
            1_509_978_240,
            1_215_971_899_390_074_240,
            1_216_172_134_540_287_360,
            607_988_272_756_665_600,
        ];
        for w in want {
            assert_eq!(r.next_u64(), w);
        }
        // Seeding through SplitMix64 (computed independently from the reference code).
        let mut r = Rng::new(42);
        assert_eq!(r.next_u64(), 1_546_998_764_402_558_742);
        assert_eq!(r.next_u64(), 6_990_951_692_964_543_102);
        assert_eq!(r.next_u64(), 12_544_586_762_248_559_009);
    }

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.normal().to_bits(), b.normal().to_bits());
        }
        let mut s0 = Rng::stream(7, 0);
        let mut s1 = Rng::stream(7, 1);
        assert_ne!(s0.next_u64(), s1.next_u64());
    }

    /// A generator whose next output is `x`: xoshiro256**'s output is
    /// rotl(s[1]·5, 7)·9, so s[1] = rotr(x·9⁻¹, 7)·5⁻¹ (inverses mod 2^64 by Newton's
    /// iteration y ← y(2 − a·y), which doubles the correct low bits from 3).
    fn rng_emitting(x: u64) -> Rng {
        let inv = |a: u64| {
            let mut y = a;
            for _ in 0..5 {
                y = y.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(y)));
            }
            y
        };
        let s1 = x.wrapping_mul(inv(9)).rotate_right(7).wrapping_mul(inv(5));
        Rng::from_state([1, s1, 0, 0])
    }

    #[test]
    fn uniform_draws_stay_in_their_intervals_at_the_extremes() {
        for x in [0, 1 << 11, u64::MAX >> 1, u64::MAX - (1 << 11), u64::MAX] {
            assert_eq!(rng_emitting(x).next_u64(), x);
            let u = rng_emitting(x).uniform();
            assert!((0.0..1.0).contains(&u), "uniform() = {u} for {x:#x}");
            let u = rng_emitting(x).uniform_open();
            assert!(u > 0.0 && u < 1.0, "uniform_open() = {u} for {x:#x}");
        }
        assert_eq!(rng_emitting(0).uniform(), 0.0);
        assert_eq!(rng_emitting(0).uniform_open(), 0.5 / (1u64 << 53) as f64);
        assert_eq!(
            rng_emitting(u64::MAX).uniform_open(),
            1.0 - f64::EPSILON / 2.0
        );
    }

    #[test]
    fn uniform_moments() {
        // Mean 1/2 and variance 1/12; tolerances are 5 standard errors for n samples.
        let n = 200_000;
        let mut r = Rng::new(1);
        let (mut s1, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            s1 += u;
            s2 += u * u;
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!((mean - 0.5).abs() < 5.0 * (1.0 / 12.0f64).sqrt() / (n as f64).sqrt());
        // The sample variance has standard error √((μ₄ − σ⁴)/n), with μ₄ = 1/80 and
        // σ⁴ = 1/144 for the uniform distribution: μ₄ − σ⁴ = 1/180.
        assert!((var - 1.0 / 12.0).abs() < 5.0 * (1.0 / 180.0f64).sqrt() / (n as f64).sqrt());
    }

    #[test]
    fn below_is_in_range_and_unbiased() {
        // Each of 7 residues over 70 000 draws: binomial count 10 000 ± √(70 000·(1/7)(6/7)),
        // within 5 standard errors.
        let mut r = Rng::new(3);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        let se = (70_000.0f64 * (1.0 / 7.0) * (6.0 / 7.0)).sqrt();
        for (k, &c) in counts.iter().enumerate() {
            assert!((c as f64 - 10_000.0).abs() < 5.0 * se, "{k}: {c}");
        }
        // n = 2^63 + 1 rejects almost half of the 64-bit draws; the rest must map below n.
        let n = (1u64 << 63) + 1;
        assert!((0..1000).all(|_| r.below(n) < n));
        assert_eq!((r.below(0), r.below(1)), (0, 0));
    }

    #[test]
    fn normal_moments() {
        // Mean 0, variance 1, fourth moment 3; 5-standard-error tolerances.
        let n = 200_000;
        let mut r = Rng::new(2);
        let (mut s1, mut s2, mut s4) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let z = r.normal();
            s1 += z;
            s2 += z * z;
            s4 += z * z * z * z;
        }
        let nf = n as f64;
        assert!((s1 / nf).abs() < 5.0 / nf.sqrt());
        // Var(z²) = 2.
        assert!((s2 / nf - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt());
        // Var(z⁴) = 105 − 9 = 96.
        assert!((s4 / nf - 3.0).abs() < 5.0 * 96f64.sqrt() / nf.sqrt());
    }
}
