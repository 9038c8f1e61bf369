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
    pub fn build(
        uvw_r: &[UvwMetres],
        freq_c: &[f64],
        layout: &Layout,
        keep: impl Fn(usize, usize) -> bool + Sync,
    ) -> Result<Self, ImagingError> {
        let _span = tracing::debug_span!("index").entered();
        let nchan = freq_c.len();
        let ntiles_u = layout.nu.div_ceil(TILE);
        let ntiles_v = layout.nv.div_ceil(TILE);
        let nplanes = layout.nplanes as u64;
        // Keys per row in parallel; u64::MAX marks a dropped sample.
        let keyed: Result<Vec<Vec<(u64, Entry)>>, ImagingError> = uvw_r
            .par_iter()
            .enumerate()
            .map(|(row, uvw)| {
                let mut out = Vec::with_capacity(nchan);
                for (chan, &f) in freq_c.iter().enumerate() {
                    if !keep(row, chan) {
                        continue;
                    }
                    let p = layout.position(*uvw, f);
                    if !layout.fits(&p) {
                        return Err(layout.out_of_grid_error(*uvw, f));
                    }
                    let tile = (p.iu0 as usize / TILE) * ntiles_v + p.iv0 as usize / TILE;
                    let key = tile as u64 * nplanes + p.iw0 as u64;
                    out.push((
                        key,
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
