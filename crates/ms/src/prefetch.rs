//! Read-ahead of the storage-manager files a data pass is about to read: a thread asks
//! the kernel (`posix_fadvise(POSIX_FADV_WILLNEED)`, POSIX.1-2008; Linux starts the
//! reads and returns) to bring the next bytes of each file into the page cache, a
//! bounded window ahead of the reading position, so that casacore's reads, serialised
//! under the casacore lock, find their pages there instead of waiting on each page-in
//! (issue #9, docs/measurement-sets.md). Nothing is read into this process's memory: the
//! pages stay the kernel's (page cache, not RSS), and on a warm cache the advice is a
//! no-op.
//!
//! Rows map to bytes per file ([`FileMap`]). A tiled storage manager (TiledShapeStMan,
//! TiledColumnStMan) with one hypercube over all rows stores its tiles in tile-number
//! order with the row axis slowest (casacore `TSMCube`), so rows `r` lie in the row of
//! tiles `r / tile_rows`, at `(r / tile_rows) · tile_bytes`; the map is used only when
//! the file's size is exactly that layout's. Any other file (StandardStMan,
//! IncrementalStMan, several hypercubes) is read ahead in proportion (row fraction →
//! byte fraction): a sequential window over the whole file, which is harmless when
//! inexact.

use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

/// Bytes read ahead of the reading position, all files together.
pub const WINDOW_BYTES: u64 = 512 << 20;

/// Whether the read-ahead runs: yes, unless the environment variable
/// `APERTURE_MS_READAHEAD` is `0` or `off` (for measuring without it).
pub fn enabled() -> bool {
    !matches!(
        std::env::var("APERTURE_MS_READAHEAD").as_deref(),
        Ok("0" | "off")
    )
}

/// The tile layout of a tiled column (from casacore's `TiledStMan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiles {
    /// Rows per tile (the tile's extent along the row axis).
    pub tile_rows: u64,
    /// Bytes of one row of tiles: tiles across a cell × bucket size.
    pub tile_bytes: u64,
    /// Rows of the hypercube.
    pub cube_rows: u64,
}

/// How a file's bytes follow the table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowMap {
    /// Rows `r` are in bytes `(r / tile_rows) · tile_bytes ..` (one row of tiles).
    Tiled { tile_rows: u64, tile_bytes: u64 },
    /// Rows `r` of `nrows` are near byte `size · r / nrows`.
    Proportional { nrows: u64 },
}

/// A storage-manager file of `size` bytes and where the rows lie in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMap {
    pub size: u64,
    pub map: RowMap,
}

impl FileMap {
    /// The map of a file of `size` bytes in a table of `nrows` rows: [`RowMap::Tiled`]
    /// when `tiles` is given, its cube spans the table's rows and the file holds exactly
    /// its rows of tiles (`⌈nrows / tile_rows⌉ · tile_bytes` bytes), else
    /// [`RowMap::Proportional`].
    pub fn new(size: u64, nrows: u64, tiles: Option<Tiles>) -> Self {
        let map = match tiles {
            Some(t)
                if t.tile_rows > 0
                    && t.cube_rows == nrows
                    && nrows
                        .div_ceil(t.tile_rows)
                        .checked_mul(t.tile_bytes)
                        .is_some_and(|b| b == size) =>
            {
                RowMap::Tiled {
                    tile_rows: t.tile_rows,
                    tile_bytes: t.tile_bytes,
                }
            }
            _ => RowMap::Proportional { nrows },
        };
        Self { size, map }
    }

    /// The bytes holding rows `rows` (within the file).
    pub fn bytes(&self, rows: Range<u64>) -> Range<u64> {
        let (a, b) = match self.map {
            RowMap::Tiled {
                tile_rows,
                tile_bytes,
            } => (
                (rows.start / tile_rows).saturating_mul(tile_bytes),
                rows.end.div_ceil(tile_rows).saturating_mul(tile_bytes),
            ),
            RowMap::Proportional { nrows } if nrows > 0 => {
                let at = |r: u64, up: bool| {
                    let x = u128::from(self.size) * u128::from(r.min(nrows));
                    let n = u128::from(nrows);
                    let q = if up { x.div_ceil(n) } else { x / n };
                    u64::try_from(q).unwrap_or(u64::MAX)
                };
                (at(rows.start, false), at(rows.end, true))
            }
            RowMap::Proportional { .. } => (0, self.size),
        };
        a.min(self.size)..b.min(self.size)
    }
}

/// The end (exclusive) of the blocks to read ahead when the reader is at block
/// `current` of `blocks` (row ranges, ascending, in reading order): the blocks from
/// `current` on whose bytes in all files `maps`, counted from the current block's start
/// in each, total at most `window` (the current block always, however large). One
/// horizon for all files keeps them level in rows, so the disk's bandwidth goes where the
/// reader will be next, in proportion to each file's share.
pub fn horizon(maps: &[&FileMap], blocks: &[Range<u64>], current: usize, window: u64) -> usize {
    let Some(block) = blocks.get(current) else {
        return blocks.len();
    };
    let starts: Vec<u64> = maps.iter().map(|m| m.bytes(block.clone()).start).collect();
    let mut end = current + 1;
    while let Some(b) = blocks.get(end) {
        let total: u64 = maps
            .iter()
            .zip(&starts)
            .map(|(m, &s)| m.bytes(b.clone()).end.saturating_sub(s))
            .sum();
        if total > window {
            break;
        }
        end += 1;
    }
    end
}

/// The read-ahead of one file: the bytes advised so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ahead {
    advised_to: u64,
}

impl Ahead {
    /// The reader is at block `current` of `blocks`, reading ahead to block `horizon`
    /// (exclusive, from [`horizon`]): returns the bytes to advise now, those of blocks
    /// `current..horizon` not advised before (the bytes of blocks skipped over are not),
    /// or `None`.
    pub fn advance(
        &mut self,
        map: &FileMap,
        blocks: &[Range<u64>],
        current: usize,
        horizon: usize,
    ) -> Option<Range<u64>> {
        let start = map.bytes(blocks.get(current)?.clone()).start;
        let last = blocks.get(horizon.min(blocks.len()).checked_sub(1)?)?;
        let from = self.advised_to.max(start);
        let end = map.bytes(last.clone()).end;
        (end > from).then(|| {
            self.advised_to = end;
            from..end
        })
    }
}

/// The first `window` bytes to read ahead of `files`, before the reader's blocks are
/// known (rows from 0): each file's share in proportion to its size, so that the files
/// stay level in rows.
pub fn first_window(files: &[FileMap], window: u64) -> Vec<Range<u64>> {
    let total: u128 = files.iter().map(|f| u128::from(f.size)).sum();
    files
        .iter()
        .map(|f| {
            let share = (u128::from(f.size) * u128::from(window))
                .checked_div(total)
                .unwrap_or(0);
            0..u64::try_from(share).unwrap_or(u64::MAX).min(f.size)
        })
        .collect()
}

/// A file to read ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchFile {
    pub path: PathBuf,
    pub map: FileMap,
}

/// The prefetch thread's body: for each block index received (the block the reader is
/// about to read; the latest when several are waiting), advises each file's bytes of the
/// blocks up to `window` bytes ahead ([`horizon`]); returns when the sender hangs up (the
/// pass ended). Files that cannot be opened are skipped.
pub fn run(files: &[PrefetchFile], blocks: &[Range<u64>], window: u64, at: &Receiver<usize>) {
    let mut open = open_files(files);
    let maps: Vec<&FileMap> = open.iter().map(|(_, f)| &f.map).collect();
    let mut ahead = vec![Ahead::default(); open.len()];
    while let Ok(mut current) = at.recv() {
        while let Ok(later) = at.try_recv() {
            current = later;
        }
        let end = horizon(&maps, blocks, current, window);
        for ((file, f), a) in open.iter_mut().zip(&mut ahead) {
            if let Some(bytes) = a.advance(&f.map, blocks, current, end) {
                will_need(file, bytes);
            }
        }
    }
}

/// Advises the [`first_window`] of `files` (the start of the data pass that planning
/// precedes); returns when advised.
pub fn run_first(files: &[PrefetchFile], window: u64) {
    let open = open_files(files);
    let maps: Vec<FileMap> = open.iter().map(|(_, f)| f.map).collect();
    for ((file, _), bytes) in open.iter().zip(first_window(&maps, window)) {
        will_need(file, bytes);
    }
}

fn open_files(files: &[PrefetchFile]) -> Vec<(File, &PrefetchFile)> {
    files
        .iter()
        .filter_map(|f| match File::open(&f.path) {
            Ok(file) => Some((file, f)),
            Err(e) => {
                tracing::debug!(path = %f.path.display(), error = %e, "not read ahead");
                None
            }
        })
        .collect()
}

/// Bytes per `posix_fadvise` call: Linux reads at most the device's read-ahead or
/// maximum request size per call (`force_page_cache_ra`; 8 MiB on the benchmark VM, 128
/// KiB by default), so a range is advised in pieces of this many bytes.
const PIECE: u64 = 1 << 20;

/// Asks the kernel to read `bytes` of `file` into the page cache (advice: failures are
/// ignored; a no-op where `posix_fadvise` is missing).
fn will_need(file: &File, bytes: Range<u64>) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        use std::os::fd::AsRawFd;
        let mut at = bytes.start;
        while at < bytes.end {
            let len = PIECE.min(bytes.end - at);
            let (Ok(off), Ok(n)) = (libc::off_t::try_from(at), libc::off_t::try_from(len)) else {
                return;
            };
            // SAFETY: the descriptor is open for the call's duration; the call only
            // advises.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), off, n, libc::POSIX_FADV_WILLNEED);
            }
            at += len;
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let _ = (file, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DATA of the 4.11 GB benchmark MS (docs/performance.md): 1,293,900 rows, tiles of
    /// 4 × 64 × 512 complex64 in 1 MiB buckets, one tile across a cell; the file
    /// table.f0_TSM1 is 2,650,800,128 bytes = ⌈1,293,900 / 512⌉ = 2528 buckets.
    fn large_data() -> FileMap {
        let tiles = Tiles {
            tile_rows: 512,
            tile_bytes: 1 << 20,
            cube_rows: 1_293_900,
        };
        FileMap::new(2_650_800_128, 1_293_900, Some(tiles))
    }

    #[test]
    fn tiled_rows_map_to_their_rows_of_tiles() {
        let m = large_data();
        let tiled = RowMap::Tiled {
            tile_rows: 512,
            tile_bytes: 1 << 20,
        };
        assert_eq!(m.map, tiled);
        const MIB: u64 = 1 << 20;
        // Rows 0..512: tile 0; rows 511..513: tiles 0 and 1; rows 1024..5000: tiles 2..=9
        // (5000 / 512 = 9.77); the last row, 1,293,899: tile 2527, the file's last MiB.
        assert_eq!(m.bytes(0..512), 0..MIB);
        assert_eq!(m.bytes(511..513), 0..2 * MIB);
        assert_eq!(m.bytes(1024..5000), 2 * MIB..10 * MIB);
        assert_eq!(m.bytes(1_293_899..1_293_900), 2527 * MIB..2_650_800_128);
        // Two tiles across a cell (e.g. 64 channels in tiles of 32): a row of tiles is
        // two buckets.
        let two = Tiles {
            tile_rows: 100,
            tile_bytes: 2 * 4096,
            cube_rows: 250,
        };
        let m = FileMap::new(3 * 2 * 4096, 250, Some(two));
        assert_eq!(m.bytes(150..201), 8192..3 * 8192);
    }

    #[test]
    fn other_layouts_map_in_proportion() {
        let tiles = Tiles {
            tile_rows: 512,
            tile_bytes: 1 << 20,
            cube_rows: 1_293_900,
        };
        // A file of another size (a second hypercube, a header), a cube of other rows,
        // or no tiles at all: proportional.
        for m in [
            FileMap::new(2_650_800_128 + 1, 1_293_900, Some(tiles)),
            FileMap::new(
                2_650_800_128,
                1_293_900,
                Some(Tiles {
                    cube_rows: 1000,
                    ..tiles
                }),
            ),
            FileMap::new(1000, 1_293_900, None),
        ] {
            assert_eq!(m.map, RowMap::Proportional { nrows: 1_293_900 }, "{m:?}");
        }
        // 93,649,920 bytes (StandardStMan of the same MS) over 1,293,900 rows: row
        // 646,950 (half) at byte 46,824,960; rows 1..2 at ⌊72.378⌋..⌈144.756⌉.
        let m = FileMap::new(93_649_920, 1_293_900, None);
        assert_eq!(m.bytes(646_950..1_293_900), 46_824_960..93_649_920);
        assert_eq!(m.bytes(1..2), 72..145);
        assert_eq!(m.bytes(0..2_000_000), 0..93_649_920, "clamped");
        assert_eq!(FileMap::new(10, 0, None).bytes(0..0), 0..10, "no rows");
    }

    #[test]
    fn the_window_advances_with_the_reader() {
        // 20 blocks of 5120 rows: 10 tiles, 10 MiB each, of a data file, and 5 MiB of a
        // weight file (tiles of 512 KiB). A window of 50 MiB: at block 0 the blocks
        // ending within 50 MiB of both files' block-0 starts: blocks 0..3 (45 MiB;
        // with block 3, 60); each file advised up to there.
        const MIB: u64 = 1 << 20;
        let tiles = |tile_bytes| Tiles {
            tile_rows: 512,
            tile_bytes,
            cube_rows: 102_400,
        };
        let data = FileMap::new(200 * MIB, 102_400, Some(tiles(MIB)));
        let weight = FileMap::new(100 * MIB, 102_400, Some(tiles(MIB / 2)));
        let maps = [&data, &weight];
        let blocks: Vec<Range<u64>> = (0..20).map(|b| b * 5120..(b + 1) * 5120).collect();
        let (mut d, mut w) = (Ahead::default(), Ahead::default());
        let h = horizon(&maps, &blocks, 0, 50 * MIB);
        assert_eq!(h, 3);
        assert_eq!(d.advance(&data, &blocks, 0, h), Some(0..30 * MIB));
        assert_eq!(w.advance(&weight, &blocks, 0, h), Some(0..15 * MIB));
        assert_eq!(d.advance(&data, &blocks, 0, h), None, "nothing new");
        // At block 1: blocks 1..4, only block 3 new.
        let h = horizon(&maps, &blocks, 1, 50 * MIB);
        assert_eq!(h, 4);
        assert_eq!(d.advance(&data, &blocks, 1, h), Some(30 * MIB..40 * MIB));
        assert_eq!(w.advance(&weight, &blocks, 1, h), Some(15 * MIB..20 * MIB));
        // The reader skipped ahead to block 10 (positions coalesced): from its start.
        let h = horizon(&maps, &blocks, 10, 50 * MIB);
        assert_eq!(d.advance(&data, &blocks, 10, h), Some(100 * MIB..130 * MIB));
        // The window is cut at the last block; past it, nothing.
        assert_eq!(horizon(&maps, &blocks, 19, 50 * MIB), 20);
        assert_eq!(
            d.advance(&data, &blocks, 19, 20),
            Some(190 * MIB..200 * MIB)
        );
        assert_eq!(horizon(&maps, &blocks, 20, 50 * MIB), 20);
        assert_eq!(d.advance(&data, &blocks, 20, 20), None);
        // A block larger than the window is still advised whole, and alone.
        assert_eq!(horizon(&maps, &blocks, 0, MIB), 1);
        let mut a = Ahead::default();
        assert_eq!(a.advance(&data, &blocks, 0, 1), Some(0..10 * MIB));
        // Sparse blocks (rows of one spectral window): only their bytes' span.
        let sparse = [0..10, 100_000..100_010];
        let mut a = Ahead::default();
        assert_eq!(horizon(&[&data], &sparse, 0, 35 * MIB), 1);
        assert_eq!(a.advance(&data, &sparse, 0, 1), Some(0..MIB));
        assert_eq!(a.advance(&data, &sparse, 1, 2), Some(195 * MIB..196 * MIB));
    }

    #[test]
    fn the_first_window_is_shared_by_size() {
        // 512 MiB over the benchmark MS's DATA (2,650,800,128 B), FLAG (41,418,752 B) and
        // WEIGHT_SPECTRUM (1,325,400,064 B) files: 4,017,618,944 B in all, so
        // ⌊536,870,912 × size / total⌋ = ⌊354,224,106.89⌋, ⌊5,534,751.67⌋ and
        // ⌊177,112,053.44⌋ bytes.
        let files = [
            FileMap::new(2_650_800_128, 1_293_900, None),
            FileMap::new(41_418_752, 1_293_900, None),
            FileMap::new(1_325_400_064, 1_293_900, None),
        ];
        let w = first_window(&files, 512 << 20);
        assert_eq!(w, vec![0..354_224_106, 0..5_534_751, 0..177_112_053]);
        assert_eq!(first_window(&files[..1], 1 << 40), vec![0..2_650_800_128]);
        assert_eq!(first_window(&[], 1 << 20), Vec::<Range<u64>>::new());
    }

    #[test]
    fn run_stops_when_the_reader_hangs_up() {
        // A real file (advice only; its content is untouched) and one that is missing:
        // the thread advises, skips the missing one and returns once the sender is gone.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.f0_TSM1");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let files = [
            PrefetchFile {
                path: path.clone(),
                map: FileMap::new(8192, 4, None),
            },
            PrefetchFile {
                path: dir.path().join("missing"),
                map: FileMap::new(8192, 4, None),
            },
        ];
        let blocks = [0..2, 2..4];
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(0).unwrap();
        tx.send(1).unwrap();
        drop(tx);
        run(&files, &blocks, WINDOW_BYTES, &rx);
        assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 8192]);
    }
}
