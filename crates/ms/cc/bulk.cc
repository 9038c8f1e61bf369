// Bulk reads of MeasurementSet main-table columns for aperture-ms (cargo feature
// `casacore`): a block of rows of an array column, sliced per cell, in one casacore
// call (ArrayColumn::getColumnCells), where rubbl_casatables 0.10 offers only one cell
// per call. Compiled against the casacore sources rubbl_casatables_impl builds (the
// namespace is renamed to rubbl_casacore there, so this file defines the same macro).
//
// Every function catches all C++ exceptions and returns their message; callers hold
// aperture-ms's casacore lock (casacore's table system is not thread-safe).

#include <cstdint>
#include <cstring>
#include <stdexcept>

#include <casacore/tables/DataMan/TiledStMan.h>
#include <casacore/tables/Tables.h>

namespace {

void set_error(char *err, size_t errlen, const char *msg) {
    if (errlen == 0) return;
    std::strncpy(err, msg, errlen - 1);
    err[errlen - 1] = '\0';
}

void set_current_error(char *err, size_t errlen) {
    try {
        throw;
    } catch (const std::exception &e) {
        set_error(err, errlen, e.what());
    } catch (...) {
        set_error(err, errlen, "unidentifiable C++ exception");
    }
}

// Sizes the tile cache of a tiled column for reading rows in order, sliced to `blc` +
// `len`: the tiles across one tile-row of the slice, twice (a tile-row may straddle two
// calls). Left to itself, casacore sizes the cache of a sliced column read to the slice
// over *all* rows of the hypercube (up to a quarter of the machine's memory), i.e.
// the whole column.
void size_tile_cache(const casacore::Table &table, const casacore::String &column,
                     uint64_t first_row, size_t ndim, const int64_t *blc,
                     const int64_t *len) {
    casacore::DataManager *dm = table.findDataManager(column, casacore::True);
    casacore::TiledStMan *tsm = dynamic_cast<casacore::TiledStMan *>(dm);
    if (tsm == nullptr) return;
    const casacore::IPosition &tile = tsm->tileShape(first_row);
    size_t n = 1;
    for (size_t i = 0; i < ndim && i < tile.size(); i++) {
        if (tile[i] <= 0 || len[i] <= 0) continue;
        n *= static_cast<size_t>((blc[i] + len[i] - 1) / tile[i] - blc[i] / tile[i] + 1);
    }
    tsm->setCacheSize(first_row, static_cast<casacore::uInt>(2 * n), casacore::True);
}

template <typename T>
void get_cells(const casacore::Table &table, const casacore::String &column,
               const casacore::RefRows &rows, const casacore::Slicer &slicer,
               const casacore::IPosition &shape, void *out) {
    casacore::ArrayColumn<T> col(table, column);
    casacore::Array<T> arr(shape, static_cast<T *>(out), casacore::SHARE);
    col.getColumnCells(rows, slicer, arr, casacore::False);
    if (arr.data() != static_cast<T *>(out))
        throw std::runtime_error("casacore reallocated the destination array");
}

}  // namespace

extern "C" {

// Opens the table at `path` read-only (casacore's table cache shares it with other
// handles of the same table). Returns null and sets `err` on failure.
void *aperture_ms_open(const char *path, size_t path_len, char *err, size_t errlen) {
    try {
        casacore::String p(path, path_len);
        return new casacore::Table(p, casacore::Table::Old);
    } catch (...) {
        set_current_error(err, errlen);
        return nullptr;
    }
}

void aperture_ms_close(void *table) {
    try {
        delete static_cast<casacore::Table *>(table);
    } catch (...) {
    }
}

// Reads the cells of `column` in `rows` (ascending row numbers), each sliced to the
// box `blc[0..ndim]` + `len[0..ndim]` (casacore axis order, fastest first), into `out`,
// which holds `out_len` elements laid out [row][...][axis 0] (axis 0 fastest). `cell`
// (ndim values) is the full cell shape every row must have: checked once when the
// column has a fixed shape, else row by row; a row of another shape stops the read
// with -2 and its position in `rows` in `*bad_row`. `kind`: 0 Bool, 1 Float,
// 2 Double, 3 Complex, 4 DComplex. Returns 0, or -1 with `err` set.
int aperture_ms_get_cells(void *table, const char *column, size_t column_len, int kind,
                          const uint64_t *rows, size_t nrows, size_t ndim,
                          const int64_t *blc, const int64_t *len, const int64_t *cell,
                          void *out, size_t out_len, size_t *bad_row, char *err,
                          size_t errlen) {
    try {
        const casacore::Table &t = *static_cast<casacore::Table *>(table);
        casacore::String col(column, column_len);
        casacore::IPosition start(ndim), length(ndim), full(ndim), shape(ndim + 1);
        size_t n = nrows;
        for (size_t i = 0; i < ndim; i++) {
            start[i] = blc[i];
            length[i] = len[i];
            full[i] = cell[i];
            shape[i] = len[i];
            n *= static_cast<size_t>(len[i]);
        }
        shape[ndim] = static_cast<ssize_t>(nrows);
        if (n != out_len) throw std::runtime_error("destination size does not match the slice");
        if (nrows == 0) return 0;

        casacore::ArrayColumnBase base(t, col);
        const casacore::ColumnDesc &desc = base.columnDesc();
        if (desc.isFixedShape()) {
            if (!desc.shape().isEqual(full)) {
                *bad_row = 0;
                return -2;
            }
        } else {
            for (size_t r = 0; r < nrows; r++) {
                if (!base.isDefined(rows[r]) || !base.shape(rows[r]).isEqual(full)) {
                    *bad_row = r;
                    return -2;
                }
            }
        }

        casacore::Vector<casacore::rownr_t> rv(casacore::IPosition(1, nrows),
                                                const_cast<casacore::rownr_t *>(
                                                    reinterpret_cast<const casacore::rownr_t *>(rows)),
                                                casacore::SHARE);
        casacore::RefRows refrows(rv, casacore::False, casacore::True);
        casacore::Slicer slicer(start, length, casacore::Slicer::endIsLength);
        size_tile_cache(t, col, rows[0], ndim, blc, len);
        switch (kind) {
        case 0: get_cells<casacore::Bool>(t, col, refrows, slicer, shape, out); break;
        case 1: get_cells<casacore::Float>(t, col, refrows, slicer, shape, out); break;
        case 2: get_cells<casacore::Double>(t, col, refrows, slicer, shape, out); break;
        case 3: get_cells<casacore::Complex>(t, col, refrows, slicer, shape, out); break;
        case 4: get_cells<casacore::DComplex>(t, col, refrows, slicer, shape, out); break;
        default: throw std::runtime_error("unknown element kind");
        }
        return 0;
    } catch (...) {
        set_current_error(err, errlen);
        return -1;
    }
}

// Where `column`'s cells are stored, for the read-ahead of aperture-ms's prefetcher
// (src/prefetch.rs): `*seqnr` is its data manager's sequence number (its files are
// `table.f<seqnr>*`). For a tiled storage manager with one hypercube over all rows,
// `*tile_rows` is the tile's extent along the row axis, `*tile_bytes` the bytes of one
// row of tiles (tiles across the cell times the bucket size) and `*cube_rows` the
// cube's rows; otherwise these are 0. Returns 0, or -1 with `err` set.
int aperture_ms_column_storage(void *table, const char *column, size_t column_len,
                               uint64_t *seqnr, uint64_t *tile_rows, uint64_t *tile_bytes,
                               uint64_t *cube_rows, char *err, size_t errlen) {
    try {
        const casacore::Table &t = *static_cast<casacore::Table *>(table);
        casacore::String col(column, column_len);
        casacore::DataManager *dm = t.findDataManager(col, casacore::True);
        *seqnr = dm->sequenceNr();
        *tile_rows = *tile_bytes = *cube_rows = 0;
        casacore::TiledStMan *tsm = dynamic_cast<casacore::TiledStMan *>(dm);
        if (tsm == nullptr || t.nrow() == 0) return 0;
        const casacore::IPosition &cube = tsm->hypercubeShape(0);
        const casacore::IPosition &tile = tsm->tileShape(0);
        size_t nd = cube.size();
        if (nd == 0 || tile.size() != nd) return 0;
        uint64_t across = 1;
        for (size_t i = 0; i + 1 < nd; i++) {
            if (tile[i] <= 0) return 0;
            across *= static_cast<uint64_t>((cube[i] + tile[i] - 1) / tile[i]);
        }
        if (tile[nd - 1] <= 0) return 0;
        *tile_rows = static_cast<uint64_t>(tile[nd - 1]);
        *tile_bytes = across * tsm->bucketSize(0);
        *cube_rows = static_cast<uint64_t>(cube[nd - 1]);
        return 0;
    } catch (...) {
        set_current_error(err, errlen);
        return -1;
    }
}

}  // extern "C"
