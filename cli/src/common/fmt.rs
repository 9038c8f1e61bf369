//! Formatting of results: aligned `key  value` summaries on stdout, durations, angles in
//! sexagesimal, sizes.

use std::fmt::Display;
use std::io::Write;

use aperture_imaging::vis::VisBlock;

/// A results summary printed to stdout as aligned `key  value` lines.
#[derive(Debug, Default)]
pub struct Summary {
    rows: Vec<(String, String)>,
}

impl Summary {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn row(&mut self, key: &str, value: impl Display) -> &mut Self {
        self.rows.push((key.to_owned(), value.to_string()));
        self
    }

    /// Writes the summary to stdout; a closed pipe is ignored.
    pub fn print(&self) {
        let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut text = String::new();
        for (k, v) in &self.rows {
            let mut lines = v.lines();
            let first = lines.next().unwrap_or("");
            text.push_str(&format!("{k:<width$}  {first}\n"));
            for more in lines {
                text.push_str(&format!("{:<width$}  {more}\n", ""));
            }
        }
        print_stdout(&text);
    }
}

/// Writes `text` to stdout as is; a closed pipe is ignored.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Seconds with a sensible number of digits: `0.012 s`, `1.23 s`, `12.3 s`.
pub fn seconds(t: f64) -> String {
    if t < 0.1 {
        format!("{t:.3} s")
    } else if t < 10.0 {
        format!("{t:.2} s")
    } else {
        format!("{t:.1} s")
    }
}

/// A count with thousands separators: 1434888 → `1,434,888`.
pub fn count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The shape of a block: `1,434,888 rows x 8 channels`.
pub fn rows_by_channels(block: &VisBlock) -> String {
    format!(
        "{} rows x {} channels",
        count(block.n_rows()),
        block.n_chan()
    )
}

/// A rate in visibilities per second: `1.23 M vis/s`.
pub fn rate(n: f64, t: f64) -> String {
    if t <= 0.0 {
        return "n/a".into();
    }
    let r = n / t;
    if r >= 1e6 {
        format!("{:.3} M vis/s", r / 1e6)
    } else {
        format!("{:.1} k vis/s", r / 1e3)
    }
}

/// Bytes in MiB or GiB.
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

/// Right ascension (radians) as `01h00m00.000s`.
pub fn hms(ra: f64) -> String {
    let hours = ra.to_degrees().rem_euclid(360.0) / 15.0;
    let total_ms = (hours * 3_600_000.0).round() as u64 % (24 * 3_600_000);
    let (h, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (m, ms) = (rest / 60_000, rest % 60_000);
    format!("{h:02}h{m:02}m{:02}.{:03}s", ms / 1000, ms % 1000)
}

/// Declination (radians) as `-45d00m00.00s`.
pub fn dms(dec: f64) -> String {
    let deg = dec.to_degrees();
    let sign = if deg < 0.0 { '-' } else { '+' };
    let total_cs = (deg.abs() * 360_000.0).round() as u64;
    let (d, rest) = (total_cs / 360_000, total_cs % 360_000);
    let (m, cs) = (rest / 6_000, rest % 6_000);
    format!("{sign}{d:02}d{m:02}m{:02}.{:02}s", cs / 100, cs % 100)
}

/// A direction as `RA 01h00m00.000s (15.000000 deg), Dec -45d00m00.00s (-45.000000 deg)`.
pub fn radec(ra: f64, dec: f64) -> String {
    format!(
        "RA {} ({:.6} deg), Dec {} ({:.6} deg)",
        hms(ra),
        ra.to_degrees().rem_euclid(360.0),
        dms(dec),
        dec.to_degrees()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(count(1_434_888), "1,434,888");
        assert_eq!(count(999), "999");
        assert_eq!(hms(15f64.to_radians()), "01h00m00.000s");
        assert_eq!(dms((-45.5f64).to_radians()), "-45d30m00.00s");
        assert_eq!(dms(0.0), "+00d00m00.00s");
        assert_eq!(seconds(1.234), "1.23 s");
    }
}
