//! One-line error messages. Every failure ends as `error: <message>` on stderr and exit
//! code 2; messages name the option (`--npix 1023: …`) or the file (`b/vis.npy: …`).

use std::fmt::Display;
use std::process::ExitCode;

use anyhow::{Error, anyhow};
use aperture_imaging::ImagingError;
use clap::error::ErrorKind;

/// The exit code of every error (bad input, unreadable or unwritable files, …).
pub const EXIT_ERROR: u8 = 2;

/// The error and its causes on one line: `context: cause: cause`, line breaks removed.
pub fn one_line(e: &Error) -> String {
    flatten(&format!("{e:#}"))
}

/// Joins the non-empty lines of `text` with single spaces.
fn flatten(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints a command-line parsing error from clap and returns the exit code: help and
/// version go to stdout as usual, real errors become one line (the usage hint dropped).
pub fn clap_exit(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(EXIT_ERROR)
        }
        _ => {
            eprintln!("{}", clap_one_line(e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// clap's message without the `Usage:` block, `tip:` lines and the `--help` hint.
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut kept = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Usage:") || t.starts_with("For more information") {
            break;
        }
        if !t.is_empty() && !t.starts_with("tip:") {
            kept.push(t);
        }
    }
    let line = kept.join(" ");
    if line.starts_with("error:") {
        line
    } else {
        format!("error: {line}")
    }
}

/// Turns an [`ImagingError`] about a named parameter into `"<option>: <reason>"` using
/// `names` (parameter name → command-line option); other errors pass through.
pub fn for_option(e: ImagingError, names: &[(&str, &str)]) -> Error {
    match renamed(&e, names) {
        Some(named) => named,
        None => Error::new(e),
    }
}

/// Like [`for_option`], but an error about no listed parameter is put in `context`:
/// `"<context>: <error>"` (e.g. the file whose data the computation failed on).
pub fn for_option_or(e: ImagingError, names: &[(&str, &str)], context: impl Display) -> Error {
    renamed(&e, names).unwrap_or_else(|| anyhow!("{context}: {e}"))
}

/// `"<option>: <reason>"` when `e` is about a parameter listed in `names`.
fn renamed(e: &ImagingError, names: &[(&str, &str)]) -> Option<Error> {
    let ImagingError::InvalidParameter { name, reason } = e else {
        return None;
    };
    let (_, opt) = names.iter().find(|(n, _)| n == name)?;
    Some(anyhow!("{opt}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_causes_and_lines() {
        let e = anyhow!("inner\n  detail").context("outer");
        assert_eq!(one_line(&e), "outer: inner detail");
    }

    #[test]
    fn imaging_errors_are_renamed() {
        let e = for_option(
            ImagingError::invalid("f_min", "0 Hz; must be positive"),
            &[("f_min", "--fmin")],
        );
        assert_eq!(e.to_string(), "--fmin: 0 Hz; must be positive");
        let e = for_option(ImagingError::invalid("x", "y"), &[("f_min", "--fmin")]);
        assert_eq!(e.to_string(), "invalid x: y");
        let e = for_option_or(
            ImagingError::invalid("x", "y"),
            &[("f_min", "--fmin")],
            "b/",
        );
        assert_eq!(e.to_string(), "b/: invalid x: y");
        let e = for_option_or(
            ImagingError::invalid("f_min", "y"),
            &[("f_min", "--fmin")],
            "b/",
        );
        assert_eq!(e.to_string(), "--fmin: y");
    }
}
