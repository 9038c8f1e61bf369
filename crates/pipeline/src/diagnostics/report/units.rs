//! Plain-text formatting of the report's numbers: seconds, bytes, ratios and UTC times.

/// Seconds as a person reads them: `0.042 s`, `12.3 s`, `4 min 03 s`, `2 h 05 min`.
pub fn seconds(s: f64) -> String {
    if !s.is_finite() {
        return "–".into();
    }
    let a = s.abs();
    if a < 10.0 {
        format!("{s:.3} s")
    } else if a < 120.0 {
        format!("{s:.1} s")
    } else if a < 7200.0 {
        let total = s.round() as i64;
        format!("{} min {:02} s", total / 60, total % 60)
    } else {
        let total = (s / 60.0).round() as i64;
        format!("{} h {:02} min", total / 60, total % 60)
    }
}

/// Bytes in binary units with three significant figures: `512 B`, `1.50 KiB`, `3.21 GiB`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 {
        format!("{v:.2} {}", UNITS[u])
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// A ratio such as an imbalance (`2.31×`), or `–` when undefined.
pub fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => "–".into(),
    }
}

/// A fraction as a percentage (`87.5 %`).
pub fn percent(f: f64) -> String {
    if f.is_finite() {
        format!("{:.1} %", 100.0 * f)
    } else {
        "–".into()
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day): H. Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Unix seconds as ISO 8601 UTC to the second (`2024-02-29T13:05:09Z`); `–` when the
/// time is not finite or negative (an unset field).
pub fn utc(unix: f64) -> String {
    if !unix.is_finite() || unix < 0.0 {
        return "–".into();
    }
    let t = unix.floor() as i64;
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_matches_known_dates() {
        // `date -u -d @0`, `@951782400` (2000-02-29, a leap day of a century leap
        // year) and `@1709211909`.
        assert_eq!(utc(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_709_211_909.7), "2024-02-29T13:05:09Z");
        assert_eq!(utc(4_107_542_399.0), "2100-02-28T23:59:59Z");
        assert_eq!(utc(f64::NAN), "–");
    }

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
        assert_eq!(bytes(200 << 20), "200 MiB");
        assert_eq!(seconds(0.0421), "0.042 s");
        assert_eq!(seconds(12.34), "12.3 s");
        assert_eq!(seconds(243.0), "4 min 03 s");
        assert_eq!(seconds(7500.0), "2 h 05 min");
        assert_eq!(ratio(Some(2.314)), "2.31×");
        assert_eq!(ratio(None), "–");
        assert_eq!(percent(0.875), "87.5 %");
    }
}
