"""MeasurementSet (MSv2) writer shared by make_ms_fixtures.py and make_large_ms.py.

Writes the main table in row blocks (memory bounded by one block) and the subtables the
aperture MS reader uses: ANTENNA, SPECTRAL_WINDOW, POLARIZATION, DATA_DESCRIPTION, FIELD,
FEED, OBSERVATION. Column meanings follow the MeasurementSet definition version 2.0
(A. J. Kemball & M. H. Wieringa, 2000, "MeasurementSet definition version 2.0", AIPS++
Note 229), through python-casacore's `default_ms`.

Also the geometry shared by both scripts: reading an `aperture simulate` bundle,
recovering its station positions from its uvw, ENU -> ITRF on the WGS84 ellipsoid, and
the epoch at which the phase centre transits the site.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field

import numpy as np

import casacore.tables as pt

# CORR_TYPE codes: casacore's Stokes::StokesTypes enum (casa/Measures/Stokes.h).
CORR_CODES = {"RR": 5, "RL": 6, "LR": 7, "LL": 8, "XX": 9, "XY": 10, "YX": 11, "YY": 12}
CORR_NAMES = {v: k for k, v in CORR_CODES.items()}
# MEAS_FREQ_REF codes: casacore's MFrequency::Types (REST 0, LSRK 1, LSRD 2, BARY 3,
# GEO 4, TOPO 5).
MEAS_FREQ_TOPO = 5

SPEED_OF_LIGHT = 299_792_458.0
SECONDS_PER_DAY = 86_400.0
# Solar seconds per sidereal second, as crates/imaging/src/sim/uvw.rs (SIDEREAL_FACTOR).
SIDEREAL_FACTOR = 0.997_269_58
# WGS84, as crates/imaging/src/coords.rs.
WGS84_A = 6_378_137.0
WGS84_F = 1.0 / 298.257_223_563
# The sphere the synthetic layouts put stations on (crates/imaging/src/sim/layout_gen.rs).
LAYOUT_EARTH_RADIUS_M = 6_371_008.8


# ---------------------------------------------------------------------------------------
# What goes into the subtables


@dataclass
class Antennas:
    """ANTENNA rows: names, ITRF positions [ant, 3] (m), dish diameters (m)."""

    names: list[str]
    stations: list[str]
    position_itrf_m: np.ndarray
    dish_diameter_m: np.ndarray
    mount: str = "X-Y"
    type: str = "GROUND-BASED"


@dataclass
class SpectralWindow:
    """One SPECTRAL_WINDOW row; channel centres and widths in Hz."""

    name: str
    chan_freq_hz: np.ndarray
    chan_width_hz: np.ndarray
    meas_freq_ref: int = MEAS_FREQ_TOPO

    @property
    def ref_frequency_hz(self) -> float:
        """REF_FREQUENCY: the first channel's frequency (the importuvfits convention)."""
        return float(self.chan_freq_hz[0])


@dataclass
class Field:
    """One FIELD row; direction in radians (J2000), NUM_POLY = 0."""

    name: str
    ra_rad: float
    dec_rad: float
    time_mjd_s: float


@dataclass
class MsLayout:
    """Everything about an MS except its rows."""

    corr_names: list[str]
    spws: list[SpectralWindow]
    fields: list[Field]
    antennas: Antennas
    telescope: str
    time_range_mjd_s: tuple[float, float]
    observer: str = "aperture"
    project: str = "aperture MS fixtures"
    # Data columns besides DATA (e.g. CORRECTED_DATA), same shape and type.
    extra_data_columns: list[str] = field(default_factory=list)
    weight_spectrum: bool = True
    # Rows per tile of the tiled columns (DATA, FLAG, WEIGHT_SPECTRUM).
    tile_rows: int = 128

    @property
    def corr_types(self) -> list[int]:
        return [CORR_CODES[c] for c in self.corr_names]

    @property
    def max_chan(self) -> int:
        return max(len(s.chan_freq_hz) for s in self.spws)


# ---------------------------------------------------------------------------------------
# Creating the MS


def _tiled(name: str, column: str, shape: list[int]) -> dict:
    return {
        "TYPE": "TiledShapeStMan",
        "NAME": name,
        "SPEC": {"DEFAULTTILESHAPE": np.array(shape, dtype=np.int32)},
        "COLUMNS": [column],
    }


def create_ms(path: str, layout: MsLayout):
    """Creates the MS at `path` (which must not exist), fills its subtables and returns
    the main table, open for writing, with no rows.

    DATA (and the extra data columns), FLAG and WEIGHT_SPECTRUM are variable-shape
    [chan, corr] columns in TiledShapeStMan, as CASA writes them; WEIGHT and SIGMA have
    the fixed shape [corr]; TIME, the ids and other slowly varying scalars are in
    IncrementalStMan; the rest (UVW, ANTENNA1/2, FLAG_ROW) in StandardStMan."""
    if os.path.exists(path):
        raise FileExistsError(f"{path}: exists; remove it first")
    ncorr, nchan = len(layout.corr_names), layout.max_chan
    tile = [ncorr, nchan, layout.tile_rows]
    cols = []
    dminfo = {}
    data_cols = ["DATA", *layout.extra_data_columns]
    for i, name in enumerate(data_cols):
        cols.append(pt.makearrcoldesc(name, 0j, ndim=2, valuetype="complex",
                                      keywords={"UNIT": "Jy"},
                                      comment=f"The {name} column"))
        dminfo[f"*{i + 1}"] = _tiled(f"Tiled{name}", name, tile)
    dminfo[f"*{len(data_cols) + 1}"] = _tiled("TiledFlag", "FLAG", tile)
    if layout.weight_spectrum:
        cols.append(pt.makearrcoldesc("WEIGHT_SPECTRUM", 0.0, ndim=2, valuetype="float",
                                      comment="Weight for each channel and correlation"))
        dminfo[f"*{len(data_cols) + 2}"] = _tiled("TiledWgtSpectrum", "WEIGHT_SPECTRUM",
                                                  tile)
    # WEIGHT and SIGMA with a fixed shape (stored directly, as CASA's writers do).
    for name, comment in [("WEIGHT", "Weight for each polarization spectrum"),
                          ("SIGMA", "Estimated rms noise for channel with unity bandpass "
                                    "response")]:
        cols.append(pt.makearrcoldesc(name, 0.0, shape=[ncorr], valuetype="float",
                                      options=5, comment=comment))
    # Columns constant over runs of rows go to IncrementalStMan.
    dminfo[f"*{len(dminfo) + 1}"] = {
        "TYPE": "IncrementalStMan", "NAME": "ISMData", "SPEC": {"BUCKETSIZE": 32768},
        "COLUMNS": ["TIME", "TIME_CENTROID", "INTERVAL", "EXPOSURE", "FEED1", "FEED2",
                    "ARRAY_ID", "OBSERVATION_ID", "PROCESSOR_ID", "STATE_ID",
                    "SCAN_NUMBER", "FIELD_ID", "DATA_DESC_ID"],
    }
    ms = pt.default_ms(path, pt.maketabdesc(cols), dminfo)
    _write_subtables(path, layout)
    return ms


def _subtable(path: str, name: str, shapes: dict[str, list[int]] | None = None):
    """Opens subtable `name` of the MS for writing. With `shapes`, it is first re-created
    with those array columns fixed-shape and stored directly: casacore leaves 4 bytes
    per indirectly stored array uninitialised, so variable-shape subtable columns would
    make the files differ from run to run (the values would not)."""
    sub = os.path.join(path, name)
    if shapes:
        req = pt.required_ms_desc(name)
        desc = {c: {**req[c], "shape": np.array(s, dtype=np.int32), "ndim": len(s),
                    "option": 5} for c, s in shapes.items()}
        shutil.rmtree(sub)
        pt.default_ms_subtable(name, sub, desc).close()
    return pt.table(sub, readonly=False, ack=False)


def _write_subtables(path: str, layout: MsLayout) -> None:
    a = layout.antennas
    nant = len(a.names)
    with _subtable(path, "ANTENNA") as t:
        t.addrows(nant)
        t.putcol("NAME", list(a.names))
        t.putcol("STATION", list(a.stations))
        t.putcol("TYPE", [a.type] * nant)
        t.putcol("MOUNT", [a.mount] * nant)
        t.putcol("POSITION", np.asarray(a.position_itrf_m, dtype=np.float64))
        t.putcol("OFFSET", np.zeros((nant, 3)))
        t.putcol("DISH_DIAMETER", np.asarray(a.dish_diameter_m, dtype=np.float64))
        t.putcol("FLAG_ROW", np.zeros(nant, dtype=bool))

    nchans = {len(s.chan_freq_hz) for s in layout.spws}
    spw_shapes = ({c: [min(nchans)] for c in ("CHAN_FREQ", "CHAN_WIDTH", "EFFECTIVE_BW",
                                              "RESOLUTION")} if len(nchans) == 1 else None)
    with _subtable(path, "SPECTRAL_WINDOW", spw_shapes) as t:
        t.addrows(len(layout.spws))
        for i, s in enumerate(layout.spws):
            f = np.asarray(s.chan_freq_hz, dtype=np.float64)
            w = np.asarray(s.chan_width_hz, dtype=np.float64)
            t.putcell("NAME", i, s.name)
            t.putcell("NUM_CHAN", i, len(f))
            t.putcell("CHAN_FREQ", i, f)
            t.putcell("CHAN_WIDTH", i, w)
            t.putcell("EFFECTIVE_BW", i, w)
            t.putcell("RESOLUTION", i, w)
            t.putcell("REF_FREQUENCY", i, s.ref_frequency_hz)
            t.putcell("TOTAL_BANDWIDTH", i, float(np.abs(w).sum()))
            t.putcell("MEAS_FREQ_REF", i, s.meas_freq_ref)
            t.putcell("NET_SIDEBAND", i, 1)
            t.putcell("IF_CONV_CHAIN", i, 0)
            t.putcell("FREQ_GROUP", i, 0)
            t.putcell("FREQ_GROUP_NAME", i, "")
            t.putcell("FLAG_ROW", i, False)

    ncorr = len(layout.corr_names)
    # Receptors: X,Y (or R,L); correlation "PQ" multiplies receptor P of ANTENNA1 with
    # receptor Q of ANTENNA2.
    receptors = sorted({c[0] for c in layout.corr_names} | {c[1] for c in layout.corr_names},
                       key="XYRL".index)
    if len(receptors) == 1:
        receptors = ["X", "Y"] if receptors[0] in "XY" else ["R", "L"]
    with _subtable(path, "POLARIZATION", {"CORR_TYPE": [ncorr],
                                          "CORR_PRODUCT": [ncorr, 2]}) as t:
        t.addrows(1)
        t.putcell("NUM_CORR", 0, ncorr)
        t.putcell("CORR_TYPE", 0, np.array(layout.corr_types, dtype=np.int32))
        prod = np.array([[receptors.index(c[0]), receptors.index(c[1])]
                         for c in layout.corr_names], dtype=np.int32)
        t.putcell("CORR_PRODUCT", 0, prod)
        t.putcell("FLAG_ROW", 0, False)

    with _subtable(path, "DATA_DESCRIPTION") as t:
        t.addrows(len(layout.spws))
        t.putcol("SPECTRAL_WINDOW_ID", np.arange(len(layout.spws), dtype=np.int32))
        t.putcol("POLARIZATION_ID", np.zeros(len(layout.spws), dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(len(layout.spws), dtype=bool))

    with _subtable(path, "FIELD", {c: [1, 2] for c in ("DELAY_DIR", "PHASE_DIR",
                                                       "REFERENCE_DIR")}) as t:
        nf = len(layout.fields)
        t.addrows(nf)
        t.putcol("NAME", [f.name for f in layout.fields])
        t.putcol("CODE", [""] * nf)
        t.putcol("TIME", np.array([f.time_mjd_s for f in layout.fields]))
        t.putcol("NUM_POLY", np.zeros(nf, dtype=np.int32))
        d = np.array([[[f.ra_rad, f.dec_rad]] for f in layout.fields])
        for c in ("DELAY_DIR", "PHASE_DIR", "REFERENCE_DIR"):
            t.putcol(c, d)
        t.putcol("SOURCE_ID", np.full(nf, -1, dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(nf, dtype=bool))

    t0, t1 = layout.time_range_mjd_s
    with _subtable(path, "FEED", {"BEAM_OFFSET": [2, 2], "POL_RESPONSE": [2, 2],
                                  "POLARIZATION_TYPE": [2], "RECEPTOR_ANGLE": [2]}) as t:
        t.addrows(nant)
        t.putcol("ANTENNA_ID", np.arange(nant, dtype=np.int32))
        t.putcol("FEED_ID", np.zeros(nant, dtype=np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.full(nant, -1, dtype=np.int32))
        t.putcol("TIME", np.full(nant, 0.5 * (t0 + t1)))
        t.putcol("INTERVAL", np.full(nant, t1 - t0))
        t.putcol("NUM_RECEPTORS", np.full(nant, 2, dtype=np.int32))
        t.putcol("BEAM_ID", np.full(nant, -1, dtype=np.int32))
        t.putcol("BEAM_OFFSET", np.zeros((nant, 2, 2)))
        t.putcol("POLARIZATION_TYPE", np.array([receptors] * nant))
        t.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (nant, 1, 1)))
        t.putcol("POSITION", np.zeros((nant, 3)))
        angle = [0.0, math.pi / 2] if receptors[0] == "X" else [0.0, 0.0]
        t.putcol("RECEPTOR_ANGLE", np.tile(np.array(angle), (nant, 1)))

    with _subtable(path, "OBSERVATION", {"LOG": [1], "SCHEDULE": [1]}) as t:
        t.addrows(1)
        t.putcell("TELESCOPE_NAME", 0, layout.telescope)
        t.putcell("TIME_RANGE", 0, np.array([t0, t1]))
        t.putcell("OBSERVER", 0, layout.observer)
        t.putcell("PROJECT", 0, layout.project)
        t.putcell("SCHEDULE_TYPE", 0, "")
        t.putcell("RELEASE_DATE", 0, 0.0)
        t.putcell("LOG", 0, np.array([""]))
        t.putcell("SCHEDULE", 0, np.array([""]))
        t.putcell("FLAG_ROW", 0, False)


# Main-table columns a row block must give, and their dtypes.
ROW_COLUMNS = {
    "TIME": np.float64, "ANTENNA1": np.int32, "ANTENNA2": np.int32,
    "DATA_DESC_ID": np.int32, "FIELD_ID": np.int32, "SCAN_NUMBER": np.int32,
    "UVW": np.float64, "DATA": np.complex64, "FLAG": np.bool_, "FLAG_ROW": np.bool_,
    "WEIGHT": np.float32, "SIGMA": np.float32,
}


def put_rows(ms, block: dict, interval_s: float) -> int:
    """Appends one block of rows: `block` maps column names to arrays with the row axis
    first (see ROW_COLUMNS; optionally WEIGHT_SPECTRUM and extra data columns). The
    constant columns are filled here: TIME_CENTROID = TIME, INTERVAL = EXPOSURE =
    `interval_s`, FEED1/2 = ARRAY_ID = OBSERVATION_ID = 0, PROCESSOR_ID = STATE_ID = -1
    (no rows in those subtables). Returns the first row written."""
    n = len(block["TIME"])
    for k, dt in ROW_COLUMNS.items():
        if k not in block:
            raise KeyError(f"row block lacks column {k}")
        if len(block[k]) != n:
            raise ValueError(f"row block column {k} has {len(block[k])} rows, TIME {n}")
    start = ms.nrows()
    ms.addrows(n)
    for k, v in block.items():
        dt = ROW_COLUMNS.get(k, np.float32 if k == "WEIGHT_SPECTRUM" else np.complex64)
        ms.putcol(k, np.ascontiguousarray(v, dtype=dt), startrow=start, nrow=n)
    ms.putcol("TIME_CENTROID", np.asarray(block["TIME"], dtype=np.float64),
              startrow=start, nrow=n)
    for k, val, dt in [("INTERVAL", interval_s, np.float64),
                       ("EXPOSURE", interval_s, np.float64),
                       ("FEED1", 0, np.int32), ("FEED2", 0, np.int32),
                       ("ARRAY_ID", 0, np.int32), ("OBSERVATION_ID", 0, np.int32),
                       ("PROCESSOR_ID", -1, np.int32), ("STATE_ID", -1, np.int32)]:
        ms.putcol(k, np.full(n, val, dtype=dt), startrow=start, nrow=n)
    return start


# ---------------------------------------------------------------------------------------
# Geometry


def enu_to_itrf(lon_rad: float, lat_rad: float, height_m: float,
                enu_m: np.ndarray) -> np.ndarray:
    """ITRF (WGS84 geocentric) positions [n, 3] of local east-north-up offsets [n, 3]
    about a geodetic site: EarthLocation::to_xyz + enu_to_xyz_offset of
    crates/imaging/src/coords.rs."""
    e2 = WGS84_F * (2.0 - WGS84_F)
    sl, cl = math.sin(lon_rad), math.cos(lon_rad)
    sp, cp = math.sin(lat_rad), math.cos(lat_rad)
    nrad = WGS84_A / math.sqrt(1.0 - e2 * sp * sp)
    site = np.array([(nrad + height_m) * cp * cl, (nrad + height_m) * cp * sl,
                     (nrad * (1.0 - e2) + height_m) * sp])
    e, n, u = enu_m[:, 0], enu_m[:, 1], enu_m[:, 2]
    d = np.stack([-sl * e - sp * cl * n + cp * cl * u,
                  cl * e - sp * sl * n + cp * sl * u,
                  cp * n + sp * u], axis=1)
    return site + d


def gmst_deg(jd_ut1: float) -> float:
    """Greenwich mean sidereal time in degrees (Meeus, Astronomical Algorithms, 2nd ed.,
    eq. 12.4), from a Julian date in UT1 (UTC is close enough here: |UT1-UTC| < 0.9 s)."""
    t = (jd_ut1 - 2_451_545.0) / 36_525.0
    return (280.460_618_37 + 360.985_647_366_29 * (jd_ut1 - 2_451_545.0)
            + 0.000_387_933 * t * t - t ** 3 / 38_710_000.0) % 360.0


def transit_mjd_s(ra_deg: float, lon_deg: float, near_mjd: float) -> float:
    """MJD seconds (UTC ~ UT1) of the transit of right ascension `ra_deg` over east
    longitude `lon_deg` closest after `near_mjd` (days): local sidereal time = RA."""
    mjd = near_mjd
    for _ in range(4):  # Newton on LST(mjd) - RA; LST advances 360.9856 deg per day.
        lst = (gmst_deg(mjd + 2_400_000.5) + lon_deg) % 360.0
        ha = (lst - ra_deg + 180.0) % 360.0 - 180.0
        mjd -= ha / 360.985_647_366_29
    return mjd * SECONDS_PER_DAY


# ---------------------------------------------------------------------------------------
# `aperture simulate` bundles


def read_bundle(path: str) -> dict:
    """The arrays and meta.json of a numpy bundle (docs/formats.md)."""
    b = {k: np.load(os.path.join(path, f"{k}.npy"))
         for k in ("uvw", "freq", "vis", "weight", "flag", "ant1", "ant2", "time")}
    with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
        b["meta"] = json.load(f)
    for key in ("observation", "frequency_windows"):
        if key not in b["meta"]:
            raise ValueError(f"{path}/meta.json: no key {key!r}; "
                             "this script needs a bundle written by `aperture simulate`")
    return b


def _uvw_rotation(ha_rad: float, dec_rad: float) -> np.ndarray:
    """The matrix of TMS eq. 4.1 (crates/imaging/src/sim/uvw.rs xyz_to_uvw):
    local equatorial XYZ -> uvw."""
    sh, ch = math.sin(ha_rad), math.cos(ha_rad)
    sd, cd = math.sin(dec_rad), math.cos(dec_rad)
    return np.array([[sh, ch, 0.0], [-sd * ch, sd * sh, cd], [cd * ch, -cd * sh, sd]])


def recover_enu(b: dict) -> tuple[np.ndarray, float]:
    """The stations' local ENU positions [ant, 3] (m) of an `aperture simulate` bundle,
    recovered from its uvw. (Newer bundles record them in meta.json, observation.
    station_enu_m; the fixtures keep this recovery, exact to ~1e-13 m, so that the
    checked-in MeasurementSets stay byte-identical.)

    uvw of baseline (0, a) at hour angle H is R(H, dec)·(X_a − X_0) (TMS eq. 4.1, with
    R orthogonal), so X_a − X_0 = Rᵀ·uvw; the local equatorial XYZ turn into ENU at the
    site's latitude. That fixes the positions up to a common shift. The shift is then
    fixed by the synthetic layouts putting every station on a sphere of radius
    LAYOUT_EARTH_RADIUS_M tangent at the array centre, u = √(R² − r²) − R (layout_gen.rs):
    a three-parameter fit, exact to ~1e-13 m for the built-in LOW and MID layouts.
    Returns (positions, worst residual in metres of the sphere fit)."""
    m = b["meta"]
    obs = m["observation"]
    ha = np.radians(15.0 * np.asarray(obs["hour_angles_hours"], dtype=np.float64))
    dec = math.radians(m["phase_centre"]["dec_deg"])
    lat = math.radians(obs["site"]["lat_deg"])
    nant = int(obs["stations"])
    times = np.unique(b["time"])
    if len(times) != len(ha):
        raise ValueError(f"bundle has {len(times)} distinct times but meta.json "
                         f"{len(ha)} hour angles")
    rel = np.zeros((len(times), nant, 3))
    for k, t in enumerate(times):
        sel = (b["time"] == t) & (b["ant1"] == 0)
        rel[k, b["ant2"][sel]] = b["uvw"][sel] @ _uvw_rotation(ha[k], dec)
    spread = float(np.abs(rel - rel.mean(axis=0)).max())
    if spread > 1e-6:
        raise ValueError(f"station positions from uvw disagree between times by {spread} m")
    xyz = rel.mean(axis=0)
    sp, cp = math.sin(lat), math.cos(lat)
    de, dn = xyz[:, 1], -sp * xyz[:, 0] + cp * xyz[:, 2]
    du = cp * xyz[:, 0] + sp * xyz[:, 2]
    big_r = LAYOUT_EARTH_RADIUS_M

    def sphere_u(e, n):
        r2 = e * e + n * n
        return -r2 / (big_r + np.sqrt(big_r * big_r - r2))

    # Linearised start (u ≈ −r²/2R), then Gauss-Newton on the exact sphere.
    a = np.c_[np.ones_like(de), -de / big_r, -dn / big_r]
    (_, e0, n0), *_ = np.linalg.lstsq(a, du + (de ** 2 + dn ** 2) / (2 * big_r), rcond=None)
    u0 = 0.0
    for _ in range(6):
        e, n = e0 + de, n0 + dn
        u0 = float(np.mean(sphere_u(e, n) - du))
        resid = u0 + du - sphere_u(e, n)
        s = np.sqrt(big_r * big_r - (e * e + n * n))
        jac = np.c_[e / s, n / s, np.ones_like(e)]
        (se, sn, _), *_ = np.linalg.lstsq(jac, -resid, rcond=None)
        e0, n0 = e0 + se, n0 + sn
    e, n = e0 + de, n0 + dn
    u0 = float(np.mean(sphere_u(e, n) - du))
    resid = float(np.abs(u0 + du - sphere_u(e, n)).max())
    return np.c_[e, n, u0 + du], resid


def point_source_vis(uvw_m: np.ndarray, freq_hz: np.ndarray, ra0: float, dec0: float,
                     sources: list[dict]) -> np.ndarray:
    """Visibilities [row, chan] of point sources for a phase centre (ra0, dec0) in rad:
    V = Σ S(ν)·exp(−2πi(ul + vm + w(n−1))) (DESIGN.md, docs/imaging.md: no 1/n for point
    components), u, v, w in wavelengths, S(ν) = flux_jy·(ν/ref_freq_hz)^spectral_index.
    `sources` are dicts as in the sky_model of `aperture simulate`'s meta.json (ra_deg,
    dec_deg, flux_jy, and optionally spectral_index, ref_freq_hz)."""
    out = np.zeros((len(uvw_m), len(freq_hz)), dtype=np.complex128)
    freq_hz = np.asarray(freq_hz, dtype=np.float64)
    for s in sources:
        l, m, n = lmn(math.radians(s["ra_deg"]), math.radians(s["dec_deg"]), ra0, dec0)
        flux = s["flux_jy"] * (freq_hz / s.get("ref_freq_hz", 1.0)) ** s.get("spectral_index", 0.0)
        path = uvw_m[:, 0] * l + uvw_m[:, 1] * m + uvw_m[:, 2] * (n - 1.0)
        out += flux * np.exp(-2j * np.pi * np.outer(path, freq_hz / SPEED_OF_LIGHT))
    return out


def lmn(ra: float, dec: float, ra0: float, dec0: float) -> tuple[float, float, float]:
    """Direction cosines of (ra, dec) about (ra0, dec0): RaDec::to_lmn of coords.rs."""
    dra = ra - ra0
    return (math.cos(dec) * math.sin(dra),
            math.sin(dec) * math.cos(dec0) - math.cos(dec) * math.sin(dec0) * math.cos(dra),
            math.sin(dec) * math.sin(dec0) + math.cos(dec) * math.cos(dec0) * math.cos(dra))
