//! Helpers shared by the subcommands: one-line errors, output files, bundle reading and
//! writing, progress lines, gridder options, imaging defaults, FITS cards and result
//! formatting.

pub mod bundle;
pub mod errors;
pub mod fits;
pub mod fmt;
pub mod gridding;
pub mod imaging;
pub mod output;
pub mod progress;
pub mod runtime;

/// What every subcommand gets besides its own arguments.
#[derive(Debug)]
pub struct Context {
    pub progress: progress::Progress,
    /// The command line as typed (shell-quoted), for FITS `HISTORY` and bundle metadata.
    pub command_line: String,
}
