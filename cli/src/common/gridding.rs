//! Gridder options shared by `invert`, `predict` and `bench`: precision, accuracy,
//! w-stacking and threads, checked before any data is read; and how the request and the
//! gridder's choices are reported.

use anyhow::{Result, bail};
use aperture_imaging::gridder::{GridReport, GridderOptions, Precision};
use aperture_pipeline::formats::bundle::VisDtype;
use clap::{Args, ValueEnum};

use super::fmt::seconds;

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

    /// The numpy dtype of `vis.npy` written in this precision.
    pub fn vis_dtype(self) -> VisDtype {
        match self {
            Self::F32 => VisDtype::Complex64,
            Self::F64 => VisDtype::Complex128,
        }
    }
}

/// `f32` or `f64`, as on the command line.
pub fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::F64 => "f64",
    }
}

/// The gridder's parameter names and the options that set them, for
/// [`crate::common::errors::for_option`].
pub const GRIDDER_OPTIONS: &[(&str, &str)] = &[
    ("epsilon", "--epsilon"),
    ("npix", "--npix"),
    ("cell", "--cell"),
];

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
        check_epsilon(self.epsilon, self.precision.precision())?;
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
const MAX_THREADS: usize = 4096;

/// `--threads` at most [`MAX_THREADS`].
fn check_threads(threads: usize) -> Result<()> {
    if threads > MAX_THREADS {
        bail!("--threads {threads}: at most {MAX_THREADS} (0 uses all cores)");
    }
    Ok(())
}

/// `--epsilon` within the range the gridder supports for `precision`.
fn check_epsilon(epsilon: f64, precision: Precision) -> Result<()> {
    let (min, max) = precision.epsilon_range();
    if !(epsilon.is_finite() && (min..=max).contains(&epsilon)) {
        bail!(
            "--epsilon {epsilon:e}: must be between {min:e} and {max} for --precision {}",
            precision_name(precision)
        );
    }
    Ok(())
}

/// The request as summaries show it: `f64, epsilon 1e-5, w-stacking`.
pub fn describe_request(opts: &GridderOptions) -> String {
    format!(
        "{}, epsilon {:e}, {}",
        precision_name(opts.precision),
        opts.epsilon,
        if opts.wstacking {
            "w-stacking"
        } else {
            "no w-stacking"
        }
    )
}

/// The gridder's choices: `W 8, sigma 1.500, beta 2.300, grid 2048 x 2048, 9 w-planes`.
pub fn describe_layout(rep: &GridReport) -> String {
    format!(
        "W {}, sigma {:.3}, beta {:.3}, grid {} x {}, {} w-planes",
        rep.support, rep.sigma, rep.beta, rep.nu, rep.nv, rep.nplanes
    )
}

/// Which way a [`GridReport`] was produced, for [`describe_phases`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Visibilities to image (`invert`): gridding comes before the FFT.
    Invert,
    /// Image to visibilities (`predict`): degridding comes after the FFT.
    Predict,
}

/// The time of each phase, in the order they ran:
/// `prepare 0.01 s, grid 1.20 s, fft 0.30 s, correct 0.05 s`.
pub fn describe_phases(rep: &GridReport, direction: Direction) -> String {
    let t = &rep.times;
    let (prepare, grid, fft, correct) = (
        seconds(t.prepare),
        seconds(t.grid),
        seconds(t.fft),
        seconds(t.correct),
    );
    match direction {
        Direction::Invert => {
            format!("prepare {prepare}, grid {grid}, fft {fft}, correct {correct}")
        }
        Direction::Predict => {
            format!("prepare {prepare}, fft {fft}, degrid {grid}, correct {correct}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_ranges() {
        // The help texts of --epsilon and --precision quote these ranges.
        assert_eq!(Precision::F64.epsilon_range(), (1e-12, 0.1));
        assert_eq!(Precision::F32.epsilon_range(), (1e-5, 0.1));
        assert!(check_epsilon(1e-12, Precision::F64).is_ok());
        assert!(check_epsilon(0.1, Precision::F32).is_ok());
        for (e, p) in [
            (1e-13, Precision::F64),
            (1e-6, Precision::F32),
            (0.5, Precision::F64),
            (f64::NAN, Precision::F64),
            (-1e-5, Precision::F64),
        ] {
            let msg = check_epsilon(e, p).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("--epsilon {e:e}: must be between")),
                "{msg}"
            );
        }
        assert_eq!(
            check_epsilon(1e-6, Precision::F32).unwrap_err().to_string(),
            "--epsilon 1e-6: must be between 1e-5 and 0.1 for --precision f32"
        );
    }
}
