//! Time chunks of Stokes-I samples, as [`MeasurementSet::read_time_chunks`] hands them
//! over: for a group of windows, the grid cells of a range of whole integrations, laid
//! out exactly like a chunk of the Zarr visibility store (`[time, baseline, channel]`,
//! C order, padded to the full chunk length past the last integration), in the store's
//! precision, so a writer encodes them without another copy; and the [`ChunkPool`] a
//! writer gives their buffers back to, for the next chunks.
//!
//! [`MeasurementSet::read_time_chunks`]: crate::MeasurementSet::read_time_chunks

use std::ops::Range;
use std::sync::Mutex;

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
    /// A chunk of `len` samples in buffers from `pool` (or new ones): their values are
    /// whatever the buffers held, for the reader to overwrite, every sample of them.
    #[cfg(feature = "casacore")]
    pub(crate) fn from_pool(
        window: usize,
        len: usize,
        precision: Precision,
        pool: &ChunkPool,
    ) -> Self {
        let values = match precision {
            Precision::Single => ChunkValues::Single {
                vis: pool.take(len),
                weight: pool.take(len),
            },
            Precision::Double => ChunkValues::Double {
                vis: pool.take(len),
                weight: pool.take(len),
            },
        };
        Self {
            window,
            values,
            flag: pool.take(len),
            flagged: 0,
        }
    }
}

/// Spare buffers of one element type (see [`ChunkPool`]).
#[derive(Debug, Default)]
pub struct Shelf<T>(Mutex<Vec<Vec<T>>>);

/// The buffers of time chunks a writer has finished with, handed back
/// ([`ChunkPool::give`]) so that the reader fills them again rather than allocating new
/// ones: a new buffer of a chunk's size is fresh memory that the kernel must fault in
/// and zero page by page, which cost the MS import more CPU than forming Stokes I
/// (docs/performance.md). Memory stays bounded: the reader takes a new buffer only when
/// the pool is empty, so the buffers alive never outnumber the chunks in flight at once
/// (plus at most [`ChunkPool::MAX_SPARE`] of each type given back by other writers).
#[derive(Debug, Default)]
pub struct ChunkPool {
    vis32: Shelf<Complex32>,
    vis64: Shelf<Complex64>,
    f32: Shelf<f32>,
    f64: Shelf<f64>,
    flag: Shelf<bool>,
}

/// The element types of chunk buffers.
pub trait PoolElement: Copy + Default + Send + 'static {
    /// This type's spare buffers in `pool`.
    fn shelf(pool: &ChunkPool) -> &Shelf<Self>;
}

macro_rules! pool_element {
    ($t:ty, $field:ident) => {
        impl PoolElement for $t {
            fn shelf(pool: &ChunkPool) -> &Shelf<Self> {
                &pool.$field
            }
        }
    };
}
pool_element!(Complex32, vis32);
pool_element!(Complex64, vis64);
pool_element!(f32, f32);
pool_element!(f64, f64);
pool_element!(bool, flag);

impl ChunkPool {
    /// Spare buffers kept per element type; more given back are freed.
    pub const MAX_SPARE: usize = 16;

    /// Gives a buffer back for reuse.
    pub fn give<T: PoolElement>(&self, v: Vec<T>) {
        if v.capacity() == 0 {
            return;
        }
        let mut shelf = T::shelf(self).0.lock().unwrap_or_else(|e| e.into_inner());
        if shelf.len() < Self::MAX_SPARE {
            shelf.push(v);
        }
    }

    /// A buffer of `len` elements: a spare one (its old values, resized) or a new one.
    pub fn take<T: PoolElement>(&self, len: usize) -> Vec<T> {
        let spare = T::shelf(self)
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        match spare {
            Some(mut v) => {
                v.resize(len, T::default());
                v
            }
            None => vec![T::default(); len],
        }
    }

    /// Spare buffers held, of every type.
    pub fn spare(&self) -> usize {
        fn n<T>(s: &Shelf<T>) -> usize {
            s.0.lock().unwrap_or_else(|e| e.into_inner()).len()
        }
        n(&self.vis32) + n(&self.vis64) + n(&self.f32) + n(&self.f64) + n(&self.flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_hands_back_what_it_was_given_and_no_more_than_it_keeps() {
        let pool = ChunkPool::default();
        let mut v: Vec<f32> = pool.take(3);
        assert_eq!(v, [0.0; 3]);
        v[1] = 7.0;
        let ptr = v.as_ptr();
        pool.give(v);
        assert_eq!(pool.spare(), 1);
        // The same buffer, resized, with its old values.
        let w: Vec<f32> = pool.take(2);
        assert_eq!((w.as_ptr(), w.as_slice()), (ptr, &[0.0, 7.0][..]));
        assert_eq!(pool.spare(), 0);
        // Other types have their own shelves.
        pool.give(vec![true; 4]);
        assert_eq!(pool.take::<Complex32>(1), [Complex32::new(0.0, 0.0)]);
        assert_eq!(pool.take::<bool>(4), [true; 4]);
        for _ in 0..ChunkPool::MAX_SPARE + 3 {
            pool.give(vec![1.0f64]);
        }
        pool.give(Vec::<f64>::new());
        assert_eq!(pool.spare(), ChunkPool::MAX_SPARE);
    }
}
