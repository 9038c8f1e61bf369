//! [`MeasurementSet`]: an MSv2 opened read-only: its subtables on opening, then a
//! selection resolved into a [`Plan`], then Stokes-I blocks read window group by window
//! group. Without the cargo feature `casacore`, opening is an error saying how to enable
//! it.
//!
//! A `MeasurementSet` holds casacore table handles and stays on the thread that opened
//! it (it is not `Send`); the [`MsMeta`] and [`Plan`] it returns are plain data.
//! casacore's table system is not thread-safe (tables opened twice by path share one
//! object through its table cache), so every casacore call of this crate, the closing
//! of tables included, runs under one process-wide lock: MeasurementSets may be used
//! from several threads at once, one call at a time.

use std::path::{Path, PathBuf};

use aperture_imaging::vis::VisBlock;

use crate::chunks::{ChunkPool, Precision, TimeChunk};
use crate::error::MsError;
use crate::meta::MsMeta;
use crate::plan::Plan;
use crate::select::Selection;

/// An open MeasurementSet.
#[derive(Debug)]
pub struct MeasurementSet {
    meta: MsMeta,
    /// The main table; `None` only while being dropped.
    #[cfg(feature = "casacore")]
    main: Option<crate::casa::table::Tab>,
}

/// The lock every casacore call runs under (see the module documentation). Code that
/// uses `rubbl_casatables` directly in the same process (e.g. a test writing a table)
/// should hold it too.
#[cfg(feature = "casacore")]
pub fn casacore_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(feature = "casacore")]
impl Drop for MeasurementSet {
    fn drop(&mut self) {
        let _guard = casacore_lock();
        self.main.take();
    }
}

#[cfg(feature = "casacore")]
const MAIN_OPEN: &str = "the main table is open until the MeasurementSet is dropped";

/// Checks that `path` is a directory holding a casacore table.
fn check_table_dir(path: &Path) -> Result<(), MsError> {
    let not = |reason: &str| MsError::NotAMeasurementSet {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not("no such directory")),
        Err(e) => Err(not(&format!("cannot read it: {e}"))),
        Ok(m) if !m.is_dir() => Err(not("not a directory; a MeasurementSet is a directory")),
        Ok(_) if !path.join("table.dat").is_file() => {
            Err(not("no table.dat: the directory is not a casacore table"))
        }
        Ok(_) => Ok(()),
    }
}

/// Whether this build can read MeasurementSets.
pub const SUPPORTED: bool = cfg!(feature = "casacore");

impl MeasurementSet {
    /// Opens the MeasurementSet at `path` read-only and reads its subtables. Errors name
    /// the table and column at fault: a path that is not a casacore table, a missing
    /// subtable or column, a column of the wrong type, a value out of range.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MsError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        check_table_dir(&path)?;
        Self::open_checked(path)
    }

    #[cfg(feature = "casacore")]
    fn open_checked(path: PathBuf) -> Result<Self, MsError> {
        use crate::casa::table::Tab;
        let _guard = casacore_lock();
        // Subtables first: a missing one is named before casacore is asked about the
        // main table.
        for t in [
            "ANTENNA",
            "DATA_DESCRIPTION",
            "FIELD",
            "POLARIZATION",
            "SPECTRAL_WINDOW",
        ] {
            if !crate::casa::table::is_table_dir(&path.join(t)) {
                return Err(MsError::MissingTable {
                    path,
                    table: t.into(),
                });
            }
        }
        let main = Tab::open(&path, "MAIN")?;
        let meta = crate::casa::subtables::read_meta(&path, &main)?;
        Ok(Self {
            meta,
            main: Some(main),
        })
    }

    #[cfg(not(feature = "casacore"))]
    fn open_checked(path: PathBuf) -> Result<Self, MsError> {
        Err(MsError::NoSupport { path })
    }

    /// The subtables and the main table's size and columns.
    pub fn meta(&self) -> &MsMeta {
        &self.meta
    }

    /// Resolves `sel` (see [`Selection`] for the defaults) and reads the per-row
    /// columns, the grid and its UVW (while a thread reads the start of the data, FLAG and
    /// weight columns' files ahead into the page cache, [`crate::prefetch`]); windows are `channels_per_window` channels wide
    /// (default: one per spectral window). Errors name the option (`--field`, `--spw`,
    /// `--channels`, `--time-range`, `--channels-per-window`) or the table and column.
    pub fn plan(
        &mut self,
        sel: &Selection,
        channels_per_window: Option<usize>,
    ) -> Result<Plan, MsError> {
        #[cfg(feature = "casacore")]
        {
            let _guard = casacore_lock();
            let main = self.main.as_mut().expect(MAIN_OPEN);
            // The data pass's first rows are paged in while the per-row columns are read.
            crate::casa::data::read_ahead_first(main, sel.column.column());
            crate::casa::rows::plan(main, &self.meta, sel, channels_per_window)
        }
        #[cfg(not(feature = "casacore"))]
        {
            let _ = (sel, channels_per_window);
            Err(MsError::NoSupport {
                path: self.meta.path.clone(),
            })
        }
    }

    /// Reads time chunks `chunks` (ascending; chunk `tc` is integrations
    /// `tc·time_chunk ..`) of windows `group` of `plan` (consecutive windows of one
    /// spectral window) in one pass over their rows, and hands each chunk to `sink` as
    /// soon as it is decoded (on a second thread; `sink` returning false stops the
    /// read). Samples are laid out as the Zarr store's chunks, in `precision` (see
    /// [`TimeChunk`]), in buffers taken from `pool` when it has some (give the chunks'
    /// buffers back to it once written, [`ChunkPool::give`]). The casacore lock is taken
    /// per block of rows read, so memory is bounded by a few time chunks, not by the
    /// windows or the MeasurementSet.
    pub fn read_time_chunks(
        &mut self,
        plan: &Plan,
        group: &[usize],
        (time_chunk, chunks): (usize, &[usize]),
        (precision, pool): (Precision, &ChunkPool),
        sink: &mut (dyn FnMut(TimeChunk) -> bool + Send),
    ) -> Result<(), MsError> {
        #[cfg(feature = "casacore")]
        {
            let main = self.main.as_mut().expect(MAIN_OPEN);
            crate::casa::data::read_time_chunks(
                main,
                plan,
                group,
                (time_chunk, chunks),
                (precision, pool),
                sink,
            )
        }
        #[cfg(not(feature = "casacore"))]
        {
            let _ = (plan, group, time_chunk, chunks, precision, pool, sink);
            Err(MsError::NoSupport {
                path: self.meta.path.clone(),
            })
        }
    }

    /// Reads windows `group` of `plan` (consecutive windows of one spectral window, e.g.
    /// from [`Plan::window_groups`]) in one pass over the main table: one block per
    /// window, rows on the plan's grid (time-major), cells no row fills flagged with
    /// zero weight.
    pub fn read_windows(&mut self, plan: &Plan, group: &[usize]) -> Result<Vec<VisBlock>, MsError> {
        #[cfg(feature = "casacore")]
        {
            let _guard = casacore_lock();
            let main = self.main.as_mut().expect(MAIN_OPEN);
            crate::casa::data::read_group(main, plan, group)
        }
        #[cfg(not(feature = "casacore"))]
        {
            let _ = (plan, group);
            Err(MsError::NoSupport {
                path: self.meta.path.clone(),
            })
        }
    }
}
