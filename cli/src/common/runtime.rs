//! Process set-up: logging to stderr, the one-line panic report, and the command line as
//! typed (for provenance in FITS headers and bundle metadata).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Logs to stderr: `-v` sets the level; otherwise `RUST_LOG`, else warnings only.
pub fn init_logging(verbose: u8) {
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        1 => EnvFilter::new("info"),
        2 => EnvFilter::new("debug"),
        _ => EnvFilter::new("trace"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .try_init();
}

/// Reports a panic (a bug, never a reaction to input) on one line; with RUST_BACKTRACE
/// set, Rust's full report is printed instead. Unwinding still removes temporary outputs.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            default(info);
            return;
        }
        let msg = info.payload_as_str().unwrap_or("unknown panic");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error (a bug in aperture, please report it): {}{at}; \
             rerun with RUST_BACKTRACE=1 for details",
            msg.lines().map(str::trim).collect::<Vec<_>>().join(" ")
        );
    }));
}

/// The command line as typed, arguments with spaces or quotes single-quoted.
pub fn command_line() -> String {
    std::env::args_os()
        .enumerate()
        .map(|(i, a)| {
            let a = a.to_string_lossy();
            let a = if i == 0 { "aperture".into() } else { a };
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
