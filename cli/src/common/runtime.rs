//! Process set-up: logging to stderr, the one-line panic report, the command line as
//! typed (for provenance in FITS headers and bundle metadata), and memory figures from
//! `/proc`.

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

/// A `Key:   1234 kB` value of a Linux `/proc` file (`key` with its colon), in bytes;
/// `None` where the file or the key is missing.
pub fn proc_bytes(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_values_are_bytes() {
        assert_eq!(proc_bytes("/nonexistent", "VmHWM:"), None);
        if std::path::Path::new("/proc/self/status").exists() {
            let hwm = proc_bytes("/proc/self/status", "VmHWM:").unwrap();
            assert!(hwm > 0 && hwm.is_multiple_of(1024), "{hwm}");
            assert_eq!(proc_bytes("/proc/self/status", "NoSuchKey:"), None);
        }
    }
}
