//! FITS header cards aperture adds to its products: provenance (`DATE`, `HISTORY` with
//! the command line) and the gridder's parameters. Keywords are at most 8 characters
//! (FITS 4.0 §4.1.2.1), hence `WEIGHTNG`, `PRECISN`, `GRIDSIG`.

use std::time::{SystemTime, UNIX_EPOCH};

use aperture_imaging::gridder::{GridReport, GridderOptions};
use aperture_pipeline::formats::fits::Card;

use super::gridding::precision_name;

/// The current UTC time as `YYYY-MM-DDThh:mm:ss` (FITS `DATE`); `None` if the clock is
/// before 1970.
pub fn utc_now() -> Option<String> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
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

/// `text` with anything outside printable ASCII replaced by `?` (FITS headers are ASCII).
pub fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// A string value for a FITS card: printable ASCII, at most 68 characters.
pub fn fits_text(text: &str) -> String {
    ascii(text).chars().take(68).collect()
}

/// `HISTORY` cards recording the program and the command line (wrapped by the writer).
pub fn history(command_line: &str) -> Vec<Card> {
    vec![
        Card::history(&format!(
            "aperture {} (https://github.com/aperture-dev/aperture)",
            env!("CARGO_PKG_VERSION")
        )),
        Card::history(&ascii(command_line)),
    ]
}

/// Cards recording the gridder's request and choices.
pub fn gridder_cards(opts: &GridderOptions, rep: &GridReport) -> Vec<Card> {
    vec![
        Card::new(
            "EPSILON",
            opts.epsilon,
            "requested accuracy (relative L2 vs DFT)",
        ),
        Card::new(
            "PRECISN",
            precision_name(opts.precision),
            "gridder floating-point precision",
        ),
        Card::new("WSTACK", opts.wstacking, "w-stacking wide-field correction"),
        Card::new("NVIS", rep.nvis as i64, "visibility samples gridded"),
        Card::new(
            "GRIDW",
            rep.support as i64,
            "gridding kernel support W (cells)",
        ),
        Card::new("GRIDSIG", rep.sigma, "grid oversampling factor sigma"),
        Card::new("GRIDBETA", rep.beta, "ES kernel shape parameter beta"),
        Card::new("GRIDNU", rep.nu as i64, "padded grid size along u"),
        Card::new("GRIDNV", rep.nv as i64, "padded grid size along v"),
        Card::new("NPLANES", rep.nplanes as i64, "number of w-planes"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(utc_now().map(|s| s.len()), Some(19));
    }

    #[test]
    fn ascii_only() {
        assert_eq!(ascii("a é\tb"), "a ??b");
    }
}
