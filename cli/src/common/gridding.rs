//! Gridder options shared by `invert`, `predict` and `bench`: precision, accuracy,
//! w-stacking and threads, checked before any data is read.

use anyhow::{Result, bail};
use aperture_imaging::gridder::{GridderOptions, Precision};
use clap::{Args, ValueEnum};

/// Floating-point precision on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// Single precision: faster, accuracy down to epsilon 1e-5.
    F32,
    /// Double precision: accuracy down to epsilon 1e-12.
    F64,
}

impl PrecisionArg {
    pub fn precision(self) -> Precision {
        match self {
            Self::F32 => Precision::F32,
            Self::F64 => Precision::F64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }

    /// The smallest epsilon the gridder supports in this precision (its accuracy contract,
    /// DESIGN.md "Conventions").
    pub fn min_epsilon(self) -> f64 {
        match self {
            Self::F32 => 1e-5,
            Self::F64 => 1e-12,
        }
    }
}

/// The largest epsilon the gridder accepts.
pub const MAX_EPSILON: f64 = 0.1;

/// `--epsilon`, `--precision`, `--no-wstacking`, `--threads`.
#[derive(Debug, Clone, Args)]
pub struct GridderArgs {
    /// Accuracy of the gridding: the result differs from an exact direct Fourier transform
    /// by at most this (relative L2). 1e-12…0.1 in f64, 1e-5…0.1 in f32; smaller is slower.
    #[arg(
        long,
        default_value = "1e-5",
        value_name = "E",
        allow_negative_numbers = true
    )]
    pub epsilon: f64,
    /// Floating-point precision of the gridding.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F64)]
    pub precision: PrecisionArg,
    /// Ignore w (flat-sky 2-D transform): faster, but wrong away from the phase centre on
    /// wide fields.
    #[arg(long)]
    pub no_wstacking: bool,
    /// Worker threads for the gridder; 0 uses all cores.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "T",
        allow_negative_numbers = true
    )]
    pub threads: usize,
}

impl GridderArgs {
    /// Checks the options and returns the gridder's.
    pub fn options(&self) -> Result<GridderOptions> {
        check_epsilon(self.epsilon, self.precision)?;
        check_threads(self.threads)?;
        Ok(GridderOptions {
            epsilon: self.epsilon,
            precision: self.precision.precision(),
            wstacking: !self.no_wstacking,
            threads: self.threads,
        })
    }
}

/// Most worker threads accepted (far above any machine; catches typos).
pub const MAX_THREADS: usize = 4096;

/// `--threads` at most [`MAX_THREADS`].
pub fn check_threads(threads: usize) -> Result<()> {
    if threads > MAX_THREADS {
        bail!("--threads {threads}: at most {MAX_THREADS} (0 uses all cores)");
    }
    Ok(())
}

/// `--epsilon` within the range the gridder supports for `precision`.
pub fn check_epsilon(epsilon: f64, precision: PrecisionArg) -> Result<()> {
    let min = precision.min_epsilon();
    if !(epsilon.is_finite() && (min..=MAX_EPSILON).contains(&epsilon)) {
        bail!(
            "--epsilon {epsilon:e}: must be between {min:e} and {MAX_EPSILON} for --precision {}",
            precision.name()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_ranges() {
        assert!(check_epsilon(1e-12, PrecisionArg::F64).is_ok());
        assert!(check_epsilon(0.1, PrecisionArg::F32).is_ok());
        for (e, p) in [
            (1e-13, PrecisionArg::F64),
            (1e-6, PrecisionArg::F32),
            (0.5, PrecisionArg::F64),
            (f64::NAN, PrecisionArg::F64),
            (-1e-5, PrecisionArg::F64),
        ] {
            let msg = check_epsilon(e, p).unwrap_err().to_string();
            assert!(msg.starts_with("--epsilon "), "{msg}");
        }
    }
}
