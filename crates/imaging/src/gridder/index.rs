//! Visibility indexing: every (row, channel) sample is assigned its uv tile and first
//! w-plane, and samples are sorted so that each tile's work for one w-plane is a few
//! contiguous runs (the "visibility index" of ducc0's wgridder, Arras et al. 2021 §3).

use rayon::prelude::*;

use super::layout::Layout;
use crate::ImagingError;
use crate::coords::UvwMetres;

/// Side of a square uv tile in grid cells; tiles of the same parity along u are at
/// least `TILE` rows apart, so with `W ≤ TILE` their footprints never overlap.
pub const TILE: usize = 16;

/// Largest number of (tile, plane) keys per sample for which [`VisIndex::build`] uses a
/// counting sort (its count array holds 4 bytes per key).
pub const COUNTING_KEYS_PER_SAMPLE: u64 = 4;

/// One visibility sample: row and channel of the input arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    pub row: u32,
    pub chan: u32,
}

/// A run of entries sharing one tile and one first w-plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub first_plane: u32,
    pub start: usize,
}

/// Samples sorted by (tile, first w-plane).
#[derive(Debug, Clone)]
pub struct VisIndex {
    pub entries: Vec<Entry>,
    /// Runs in key order, followed by a sentinel whose `start` is `entries.len()`.
    pub runs: Vec<Run>,
    /// `tile_runs[t]..tile_runs[t + 1]` are the runs of tile t = tu·ntiles_v + tv.
    pub tile_runs: Vec<u32>,
    pub ntiles_u: usize,
    pub ntiles_v: usize,
}

impl VisIndex {
    /// Indexes every sample for which `keep(row, chan)` is true.
    ///
    /// With a moderate number of (tile, plane) keys (at most [`COUNTING_KEYS_PER_SAMPLE`]
    /// per sample, plus 2²⁰) the samples are placed by a counting sort (one pass to count
    /// the samples per key, one to place them, as ducc0's wgridder does); otherwise by a
    /// comparison sort. Both give the order (key, row, chan).
    pub fn build(
        uvw_r: &[UvwMetres],
        freq_c: &[f64],
        layout: &Layout,
        keep: impl Fn(usize, usize) -> bool + Sync,
    ) -> Result<Self, ImagingError> {
        let _span = tracing::debug_span!("index").entered();
        let nkeys = layout.nu.div_ceil(TILE) as u64
            * layout.nv.div_ceil(TILE) as u64
            * layout.nplanes as u64;
        let nsamples = (uvw_r.len() * freq_c.len()) as u64;
        if nkeys < u64::from(u32::MAX) && nkeys <= COUNTING_KEYS_PER_SAMPLE * nsamples + (1 << 20) {
            Self::build_counting(uvw_r, freq_c, layout, keep)
        } else {
            Self::build_sorted(uvw_r, freq_c, layout, keep)
        }
    }

    /// The key (tile · nplanes + first plane) of one sample, or the error for a sample
    /// whose footprint leaves the grid.
    #[inline]
    fn key(layout: &Layout, ntiles_v: usize, uvw: UvwMetres, f: f64) -> Result<u64, ImagingError> {
        let p = layout.position(uvw, f);
        if !layout.fits(&p) {
            return Err(layout.out_of_grid_error(uvw, f));
        }
        let tile = (p.iu0 as usize / TILE) * ntiles_v + p.iv0 as usize / TILE;
        Ok(tile as u64 * layout.nplanes as u64 + p.iw0 as u64)
    }

    fn build_counting(
        uvw_r: &[UvwMetres],
        freq_c: &[f64],
        layout: &Layout,
        keep: impl Fn(usize, usize) -> bool + Sync,
    ) -> Result<Self, ImagingError> {
        let nchan = freq_c.len();
        let ntiles_u = layout.nu.div_ceil(TILE);
        let ntiles_v = layout.nv.div_ceil(TILE);
        let nplanes = layout.nplanes;
        let nkeys = ntiles_u * ntiles_v * nplanes;
        // Keys in [row, chan] order, in parallel; u32::MAX marks a dropped sample.
        let mut keys = vec![u32::MAX; uvw_r.len() * nchan];
        if nchan > 0 {
            keys.par_chunks_mut(nchan)
                .zip(uvw_r.par_iter())
                .enumerate()
                .try_for_each(|(row, (out, uvw))| {
                    for (chan, (k, &f)) in out.iter_mut().zip(freq_c).enumerate() {
                        if keep(row, chan) {
                            *k = Self::key(layout, ntiles_v, *uvw, f)? as u32;
                        }
                    }
                    Ok::<(), ImagingError>(())
                })?;
        }
        // start[k] = first entry of key k once counted and summed.
        let mut start = vec![0u32; nkeys + 1];
        for &k in &keys {
            if k != u32::MAX {
                start[k as usize + 1] += 1;
            }
        }
        let mut runs = Vec::new();
        let mut tile_runs = vec![0u32; ntiles_u * ntiles_v + 1];
        for k in 0..nkeys {
            if start[k + 1] > 0 {
                runs.push(Run {
                    first_plane: (k % nplanes) as u32,
                    start: start[k] as usize,
                });
                tile_runs[k / nplanes + 1] += 1;
            }
            start[k + 1] += start[k];
        }
        let n = start[nkeys] as usize;
        runs.push(Run {
            first_plane: u32::MAX,
            start: n,
        });
        for t in 0..ntiles_u * ntiles_v {
            tile_runs[t + 1] += tile_runs[t];
        }
        // Place the samples; visiting them in [row, chan] order keeps that order per key.
        let mut entries = vec![Entry::default(); n];
        for (i, &k) in keys.iter().enumerate() {
            if k != u32::MAX {
                let slot = &mut start[k as usize];
                entries[*slot as usize] = Entry {
                    row: (i / nchan) as u32,
                    chan: (i % nchan) as u32,
                };
                *slot += 1;
            }
        }
        Ok(Self {
            entries,
            runs,
            tile_runs,
            ntiles_u,
            ntiles_v,
        })
    }

    fn build_sorted(
        uvw_r: &[UvwMetres],
        freq_c: &[f64],
        layout: &Layout,
        keep: impl Fn(usize, usize) -> bool + Sync,
    ) -> Result<Self, ImagingError> {
        let nchan = freq_c.len();
        let ntiles_u = layout.nu.div_ceil(TILE);
        let ntiles_v = layout.nv.div_ceil(TILE);
        let nplanes = layout.nplanes as u64;
        // Keys per row in parallel.
        let keyed: Result<Vec<Vec<(u64, Entry)>>, ImagingError> = uvw_r
            .par_iter()
            .enumerate()
            .map(|(row, uvw)| {
                let mut out = Vec::with_capacity(nchan);
                for (chan, &f) in freq_c.iter().enumerate() {
                    if !keep(row, chan) {
                        continue;
                    }
                    out.push((
                        Self::key(layout, ntiles_v, *uvw, f)?,
                        Entry {
                            row: row as u32,
                            chan: chan as u32,
                        },
                    ));
                }
                Ok(out)
            })
            .collect();
        let mut keyed: Vec<(u64, Entry)> = keyed?.into_iter().flatten().collect();
        keyed.par_sort_unstable_by_key(|&(k, e)| (k, e.row, e.chan));

        let ntiles = ntiles_u * ntiles_v;
        let mut entries = Vec::with_capacity(keyed.len());
        let mut runs = Vec::new();
        let mut tile_runs = vec![0u32; ntiles + 1];
        let mut last_key = u64::MAX;
        for (i, &(key, e)) in keyed.iter().enumerate() {
            if key != last_key {
                let tile = (key / nplanes) as usize;
                runs.push(Run {
                    first_plane: (key % nplanes) as u32,
                    start: i,
                });
                tile_runs[tile + 1] += 1;
                last_key = key;
            }
            entries.push(e);
        }
        drop(keyed);
        runs.push(Run {
            first_plane: u32::MAX,
            start: entries.len(),
        });
        for t in 0..ntiles {
            tile_runs[t + 1] += tile_runs[t];
        }
        Ok(Self {
            entries,
            runs,
            tile_runs,
            ntiles_u,
            ntiles_v,
        })
    }

    /// Entry ranges of tile `tile` whose first plane lies in `[lo, hi]`.
    pub fn tile_ranges(
        &self,
        tile: usize,
        lo: usize,
        hi: usize,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let (a, b) = (
            self.tile_runs[tile] as usize,
            self.tile_runs[tile + 1] as usize,
        );
        (a..b).filter_map(move |r| {
            let p = self.runs[r].first_plane as usize;
            (p >= lo && p <= hi).then(|| self.runs[r].start..self.runs[r + 1].start)
        })
    }

    /// For each of `nplanes` w-planes, the first and last tile row (band) holding samples
    /// for it (a sample with first plane j touches planes j..j + `w_support`), or `None`.
    pub fn plane_bands(&self, w_support: usize, nplanes: usize) -> Vec<Option<(usize, usize)>> {
        let mut bands: Vec<Option<(usize, usize)>> = vec![None; nplanes];
        for tile in 0..self.ntiles_u * self.ntiles_v {
            let tu = tile / self.ntiles_v;
            let (a, b) = (
                self.tile_runs[tile] as usize,
                self.tile_runs[tile + 1] as usize,
            );
            for run in &self.runs[a..b] {
                let first = run.first_plane as usize;
                for band in &mut bands[first..(first + w_support).min(nplanes)] {
                    *band = Some(band.map_or((tu, tu), |(lo, hi)| (lo.min(tu), hi.max(tu))));
                }
            }
        }
        bands
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::RaDec;
    use crate::gridder::params::{DataExtent, Request, choose_layout};
    use crate::image::ImageGeometry;
    use crate::sim::Rng;

    /// A 128² wide-field layout and 500 random baselines reaching its uv limit.
    fn problem() -> (Vec<UvwMetres>, Vec<f64>, Layout) {
        let geom =
            ImageGeometry::square(128, 1e-3, RaDec::from_degrees(0.0, -30.0), 1e8, 1e6).unwrap();
        let freq = vec![1.0e8, 1.2e8, 1.4e8];
        // |u|, |v| ≤ 0.4/cell wavelengths at the highest frequency, in metres.
        let lim = 0.4 / 1e-3 * crate::SPEED_OF_LIGHT / 1.4e8;
        let mut rng = Rng::new(5);
        let uvw: Vec<UvwMetres> = (0..500)
            .map(|_| {
                let mut c = || lim * (2.0 * rng.uniform() - 1.0);
                UvwMetres::new(c(), c(), c())
            })
            .collect();
        let data = DataExtent {
            nvis: uvw.len() * freq.len(),
            w_min: 0.0,
            w_max: lim * 1.4e8 / crate::SPEED_OF_LIGHT,
            uv_extent: 0.4,
        };
        let req = Request {
            epsilon: 1e-6,
            double: true,
            wstacking: true,
        };
        let layout = choose_layout(&geom, &data, &req).unwrap();
        (uvw, freq, layout)
    }

    #[test]
    fn counting_and_comparison_sorts_build_the_same_index() {
        let (uvw, freq, layout) = problem();
        let keep = |r: usize, c: usize| !(r + c).is_multiple_of(7);
        let a = VisIndex::build_counting(&uvw, &freq, &layout, keep).unwrap();
        let b = VisIndex::build_sorted(&uvw, &freq, &layout, keep).unwrap();
        assert_eq!(a.entries, b.entries);
        assert_eq!(a.runs, b.runs);
        assert_eq!(a.tile_runs, b.tile_runs);
        let kept = (0..uvw.len())
            .flat_map(|r| (0..freq.len()).map(move |c| (r, c)))
            .filter(|&(r, c)| keep(r, c))
            .count();
        assert_eq!(a.entries.len(), kept);
        assert!(a.runs.len() > 10);
    }

    #[test]
    fn both_sorts_reject_a_sample_off_the_grid() {
        let (mut uvw, freq, layout) = problem();
        uvw[17] = UvwMetres::new(1e7, 0.0, 0.0);
        for r in [
            VisIndex::build_counting(&uvw, &freq, &layout, |_, _| true),
            VisIndex::build_sorted(&uvw, &freq, &layout, |_, _| true),
        ] {
            let e = r.expect_err("a baseline far beyond the uv limit must be rejected");
            assert!(e.to_string().contains("cell"), "{e}");
        }
    }
}
