//! A perceptually ordered dark-to-bright colour map resembling matplotlib's "inferno"
//! (black → purple → red → orange → pale yellow), interpolated linearly between nine
//! anchor colours sampled at equal steps along that map.

/// sRGB anchors at t = 0, 1/8, …, 1.
const ANCHORS: [[u8; 3]; 9] = [
    [0x00, 0x00, 0x04],
    [0x1b, 0x0c, 0x41],
    [0x4a, 0x0c, 0x6b],
    [0x78, 0x1c, 0x6d],
    [0xa5, 0x2c, 0x60],
    [0xcf, 0x44, 0x46],
    [0xed, 0x69, 0x25],
    [0xfb, 0x9b, 0x06],
    [0xfc, 0xff, 0xa4],
];

/// The colour of level `t` in [0, 1] (clamped).
pub fn inferno(t: f64) -> [u8; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (ANCHORS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(ANCHORS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    std::array::from_fn(|k| {
        (f64::from(a[k]) + f * (f64::from(b[k]) - f64::from(a[k]))).round() as u8
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_brightness_order() {
        assert_eq!(inferno(0.0), ANCHORS[0]);
        assert_eq!(inferno(1.0), ANCHORS[8]);
        assert_eq!(inferno(f64::NAN), ANCHORS[0]);
        let luma = |c: [u8; 3]| {
            0.2126 * f64::from(c[0]) + 0.7152 * f64::from(c[1]) + 0.0722 * f64::from(c[2])
        };
        let mut prev = -1.0;
        for i in 0..=64 {
            let l = luma(inferno(i as f64 / 64.0));
            assert!(l > prev, "luminance must increase");
            prev = l;
        }
    }
}
