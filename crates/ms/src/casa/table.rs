//! One casacore table opened read-only through `rubbl_casatables`, with its columns'
//! types checked before any read (rubbl reads cells into buffers sized from the column
//! description), and every casacore exception turned into an error naming the table
//! and column.

use std::path::{Path, PathBuf};

use rubbl_casatables::{CasaScalarData, GlueDataType, Table, TableError, TableOpenMode};

use super::bulk::{BulkError, BulkTable, ColumnStorage, Elem};
use crate::error::MsError;
use crate::prefetch::{FileMap, PrefetchFile};

/// A table of the MeasurementSet at `ms`: `MAIN` or a subtable.
pub(crate) struct Tab {
    ms: PathBuf,
    name: String,
    table: Table,
    columns: Vec<String>,
    /// The bulk reader's handle of the same table, opened on first use.
    bulk: Option<BulkTable>,
}

impl std::fmt::Debug for Tab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tab")
            .field("ms", &self.ms)
            .field("name", &self.name)
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// Whether `dir` looks like a casacore table (a directory with `table.dat`).
pub(crate) fn is_table_dir(dir: &Path) -> bool {
    dir.join("table.dat").is_file()
}

/// What a column must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Scalar,
    Array,
}

impl Tab {
    /// Opens table `name` (`MAIN` for the main table) of the MeasurementSet at `ms`.
    pub(crate) fn open(ms: &Path, name: &str) -> Result<Self, MsError> {
        let dir = if name == "MAIN" {
            ms.to_path_buf()
        } else {
            ms.join(name)
        };
        if !is_table_dir(&dir) {
            return Err(MsError::MissingTable {
                path: ms.to_path_buf(),
                table: name.into(),
            });
        }
        let casacore = |reason: String| MsError::Casacore {
            path: ms.to_path_buf(),
            table: name.into(),
            reason,
        };
        let mut table =
            Table::open(&dir, TableOpenMode::Read).map_err(|e| casacore(e.to_string()))?;
        let columns = table.column_names().map_err(|e| casacore(e.to_string()))?;
        Ok(Self {
            ms: ms.to_path_buf(),
            name: name.into(),
            table,
            columns,
            bulk: None,
        })
    }

    /// The MeasurementSet's path.
    pub(crate) fn ms_path(&self) -> &Path {
        &self.ms
    }

    pub(crate) fn n_rows(&self) -> u64 {
        self.table.n_rows()
    }

    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    pub(crate) fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c == column)
    }

    fn casacore(&self, column: &str, e: impl std::fmt::Display) -> MsError {
        MsError::Casacore {
            path: self.ms.clone(),
            table: format!("{}/{column}", self.name),
            reason: e.to_string(),
        }
    }

    fn table_error(&self, column: &str, row: Option<u64>, e: TableError) -> MsError {
        match row {
            Some(r) => self.casacore(column, format!("row {r}: {e}")),
            None => self.casacore(column, e),
        }
    }

    /// An error about a value of this table.
    pub(crate) fn bad(&self, column: &str, row: Option<u64>, reason: impl Into<String>) -> MsError {
        MsError::BadValue {
            path: self.ms.clone(),
            table: self.name.clone(),
            column: column.into(),
            row,
            reason: reason.into(),
        }
    }

    /// Checks that `column` exists, holds `types` (one of them) and is a scalar or an
    /// array column; returns the element type found.
    pub(crate) fn require(
        &mut self,
        column: &str,
        types: &[GlueDataType],
        shape: Shape,
    ) -> Result<GlueDataType, MsError> {
        if !self.has(column) {
            return Err(MsError::MissingColumn {
                path: self.ms.clone(),
                table: self.name.clone(),
                column: column.into(),
            });
        }
        let desc = self
            .table
            .get_col_desc(column)
            .map_err(|e| self.casacore(column, e))?;
        let found = desc.data_type();
        let scalar = desc.is_scalar();
        let want_scalar = shape == Shape::Scalar;
        if !types.contains(&found) || scalar != want_scalar {
            let kind = |s: bool| if s { "a scalar" } else { "an array" };
            return Err(MsError::ColumnType {
                path: self.ms.clone(),
                table: self.name.clone(),
                column: column.into(),
                expected: format!(
                    "{} column of {}",
                    kind(want_scalar),
                    types
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                found: format!("{} column of {found}", kind(scalar)),
            });
        }
        Ok(found)
    }

    /// A whole scalar column (check its type with [`Tab::require`] first).
    pub(crate) fn column<T: CasaScalarData>(&mut self, column: &str) -> Result<Vec<T>, MsError> {
        let v = self
            .table
            .get_col_as_vec::<T>(column)
            .map_err(|e| self.table_error(column, None, e))?;
        if v.len() as u64 != self.n_rows() {
            return Err(self.bad(
                column,
                None,
                format!("read {} values for {} rows", v.len(), self.n_rows()),
            ));
        }
        Ok(v)
    }

    /// One scalar cell.
    pub(crate) fn scalar<T: CasaScalarData>(
        &mut self,
        column: &str,
        row: u64,
    ) -> Result<T, MsError> {
        self.table
            .get_cell::<T>(column, row)
            .map_err(|e| self.table_error(column, Some(row), e))
    }

    /// One array cell, flattened with the first casacore axis fastest (e.g. DATA
    /// `[chan][corr]`: index `chan·ncorr + corr`).
    pub(crate) fn cell<T: CasaScalarData>(
        &mut self,
        column: &str,
        row: u64,
    ) -> Result<Vec<T>, MsError> {
        self.table
            .get_cell_as_vec::<T>(column, row)
            .map_err(|e| self.table_error(column, Some(row), e))
    }

    /// One array cell of `expected` elements; another size is an error naming the row.
    pub(crate) fn cell_of<T: CasaScalarData>(
        &mut self,
        column: &str,
        row: u64,
        expected: usize,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<T>, MsError> {
        let v = self.cell::<T>(column, row)?;
        if v.len() != expected {
            return Err(self.bad(
                column,
                Some(row),
                format!("has {} values; expected {}", v.len(), what()),
            ));
        }
        Ok(v)
    }

    /// The table's directory.
    fn dir(&self) -> PathBuf {
        if self.name == "MAIN" {
            self.ms.clone()
        } else {
            self.ms.join(&self.name)
        }
    }

    /// The bulk reader's handle, opened on first use (`column` names the error).
    fn bulk(&mut self, column: &str) -> Result<&mut BulkTable, MsError> {
        if self.bulk.is_none() {
            let bulk = BulkTable::open(&self.dir()).map_err(|e| self.casacore(column, e))?;
            self.bulk = Some(bulk);
        }
        Ok(self.bulk.as_mut().expect("opened above"))
    }

    /// The storage-manager files holding `columns`, each with where the rows lie in it
    /// (see [`crate::prefetch`]): the files `table.f<n>` and `table.f<n>_*` of each
    /// column's data manager `n`, empty files left out.
    pub(crate) fn storage_files(&mut self, columns: &[&str]) -> Result<Vec<PrefetchFile>, MsError> {
        let nrows = self.n_rows();
        let mut managers: Vec<ColumnStorage> = Vec::new();
        for &c in columns {
            let s = self.bulk(c)?.storage(c).map_err(|e| self.casacore(c, e))?;
            if !managers.iter().any(|m| m.seqnr == s.seqnr) {
                managers.push(s);
            }
        }
        let dir = self.dir();
        let entries =
            std::fs::read_dir(&dir).map_err(|e| self.casacore(columns.join(", ").as_str(), e))?;
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(m) = managers.iter().find(|m| {
                let base = format!("table.f{}", m.seqnr);
                name == base || name.strip_prefix(&base).is_some_and(|r| r.starts_with('_'))
            }) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || meta.len() == 0 {
                continue;
            }
            // Only a tiled manager's tile files (`_TSM<k>`) can hold the tile layout; the
            // map checks their size against it.
            let tiles = m.tiles.filter(|_| name.contains("_TSM"));
            files.push(PrefetchFile {
                path: entry.path(),
                map: FileMap::new(meta.len(), nrows, tiles),
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// The cells of `column` in `rows` (ascending), each of `cell` shape (casacore axis
    /// order, fastest first, e.g. DATA `[corr, chan]`) sliced to `blc` + `len`, in one
    /// casacore call, into `out`: row after row, axis 0 fastest. A row whose cell has
    /// another shape is an error naming it, as [`Tab::cell_of`] words it.
    pub(crate) fn cells_into<T: Elem + CasaScalarData>(
        &mut self,
        column: &str,
        rows: &[u64],
        (blc, len, cell): (&[i64], &[i64], &[i64]),
        out: &mut Vec<T>,
        what: impl Fn() -> String,
    ) -> Result<(), MsError> {
        if rows.is_empty() {
            out.clear();
            return Ok(());
        }
        let bulk = self.bulk(column)?;
        match bulk.cells(column, rows, blc, len, cell, out) {
            Ok(()) => Ok(()),
            Err(BulkError::Shape { index }) => {
                let row = rows[index];
                let expected = cell.iter().map(|&n| n as usize).product();
                match self.cell::<T>(column, row) {
                    Err(e) => Err(e),
                    Ok(v) if v.len() != expected => Err(self.bad(
                        column,
                        Some(row),
                        format!("has {} values; expected {}", v.len(), what()),
                    )),
                    Ok(_) => Err(self.bad(
                        column,
                        Some(row),
                        format!("has a cell of another shape; expected {}", what()),
                    )),
                }
            }
            Err(BulkError::Casacore(e)) => {
                let (first, last) = (rows[0], rows[rows.len() - 1]);
                Err(self.casacore(column, format!("rows {first}..={last}: {e}")))
            }
        }
    }

    /// A string keyword of a column's MEASINFO record (e.g. `Ref`), if present.
    pub(crate) fn measinfo(&mut self, column: &str, key: &str) -> Option<String> {
        let mut kw = self.table.get_column_keyword_record(column).ok()?;
        if !kw.keyword_names().ok()?.iter().any(|k| k == "MEASINFO") {
            return None;
        }
        let mut mi: rubbl_casatables::TableRecord = kw.get_field("MEASINFO").ok()?;
        if !mi.keyword_names().ok()?.iter().any(|k| k == key) {
            return None;
        }
        mi.get_field::<String>(key).ok()
    }

    /// A column's `QuantumUnits` keyword, if present.
    pub(crate) fn units(&mut self, column: &str) -> Option<Vec<String>> {
        let mut kw = self.table.get_column_keyword_record(column).ok()?;
        if !kw.keyword_names().ok()?.iter().any(|k| k == "QuantumUnits") {
            return None;
        }
        kw.get_field::<Vec<String>>("QuantumUnits").ok()
    }
}
