//! Time chunks of Stokes-I samples, as [`MeasurementSet::read_time_chunks`] hands them
//! over: for a group of windows, the grid cells of a range of whole integrations, laid
//! out exactly like a chunk of the Zarr visibility store (`[time, baseline, channel]`,
//! C order, padded to the full chunk length past the last integration), in the store's
//! precision, so a writer encodes them without another copy.
//!
//! [`MeasurementSet::read_time_chunks`]: crate::MeasurementSet::read_time_chunks

use std::ops::Range;

use num_complex::{Complex32, Complex64};

/// The precision samples are held in (that of the store they go to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// complex64 visibilities, float32 weights (as `DATA` is usually stored).
    Single,
    /// complex128 visibilities, float64 weights.
    Double,
}

impl Precision {
    /// Bytes of one sample: visibility, weight and flag.
    pub fn sample_bytes(self) -> usize {
        match self {
            Self::Single => 8 + 4 + 1,
            Self::Double => 16 + 8 + 1,
        }
    }
}

/// Visibilities and weights of one window's chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkValues {
    Single {
        vis: Vec<Complex32>,
        weight: Vec<f32>,
    },
    Double {
        vis: Vec<Complex64>,
        weight: Vec<f64>,
    },
}

/// One window's samples over a time chunk: `vis`, `weight` and `flag` are
/// `[time][baseline][channel]` over `time_chunk` integrations (C order); cells without a
/// selected row, and the padding past the last integration, are 0 with weight 0 and
/// flagged.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowChunk {
    /// The window's index in the plan.
    pub window: usize,
    pub values: ChunkValues,
    pub flag: Vec<bool>,
    /// Flagged samples of the chunk's real integrations (padding not counted).
    pub flagged: u64,
}

/// A time chunk of every window of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeChunk {
    /// The chunk's index along time (integrations `index·time_chunk ..`).
    pub index: usize,
    /// The integrations it holds (the last chunk may hold fewer than `time_chunk`).
    pub times: Range<usize>,
    pub windows: Vec<WindowChunk>,
}

impl WindowChunk {
    /// An all-flagged chunk of `len` samples.
    #[cfg(feature = "casacore")]
    pub(crate) fn empty(window: usize, len: usize, precision: Precision) -> Self {
        let values = match precision {
            Precision::Single => ChunkValues::Single {
                vis: vec![Complex32::new(0.0, 0.0); len],
                weight: vec![0.0; len],
            },
            Precision::Double => ChunkValues::Double {
                vis: vec![Complex64::new(0.0, 0.0); len],
                weight: vec![0.0; len],
            },
        };
        Self {
            window,
            values,
            flag: vec![true; len],
            flagged: 0,
        }
    }
}
