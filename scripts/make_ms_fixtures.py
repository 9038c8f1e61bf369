#!/usr/bin/env python3
"""Writes the small MeasurementSet fixtures of tests/data/ms/ from an `aperture simulate`
bundle, with the Stokes-I oracles the Rust MS reader is tested against (issue #9).

Outputs, in --out:
  low-linear.ms    XX XY YX YY; two spectral windows (the bundle's two frequency
                   windows); field 0 = the simulation, field 1 = another direction (two
                   integrations, spectral window 0 only); WEIGHT_SPECTRUM; flags;
                   autocorrelations.
  low-circular.ms  RR RL LR LL; one spectral window (all channels); one field; WEIGHT
                   only (no WEIGHT_SPECTRUM); CORRECTED_DATA = 2 x DATA in RR and LL.
  unsupported.ms   XY YX only: an importer must refuse it (POLARIZATION CORR_TYPE).
  <name>.expected.json          per selection: counts, frequencies, phase centre,
                                antennas, telescope, aggregates and the first samples.
  <name>.<selection>.stokes-i/  the selection's Stokes-I visibilities as a numpy bundle
                                (docs/formats.md), from getcol on the written MS.

Conventions (stated again in each expected.json):
  * UVW: the bundle's uvw is written unchanged. aperture defines uvw = position(ANTENNA2)
    − position(ANTENNA1) (crates/imaging/src/sim/uvw.rs, docs/imaging.md), the
    MeasurementSet definition's "baseline POSITION2 − POSITION1", and V = Σ S
    exp(−2πi(ul + vm + w(n−1))); --check verifies the sign against casacore's own
    UVW (measures.touvw) computed from ANTENNA, TIME and FIELD.
  * Stokes I = (P + Q)/2 of the parallel hands (P, Q = XX, YY or RR, LL), weight
    w_I = 4 / (1/w_P + 1/w_Q) (the inverse of var(I) = (σ_P² + σ_Q²)/4). A hand is used
    when neither FLAG of that correlation nor FLAG_ROW is set and its weight is > 0. With
    one hand usable, I = that hand and w_I = its weight (unpolarised-sky assumption). With
    none, the sample is flagged (the oracle stores 0 and weight 0). Cross hands never
    enter I.
  * Weights: WEIGHT_SPECTRUM (WEIGHT when the MS has no WEIGHT_SPECTRUM; WEIGHT is then
    per row and correlation, the same in all channels). The parallel-hand weights are
    w_bundle × (½, ½), (¾, ⅜) or (⅜, ¾) in turn, so w_I = w_bundle wherever both hands are
    usable. WEIGHT = mean of WEIGHT_SPECTRUM over channels; SIGMA = 1/√WEIGHT.
  * Flagged correlations hold 1000+1000j and FLAG_ROW rows hold NaN in every
    correlation (FLAG is false there): a reader that lets them through is caught.
  * TIME is MJD seconds (UTC): the bundle's seconds from transit plus the transit of the
    phase centre over the site near 2000-01-01 (Meeus eq. 12.4 GMST), so TIME, ANTENNA
    and FIELD reproduce UVW. Field 1 repeats two integrations' UVW at later times (its
    UVW is not physical for its direction; only its data differ).

Usage (the exact commands are in tests/data/ms/README.md):
  aperture simulate ... --out /tmp/bundle
  scripts/make_ms_fixtures.py --bundle /tmp/bundle --out tests/data/ms --check
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np

import casacore.tables as pt
from casacore.measures import measures
from casacore.quanta import quantity

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ms_writer as mw  # noqa: E402

# (w_P, w_Q) / w_bundle, cycled over samples: 4/(1/w_P + 1/w_Q) = 1 for each.
WEIGHT_PAIRS = [(0.5, 0.5), (0.75, 0.375), (0.375, 0.75)]
GARBAGE = np.complex64(1000 + 1000j)
INTERVAL_S = 10.0
# Antennas (by index, wrapped to the array) that get autocorrelation rows.
AUTO_ANTENNAS = (0, 7, 13)
# Flux of the autocorrelations' parallel hands, Jy.
AUTO_FLUX = 10.0
# The day near which the observation is placed (MJD 51544 = 2000-01-01): at J2000.0 the
# simulation's apparent-equals-J2000 directions hold to precession's ~0 arcsec.
EPOCH_MJD = 51544.0
# Field 1: offset of its direction from field 0 (deg), and its sky in (dRA, dDec) deg
# from its own centre and flux (Jy).
FIELD1_OFFSET_DEG = (20.0, 10.0)
FIELD1_SKY = [(0.0, 0.0, 1.0), (1.5, -1.0, 0.5)]
FIELD1_INTEGRATIONS = (1, 2)


def cross_hand(i: np.ndarray) -> np.ndarray:
    """A small cross-hand (XY, RL) value derived from I; YX, LR get its conjugate."""
    return (0.01 + 0.02j) + 0.05 * np.conj(i)


class Sim:
    """The bundle on its (time, baseline) grid, with the array and the epoch."""

    def __init__(self, path: str):
        b = mw.read_bundle(path)
        self.path = path
        self.meta = m = b["meta"]
        obs, fw = m["observation"], m["frequency_windows"]
        self.freq = b["freq"].astype(np.float64)
        self.nwin, self.cpw = int(fw["windows"]), int(fw["channels_per_window"])
        if self.nwin < 2 or self.nwin * self.cpw != len(self.freq):
            raise SystemExit(f"{path}: needs at least two frequency windows covering freq.npy "
                             f"(meta.json says {self.nwin} x {self.cpw}, freq.npy has "
                             f"{len(self.freq)} channels)")
        self.chan_width = float(fw["channel_width_hz"])
        self.times_rel = np.unique(b["time"])
        self.nt = len(self.times_rel)
        nrow = len(b["time"])
        if nrow % self.nt:
            raise SystemExit(f"{path}: {nrow} rows are not {self.nt} equal integrations")
        self.nbl = nrow // self.nt
        shape = (self.nt, self.nbl)
        self.a1 = b["ant1"].reshape(shape)[0].astype(np.int32)
        self.a2 = b["ant2"].reshape(shape)[0].astype(np.int32)
        if not (np.all(b["ant1"].reshape(shape) == self.a1)
                and np.all(b["ant2"].reshape(shape) == self.a2)
                and np.all(b["time"].reshape(shape) == self.times_rel[:, None])):
            raise SystemExit(f"{path}: rows are not time-major with one baseline order")
        self.nant = int(obs["stations"])
        self.uvw = b["uvw"].reshape(*shape, 3)
        self.vis = b["vis"].reshape(*shape, -1)
        self.weight = b["weight"].astype(np.float64).reshape(*shape, -1)
        self.flag = b["flag"].reshape(*shape, -1)
        self.vis_dtype = str(b["vis"].dtype)
        self.ra0 = math.radians(m["phase_centre"]["ra_deg"])
        self.dec0 = math.radians(m["phase_centre"]["dec_deg"])
        site = obs["site"]
        self.site = (math.radians(site["lon_deg"]), math.radians(site["lat_deg"]),
                     float(site["height_m"]))
        self.enu, self.enu_residual = mw.recover_enu(b)
        self.itrf = mw.enu_to_itrf(*self.site, self.enu)
        self.telescope = m.get("telescope") or obs.get("array") or "UNKNOWN"
        self.diameter = float(m.get("station_diameter_m") or 35.0)
        self.names = [f"STN{i:03d}" for i in range(self.nant)]
        self.stations = [f"P{i:03d}" for i in range(self.nant)]
        t0 = mw.transit_mjd_s(m["phase_centre"]["ra_deg"], site["lon_deg"], EPOCH_MJD)
        self.t_transit = round(t0, 3)
        self.times = self.t_transit + self.times_rel

    def spw_chans(self, w: int) -> slice:
        return slice(w * self.cpw, (w + 1) * self.cpw)

    def antennas(self) -> mw.Antennas:
        return mw.Antennas(names=self.names, stations=self.stations,
                           position_itrf_m=self.itrf,
                           dish_diameter_m=np.full(self.nant, self.diameter))

    def spw(self, w: int | None) -> mw.SpectralWindow:
        f = self.freq if w is None else self.freq[self.spw_chans(w)]
        return mw.SpectralWindow(name="ALL" if w is None else f"WINDOW{w}",
                                 chan_freq_hz=f, chan_width_hz=np.full(len(f), self.chan_width))

    def field0(self) -> mw.Field:
        return mw.Field("SIM", self.ra0, self.dec0, float(self.times[0]))

    def field1(self) -> mw.Field:
        return mw.Field("OTHER", self.ra0 + math.radians(FIELD1_OFFSET_DEG[0]),
                        self.dec0 + math.radians(FIELD1_OFFSET_DEG[1]),
                        float(self.times[-1]) + 600.0)

    def field1_sky(self) -> list[dict]:
        f = self.field1()
        return [{"ra_deg": math.degrees(f.ra_rad) + dra, "dec_deg": math.degrees(f.dec_rad) + ddec,
                 "flux_jy": s} for dra, ddec, s in FIELD1_SKY]

    def pair_index(self, t: int, chans: np.ndarray | None) -> np.ndarray:
        """Which WEIGHT_PAIRS entry each (baseline[, channel]) of integration t uses."""
        k = self.a1 + self.a2 + t
        if chans is None:
            return k % len(WEIGHT_PAIRS)
        return (k[:, None] + chans[None, :]) % len(WEIGHT_PAIRS)


# ---------------------------------------------------------------------------------------
# Row blocks


def row_order(sim: Sim) -> np.ndarray:
    """Main-table order of one integration: the cross baselines and the autocorrelations
    of AUTO_ANTENNAS sorted by (ANTENNA1, ANTENNA2). Entries >= 0 index baselines; -1-a
    stands for the autocorrelation of antenna a."""
    autos = sorted({a % sim.nant for a in AUTO_ANTENNAS})
    keys = [(int(sim.a1[b]), int(sim.a2[b]), b) for b in range(sim.nbl)]
    keys += [(a, a, -1 - a) for a in autos]
    keys.sort()
    return np.array([k[2] for k in keys])


def group_block(sim: Sim, corr_names: list[str], *, order: np.ndarray, time: float,
                field: int, scan: int, ddid: int, uvw: np.ndarray, corr: np.ndarray,
                flag: np.ndarray, flag_row: np.ndarray, wspec: np.ndarray | None, wrow: np.ndarray,
                extra: dict[str, np.ndarray]) -> dict:
    """The main-table rows of one integration of one (field, spectral window).

    corr [bl, chan, ncorr], flag like corr, flag_row [bl], wspec [bl, chan, ncorr] or None,
    wrow [bl, ncorr] give the cross baselines; `order` interleaves the autocorrelations,
    which are unflagged with weight 1. Flagged correlations get GARBAGE and FLAG_ROW rows
    NaN (their FLAG stays false)."""
    corr = np.where(flag, GARBAGE, corr).astype(np.complex64)
    corr[flag_row] = np.nan
    extra = {k: np.where(flag, GARBAGE, v).astype(np.complex64) for k, v in extra.items()}
    for v in extra.values():
        v[flag_row] = np.nan
    bl = np.where(order >= 0, order, 0)
    auto = order < 0
    nrow = len(order)

    def take(a, auto_value):
        out = a[bl].copy()
        out[auto] = auto_value
        return out

    parallel = np.array([c[0] == c[1] for c in corr_names])
    auto_vis = np.where(parallel, AUTO_FLUX, 0.1).astype(np.complex64)
    wrow_all = take(wrow, 1.0).astype(np.float32)
    block = {
        "TIME": np.full(nrow, time),
        "ANTENNA1": np.where(auto, -1 - order, sim.a1[bl]).astype(np.int32),
        "ANTENNA2": np.where(auto, -1 - order, sim.a2[bl]).astype(np.int32),
        "DATA_DESC_ID": np.full(nrow, ddid, dtype=np.int32),
        "FIELD_ID": np.full(nrow, field, dtype=np.int32),
        "SCAN_NUMBER": np.full(nrow, scan, dtype=np.int32),
        "UVW": take(uvw, 0.0),
        "DATA": take(corr, auto_vis),
        "FLAG": take(flag, False),
        "FLAG_ROW": take(flag_row, False),
        "WEIGHT": wrow_all,
        "SIGMA": (1.0 / np.sqrt(wrow_all)).astype(np.float32),
    }
    if wspec is not None:
        block["WEIGHT_SPECTRUM"] = take(wspec, 1.0).astype(np.float32)
    for k, v in extra.items():
        block[k] = take(v, auto_vis)
    return block


def hand_weights(sim: Sim, t: int, chans: np.ndarray, w_b: np.ndarray, corr_names,
                 per_channel: bool) -> np.ndarray:
    """[bl, chan, ncorr] weights: parallel hands w_b × WEIGHT_PAIRS (by baseline, t and,
    when per_channel, channel), cross hands w_b."""
    k = sim.pair_index(t, chans if per_channel else None)
    pairs = np.array(WEIGHT_PAIRS)
    if not per_channel:
        k = np.repeat(k[:, None], len(chans), axis=1)
    out = np.empty((*w_b.shape, len(corr_names)))
    for ci, c in enumerate(corr_names):
        if c[0] != c[1]:
            out[..., ci] = w_b
        else:
            out[..., ci] = w_b * pairs[k, 0 if ci == 0 else 1]
    return out


def sample_flags(rng, shape, frac):
    return rng.random(shape) < frac


# ---------------------------------------------------------------------------------------
# The three MeasurementSets


def write_linear(sim: Sim, path: str, seed: int) -> dict:
    """low-linear.ms; returns a description of what was put where (for the check)."""
    rng = np.random.default_rng(seed)
    names = ["XX", "XY", "YX", "YY"]
    nspw = sim.nwin
    f1 = sim.field1()
    layout = mw.MsLayout(corr_names=names, spws=[sim.spw(w) for w in range(nspw)],
                         fields=[sim.field0(), f1], antennas=sim.antennas(),
                         telescope=sim.telescope,
                         time_range_mjd_s=(float(sim.times[0]) - INTERVAL_S / 2,
                                           f1.time_mjd_s + 600.0 + INTERVAL_S / 2),
                         weight_spectrum=True)
    nt, nbl, cpw = sim.nt, sim.nbl, sim.cpw
    # Flags on the cross rows of field 0: [t, spw, bl, chan, corr] and FLAG_ROW [t, spw, bl].
    flag = np.zeros((nt, nspw, nbl, cpw, 4), dtype=bool)
    flag |= sim.flag.reshape(nt, nbl, nspw, cpw).transpose(0, 2, 1, 3)[..., None]
    full = sample_flags(rng, (nt, nspw, nbl, cpw), 0.02)
    flag[full] = True
    flag[nt - 1, 0, :, min(2, cpw - 1), :] = True             # a channel lost to RFI
    xx_only = sample_flags(rng, (nt, nspw, nbl, cpw), 0.01)
    xx_only[0, 0, 0, min(1, cpw - 1)] = True                   # the first row: XX only
    flag[..., 0] |= xx_only
    yy_only = sample_flags(rng, (nt, nspw, nbl, cpw), 0.005)
    flag[..., 3] |= yy_only
    flag[..., 1] |= sample_flags(rng, (nt, nspw, nbl, cpw), 0.01)  # XY only: harmless
    flag_row = np.zeros((nt, nspw, nbl), dtype=bool)
    for w, count in enumerate([3, 2] + [1] * (nspw - 2)):
        for r in rng.choice(nt * nbl, size=count, replace=False):
            flag_row[r // nbl, w, r % nbl] = True
    order = row_order(sim)
    ms = mw.create_ms(path, layout)
    for t in range(nt):
        for w in range(nspw):
            ch = sim.spw_chans(w)
            i = sim.vis[t, :, ch]
            xy = cross_hand(i)
            corr = np.stack([i, xy, np.conj(xy), i], axis=-1)
            wspec = hand_weights(sim, t, np.arange(ch.start, ch.stop), sim.weight[t, :, ch],
                                 names, per_channel=True)
            mw.put_rows(ms, group_block(
                sim, names, order=order, time=float(sim.times[t]), field=0, scan=1, ddid=w,
                uvw=sim.uvw[t], corr=corr, flag=flag[t, w], flag_row=flag_row[t, w],
                wspec=wspec, wrow=wspec.mean(axis=1), extra={}), INTERVAL_S)
    # Field 1: two integrations' uvw, another sky, spectral window 0 only.
    f1_flag = np.zeros((len(FIELD1_INTEGRATIONS), nbl, cpw, 4), dtype=bool)
    f1_flag[:, rng.choice(nbl, size=5, replace=False), 0, :] = True
    f1_flag_row = np.zeros((len(FIELD1_INTEGRATIONS), nbl), dtype=bool)
    f1_flag_row[1, rng.integers(nbl)] = True
    f1_vis = []
    for k, t in enumerate(FIELD1_INTEGRATIONS):
        ch = sim.spw_chans(0)
        i = mw.point_source_vis(sim.uvw[t], sim.freq[ch], f1.ra_rad, f1.dec_rad,
                                sim.field1_sky()).astype(np.complex64)
        f1_vis.append(i)
        xy = cross_hand(i)
        corr = np.stack([i, xy, np.conj(xy), i], axis=-1)
        wspec = hand_weights(sim, t, np.arange(ch.start, ch.stop), sim.weight[t, :, ch],
                             names, per_channel=True)
        mw.put_rows(ms, group_block(
            sim, names, order=order, time=f1.time_mjd_s + 600.0 * k, field=1, scan=2, ddid=0,
            uvw=sim.uvw[t], corr=corr, flag=f1_flag[k], flag_row=f1_flag_row[k],
            wspec=wspec, wrow=wspec.mean(axis=1), extra={}), INTERVAL_S)
    ms.close()
    return {"flag": flag, "flag_row": flag_row, "f1_flag": f1_flag,
            "f1_flag_row": f1_flag_row, "f1_vis": np.array(f1_vis)}


def write_circular(sim: Sim, path: str, seed: int) -> dict:
    """low-circular.ms: one spectral window with every channel, one field, WEIGHT only,
    CORRECTED_DATA = 2 x DATA in the parallel hands."""
    rng = np.random.default_rng(seed + 1)
    names = ["RR", "RL", "LR", "LL"]
    nt, nbl, nch = sim.nt, sim.nbl, len(sim.freq)
    if np.any(sim.weight != sim.weight[..., :1]):
        raise SystemExit(f"{sim.path}: weights vary over channels; low-circular.ms has only "
                         "WEIGHT (one per row and correlation)")
    layout = mw.MsLayout(corr_names=names, spws=[sim.spw(None)], fields=[sim.field0()],
                         antennas=sim.antennas(), telescope=sim.telescope,
                         time_range_mjd_s=(float(sim.times[0]) - INTERVAL_S / 2,
                                           float(sim.times[-1]) + INTERVAL_S / 2),
                         extra_data_columns=["CORRECTED_DATA"], weight_spectrum=False)
    flag = np.zeros((nt, nbl, nch, 4), dtype=bool)
    flag |= sim.flag[..., None]
    flag[sample_flags(rng, (nt, nbl, nch), 0.02)] = True
    ll_only = sample_flags(rng, (nt, nbl, nch), 0.01)
    ll_only[0, 0, 0] = True                                    # the first row: LL only
    flag[..., 3] |= ll_only
    flag[..., 2] |= sample_flags(rng, (nt, nbl, nch), 0.01)    # LR only: harmless
    flag_row = np.zeros((nt, nbl), dtype=bool)
    for r in rng.choice(nt * nbl, size=2, replace=False):
        flag_row[r // nbl, r % nbl] = True
    order = row_order(sim)
    ms = mw.create_ms(path, layout)
    for t in range(nt):
        i = sim.vis[t]
        rl = cross_hand(i)
        corr = np.stack([i, rl, np.conj(rl), i], axis=-1)
        corrected = np.stack([2 * i, rl, np.conj(rl), 2 * i], axis=-1)
        w = hand_weights(sim, t, np.arange(nch), sim.weight[t], names, per_channel=False)
        mw.put_rows(ms, group_block(
            sim, names, order=order, time=float(sim.times[t]), field=0, scan=1, ddid=0,
            uvw=sim.uvw[t], corr=corr, flag=flag[t], flag_row=flag_row[t], wspec=None,
            wrow=w[:, 0, :], extra={"CORRECTED_DATA": corrected}), INTERVAL_S)
    ms.close()
    return {"flag": flag, "flag_row": flag_row}


def write_unsupported(sim: Sim, path: str) -> None:
    """unsupported.ms: only XY and YX, one integration, spectral window 0."""
    names = ["XY", "YX"]
    layout = mw.MsLayout(corr_names=names, spws=[sim.spw(0)], fields=[sim.field0()],
                         antennas=sim.antennas(), telescope=sim.telescope,
                         time_range_mjd_s=(float(sim.times[0]) - INTERVAL_S / 2,
                                           float(sim.times[0]) + INTERVAL_S / 2),
                         weight_spectrum=False)
    ch = sim.spw_chans(0)
    i = sim.vis[0, :, ch]
    corr = np.stack([i, np.conj(i)], axis=-1)
    ms = mw.create_ms(path, layout)
    mw.put_rows(ms, group_block(
        sim, names, order=row_order(sim), time=float(sim.times[0]), field=0, scan=1, ddid=0,
        uvw=sim.uvw[0], corr=corr, flag=np.zeros(corr.shape, dtype=bool),
        flag_row=np.zeros(sim.nbl, dtype=bool), wspec=None,
        wrow=np.ones((sim.nbl, 2)), extra={}), INTERVAL_S)
    ms.close()


# ---------------------------------------------------------------------------------------
# The oracle: Stokes I of a selection, from getcol on the written MS only


def stokes_i_oracle(path: str, field: int, spw: int, column: str = "DATA") -> dict:
    """Stokes I [row, chan] of the cross-correlation rows of (field, spw), ordered by
    (TIME, ANTENNA1, ANTENNA2), by the rule in this file's docstring."""
    with pt.table(os.path.join(path, "POLARIZATION"), ack=False) as t:
        corr_type = [int(c) for c in t.getcell("CORR_TYPE", 0)]
    names = [mw.CORR_NAMES[c] for c in corr_type]
    hands = [k for k, n in enumerate(names) if n[0] == n[1]]
    if len(hands) != 2:
        raise ValueError(f"{path}: POLARIZATION CORR_TYPE {corr_type} has no two "
                         "parallel hands")
    p, q = hands
    with pt.table(os.path.join(path, "DATA_DESCRIPTION"), ack=False) as t:
        ddids = [d for d, s in enumerate(t.getcol("SPECTRAL_WINDOW_ID")) if s == spw]
    with pt.table(os.path.join(path, "SPECTRAL_WINDOW"), ack=False) as t:
        freq = t.getcell("CHAN_FREQ", spw)
    with pt.table(os.path.join(path, "FIELD"), ack=False) as t:
        ra, dec = t.getcell("PHASE_DIR", field)[0]
    with pt.table(path, ack=False) as t:
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        sel = ((t.getcol("FIELD_ID") == field) & np.isin(t.getcol("DATA_DESC_ID"), ddids))
        n_selected = int(sel.sum())
        n_auto = int((sel & (a1 == a2)).sum())
        rows = np.flatnonzero(sel & (a1 != a2))
        if len(rows) == 0:
            return {"time": np.zeros(0), "vis": np.zeros((0, len(freq))), "n_selected": n_selected}
        get = lambda c: np.array([t.getcell(c, int(r)) for r in rows])  # noqa: E731
        time, ant1, ant2 = t.getcol("TIME")[rows], a1[rows], a2[rows]
        uvw = t.getcol("UVW")[rows]
        data = get(column).astype(np.complex128)
        flag = get("FLAG")
        flag_row = t.getcol("FLAG_ROW")[rows]
        if "WEIGHT_SPECTRUM" in t.colnames() and t.iscelldefined("WEIGHT_SPECTRUM", int(rows[0])):
            weight = get("WEIGHT_SPECTRUM").astype(np.float64)
        else:
            weight = np.repeat(t.getcol("WEIGHT")[rows][:, None, :], len(freq), axis=1)
            weight = weight.astype(np.float64)
    bad = flag | flag_row[:, None, None] | ~(weight > 0)
    up, uq = ~bad[..., p], ~bad[..., q]
    vp, vq = data[..., p], data[..., q]
    wp, wq = weight[..., p], weight[..., q]
    both = up & uq
    with np.errstate(divide="ignore", invalid="ignore"):
        vis = np.where(both, 0.5 * (vp + vq), np.where(up, vp, np.where(uq, vq, 0)))
        w = np.where(both, 4.0 / (1.0 / wp + 1.0 / wq), np.where(up, wp, np.where(uq, wq, 0)))
    order = np.lexsort((ant2, ant1, time))
    return {"time": time[order], "ant1": ant1[order], "ant2": ant2[order], "uvw": uvw[order],
            "vis": vis[order], "weight": w[order], "flag": ~(up | uq)[order],
            "one_hand": (up ^ uq)[order], "flag_row": flag_row[order], "freq": freq,
            "phase_centre_rad": (float(ra), float(dec)), "ms_rows": rows[order],
            "n_selected": n_selected, "n_auto": n_auto, "corr_type": corr_type,
            "column": column}


def deg(rad: float) -> float:
    """Degrees with the fewest digits that convert back to `rad` exactly (as
    crates/pipeline/src/formats/angle.rs), so a bundle's phase centre round-trips."""
    d = math.degrees(rad)
    for digits in range(18):
        r = round(d, digits)
        if math.radians(r) == rad:
            return r
    return d


def write_oracle_bundle(o: dict, out: str, ms_name: str, selection: str, sim: Sim) -> str:
    """The oracle as a numpy bundle (docs/formats.md) next to the MS."""
    name = f"{ms_name.removesuffix('.ms')}.{selection}.stokes-i"
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    np.save(os.path.join(d, "uvw.npy"), o["uvw"].astype(np.float64))
    np.save(os.path.join(d, "freq.npy"), o["freq"].astype(np.float64))
    np.save(os.path.join(d, "vis.npy"), o["vis"].astype(np.complex128))
    np.save(os.path.join(d, "weight.npy"), o["weight"].astype(np.float64))
    np.save(os.path.join(d, "flag.npy"), o["flag"])
    np.save(os.path.join(d, "ant1.npy"), o["ant1"].astype(np.int32))
    np.save(os.path.join(d, "ant2.npy"), o["ant2"].astype(np.int32))
    np.save(os.path.join(d, "time.npy"), o["time"].astype(np.float64))
    ra, dec = o["phase_centre_rad"]
    meta = {
        "phase_centre": {"ra_deg": deg(ra), "dec_deg": deg(dec)},
        "telescope": sim.telescope,
        "station_diameter_m": sim.diameter,
        "oracle": {
            "source_ms": ms_name, "selection": selection, "data_column": o["column"],
            "time": "MJD seconds (UTC), the MS TIME column",
            "rows": "cross-correlation rows of the selection, by (TIME, ANTENNA1, ANTENNA2); "
                    "FLAG_ROW rows are present and flagged in every channel",
            "flagged_samples": "vis 0 and weight 0",
        },
    }
    with open(os.path.join(d, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return name


def selection_summary(o: dict, bundle_name: str) -> dict:
    """The expected.json entry of one selection."""
    times = np.unique(o["time"])
    pairs = {(int(a), int(b)) for a, b in zip(o["ant1"], o["ant2"])}
    ok = ~o["flag"]
    nfirst = min(5, o["vis"].size)
    first = []
    for k in range(nfirst):
        r, c = divmod(k, o["vis"].shape[1])
        first.append({"time_mjd_s": float(o["time"][r]), "antenna1": int(o["ant1"][r]),
                      "antenna2": int(o["ant2"][r]), "channel": c,
                      "ms_row": int(o["ms_rows"][r]),
                      "vis": [float(o["vis"][r, c].real), float(o["vis"][r, c].imag)],
                      "weight": float(o["weight"][r, c]), "flag": bool(o["flag"][r, c])})
    wv = (o["weight"] * o["vis"])[ok].sum()
    return {
        "n_rows_selected": o["n_selected"],
        "n_autocorrelation_rows": o["n_auto"],
        "n_rows": len(o["time"]),
        "n_flag_row_rows": int(o["flag_row"].sum()),
        "n_rows_without_flag_row": int((~o["flag_row"]).sum()),
        "n_times": len(times),
        "n_baselines": len(pairs),
        "times_mjd_s": [float(t) for t in times],
        "chan_freq_hz": [float(f) for f in o["freq"]],
        "phase_centre_rad": list(o["phase_centre_rad"]),
        "phase_centre_deg": [deg(x) for x in o["phase_centre_rad"]],
        "data_column": o["column"],
        "n_samples": int(o["vis"].size),
        "n_flagged_samples": int(o["flag"].sum()),
        "flagged_fraction": float(o["flag"].mean()),
        "n_one_hand_samples": int(o["one_hand"].sum()),
        "sum_weight": float(o["weight"][ok].sum()),
        "sum_weighted_vis": [float(wv.real), float(wv.imag)],
        "max_abs_vis": float(np.abs(o["vis"]).max()),
        "first_samples": first,
        "oracle_bundle": bundle_name,
    }


def ms_summary(path: str) -> dict:
    """The subtables' contents as the reader must report them."""
    with pt.table(os.path.join(path, "ANTENNA"), ack=False) as t:
        ant = {"names": list(t.getcol("NAME")), "stations": list(t.getcol("STATION")),
               "position_itrf_m": t.getcol("POSITION").tolist(),
               "dish_diameter_m": t.getcol("DISH_DIAMETER").tolist(),
               "mount": list(t.getcol("MOUNT"))}
    with pt.table(os.path.join(path, "OBSERVATION"), ack=False) as t:
        telescope = t.getcell("TELESCOPE_NAME", 0)
    with pt.table(os.path.join(path, "POLARIZATION"), ack=False) as t:
        corr = [int(c) for c in t.getcell("CORR_TYPE", 0)]
    with pt.table(os.path.join(path, "SPECTRAL_WINDOW"), ack=False) as t:
        spws = [{"id": i, "name": t.getcell("NAME", i), "num_chan": int(t.getcell("NUM_CHAN", i)),
                 "chan_freq_hz": t.getcell("CHAN_FREQ", i).tolist(),
                 "chan_width_hz": t.getcell("CHAN_WIDTH", i).tolist(),
                 "ref_frequency_hz": float(t.getcell("REF_FREQUENCY", i)),
                 "meas_freq_ref": int(t.getcell("MEAS_FREQ_REF", i))} for i in range(t.nrows())]
    with pt.table(os.path.join(path, "DATA_DESCRIPTION"), ack=False) as t:
        dd = [{"id": i, "spectral_window_id": int(s), "polarization_id": int(p)}
              for i, (s, p) in enumerate(zip(t.getcol("SPECTRAL_WINDOW_ID"),
                                             t.getcol("POLARIZATION_ID")))]
    with pt.table(os.path.join(path, "FIELD"), ack=False) as t:
        fields = [{"id": i, "name": t.getcell("NAME", i),
                   "phase_dir_rad": t.getcell("PHASE_DIR", i)[0].tolist()}
                  for i in range(t.nrows())]
    with pt.table(path, ack=False) as t:
        main = {"n_rows": t.nrows(), "columns": sorted(t.colnames()),
                "n_autocorrelation_rows": int((t.getcol("ANTENNA1") == t.getcol("ANTENNA2")).sum()),
                "n_flag_row_rows": int(t.getcol("FLAG_ROW").sum())}
    return {"telescope_name": telescope, "antennas": ant,
            "correlations": {"corr_type": corr, "names": [mw.CORR_NAMES[c] for c in corr]},
            "spectral_windows": spws, "data_descriptions": dd, "fields": fields, "main": main}


CONVENTIONS = {
    "uvw": "MS UVW = the bundle's uvw unchanged = uvw(ANTENNA2) - uvw(ANTENNA1); "
           "V = sum S exp(-2 pi i (ul + vm + w(n-1)))",
    "stokes_i": "I = (P+Q)/2 of the parallel hands (XX,YY or RR,LL); one usable hand: I = "
                "that hand; none: flagged",
    "weight": "w_I = 4/(1/w_P + 1/w_Q); one usable hand: its weight; WEIGHT_SPECTRUM if "
              "present, else WEIGHT per row and correlation",
    "usable_hand": "FLAG of that correlation false, FLAG_ROW false, weight > 0",
    "flagged_data": "flagged correlations hold 1000+1000j, FLAG_ROW rows NaN",
    "time": "MJD seconds (UTC)",
    "frequency_frame": "MEAS_FREQ_REF 5 (TOPO)",
}


def write_expected(out: str, ms_name: str, sim: Sim, selections: dict, command: str,
                   extra: dict | None = None) -> None:
    path = os.path.join(out, ms_name)
    doc = {"ms": ms_name, "generated_by": command,
           "source_bundle_command": sim.meta.get("simulation", {}).get("command"),
           "conventions": CONVENTIONS,
           "array_site": {"lon_deg": math.degrees(sim.site[0]),
                          "lat_deg": math.degrees(sim.site[1]), "height_m": sim.site[2]},
           **ms_summary(path)}
    if extra:
        doc.update(extra)
    sel = {}
    for key, (field, spw, column) in selections.items():
        o = stokes_i_oracle(path, field, spw, column)
        bundle = write_oracle_bundle(o, out, ms_name, key, sim)
        sel[key] = {"field_id": field, "spectral_window_id": spw, **selection_summary(o, bundle)}
    doc["selections"] = sel
    with open(os.path.join(out, ms_name.removesuffix(".ms") + ".expected.json"), "w",
              encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------------------
# --check


class CheckError(AssertionError):
    pass


def expect(cond, what):
    if not cond:
        raise CheckError(what)


def casacore_uvw(path: str, rows: np.ndarray) -> np.ndarray:
    """UVW of `rows` computed by casacore's measures (touvw) from ANTENNA POSITION, TIME
    and the FIELD's PHASE_DIR: independent of this script's geometry."""
    dm = measures()
    with pt.table(os.path.join(path, "ANTENNA"), ack=False) as t:
        pos = t.getcol("POSITION")
    with pt.table(os.path.join(path, "FIELD"), ack=False) as t:
        dirs = t.getcol("PHASE_DIR")[:, 0, :]
    with pt.table(path, ack=False) as t:
        time, fld = t.getcol("TIME")[rows], t.getcol("FIELD_ID")[rows]
        a1, a2 = t.getcol("ANTENNA1")[rows], t.getcol("ANTENNA2")[rows]
    centre = pos.mean(axis=0)
    dm.do_frame(dm.position("ITRF", *[quantity(x, "m") for x in centre]))
    out = np.zeros((len(rows), 3))
    for tt, f in sorted(set(zip(time.tolist(), fld.tolist()))):
        dm.do_frame(dm.epoch("UTC", quantity(tt, "s")))
        dm.do_frame(dm.direction("J2000", quantity(dirs[f, 0], "rad"),
                                 quantity(dirs[f, 1], "rad")))
        rel = pos - centre
        bl = dm.baseline("ITRF", quantity(rel[:, 0], "m"), quantity(rel[:, 1], "m"),
                         quantity(rel[:, 2], "m"))
        uvw = np.array(dm.to_uvw(bl)["xyz"].get_value("m")).reshape(-1, 3)
        k = (time == tt) & (fld == f)
        out[k] = uvw[a2[k]] - uvw[a1[k]]
    return out


def check(out: str, sim: Sim, linear: dict, circular: dict) -> list[str]:
    """Reopens every MS and oracle and asserts they are what was intended. Returns the
    lines to print."""
    notes = []
    nt, nbl, cpw, nspw = sim.nt, sim.nbl, sim.cpw, sim.nwin
    n_auto = len({a % sim.nant for a in AUTO_ANTENNAS})
    lin = os.path.join(out, "low-linear.ms")
    s = ms_summary(lin)
    expect(s["correlations"]["corr_type"] == [9, 10, 11, 12], "linear CORR_TYPE")
    expect(len(s["spectral_windows"]) == nspw, "linear: one SPECTRAL_WINDOW row per window")
    for w, spw in enumerate(s["spectral_windows"]):
        expect(np.array_equal(spw["chan_freq_hz"], sim.freq[sim.spw_chans(w)]),
               f"linear spw {w} CHAN_FREQ")
        expect(spw["meas_freq_ref"] == mw.MEAS_FREQ_TOPO and spw["num_chan"] == cpw,
               f"linear spw {w} MEAS_FREQ_REF/NUM_CHAN")
    expect([d["spectral_window_id"] for d in s["data_descriptions"]] == list(range(nspw)),
           "DATA_DESCRIPTION -> SPECTRAL_WINDOW")
    expect(len(s["fields"]) == 2, "two FIELD rows")
    expect(s["fields"][0]["phase_dir_rad"] == [sim.ra0, sim.dec0],
           "field 0 PHASE_DIR = the simulation's phase centre")
    expect(s["telescope_name"] == sim.telescope, "OBSERVATION TELESCOPE_NAME")
    expect(len(s["antennas"]["names"]) == sim.nant, "ANTENNA rows")
    n_rows = nt * nspw * (nbl + n_auto) + len(FIELD1_INTEGRATIONS) * (nbl + n_auto)
    expect(s["main"]["n_rows"] == n_rows, f"linear main rows {s['main']['n_rows']} != {n_rows}")
    with pt.table(lin, ack=False) as t:
        for c, shape in [("DATA", (cpw, 4)), ("FLAG", (cpw, 4)), ("WEIGHT_SPECTRUM", (cpw, 4))]:
            expect(t.getcell(c, 0).shape == shape, f"linear {c} cell shape")
        expect(t.getcol("WEIGHT").shape == (n_rows, 4) and t.getcol("UVW").shape == (n_rows, 3),
               "linear WEIGHT/UVW shapes")
        expect("CORRECTED_DATA" not in t.colnames(), "linear has DATA only")
        # UVW against casacore's own computation from ANTENNA, TIME, FIELD (field 0).
        f0 = np.flatnonzero((t.getcol("ANTENNA1") != t.getcol("ANTENNA2"))
                            & (t.getcol("FIELD_ID") == 0))
        ms_uvw0 = t.getcol("UVW")[f0]
    cc = casacore_uvw(lin, f0)
    length = np.linalg.norm(ms_uvw0, axis=1)
    rel = np.linalg.norm(cc - ms_uvw0, axis=1) / length
    flipped = np.linalg.norm(cc + ms_uvw0, axis=1) / length
    expect(rel.max() < 2e-3 and flipped.min() > 1.0,
           f"UVW vs casacore touvw: max relative difference {rel.max():.2e}")
    notes.append(f"UVW = casacore measures touvw(POSITION2 - POSITION1) to {rel.max():.1e} "
                 f"of the baseline length (max {np.abs(cc - ms_uvw0).max() * 1e3:.1f} mm); "
                 f"the opposite sign would differ by {flipped.min():.2f}")
    expect(sim.enu_residual < 1e-9, f"station positions fit residual {sim.enu_residual}")

    # Stokes I of field 0 per spw against the bundle and the intended flags/weights.
    pairs = np.array(WEIGHT_PAIRS)
    for w in range(nspw):
        o = stokes_i_oracle(lin, 0, w)
        ch = sim.spw_chans(w)
        expect(o["vis"].shape == (nt * nbl, cpw), f"field0 spw{w} shape")
        expect(np.array_equal(o["ant1"].reshape(nt, nbl)[0], sim.a1)
               and np.array_equal(o["time"].reshape(nt, nbl)[:, 0], sim.times),
               f"field0 spw{w} rows = the simulation's grid")
        fl = linear["flag"][:, w]                      # [t, bl, chan, corr]
        fr = linear["flag_row"][:, w][..., None]       # [t, bl, 1]
        xx_ok, yy_ok = ~(fl[..., 0] | fr), ~(fl[..., 3] | fr)
        want_flag = ~(xx_ok | yy_ok)
        expect(np.array_equal(o["flag"].reshape(nt, nbl, cpw), want_flag),
               f"field0 spw{w}: flagged samples are those with neither hand usable")
        ok = ~want_flag
        bvis = sim.vis[:, :, ch]
        got = o["vis"].reshape(nt, nbl, cpw)
        expect(np.allclose(got[ok], bvis[ok], rtol=0, atol=1e-6 * np.abs(bvis).max()),
               f"field0 spw{w}: Stokes I = the bundle's vis where unflagged")
        expect(np.abs(got).max() < 100, f"field0 spw{w}: no flagged value leaks into I")
        k = np.stack([sim.pair_index(t, np.arange(ch.start, ch.stop)) for t in range(nt)])
        wb = sim.weight[:, :, ch]
        want_w = np.where(xx_ok & yy_ok, wb, np.where(xx_ok, wb * pairs[k, 0], wb * pairs[k, 1]))
        gw = o["weight"].reshape(nt, nbl, cpw)
        expect(np.allclose(gw[ok], want_w[ok], rtol=1e-6), f"field0 spw{w}: Stokes I weights")
        one = xx_ok ^ yy_ok
        expect(one.sum() > 0 and (xx_ok & ~yy_ok).sum() > 0 and (~xx_ok & yy_ok).sum() > 0,
               f"field0 spw{w}: both single-hand cases occur")
        notes.append(f"low-linear field0 spw{w}: {int(want_flag.sum())} of {want_flag.size} "
                     f"samples flagged, {int(one.sum())} from one hand, "
                     f"{int(fr.sum())} FLAG_ROW rows")
    expect(not linear["flag"][0, 0, 0, min(1, cpw - 1), 3]
           and linear["flag"][0, 0, 0, min(1, cpw - 1), 0], "the explicit XX-only case")

    # Field 1: other data, spw 0 only.
    o1 = stokes_i_oracle(lin, 1, 0)
    nf1 = len(FIELD1_INTEGRATIONS)
    expect(o1["vis"].shape == (nf1 * nbl, cpw), "field 1 rows")
    want1 = linear["f1_vis"]
    ok1 = ~(linear["f1_flag"][..., 0] | linear["f1_flag_row"][..., None])
    expect(np.array_equal(~o1["flag"].reshape(nf1, nbl, cpw), ok1), "field 1 flags")
    expect(np.allclose(o1["vis"].reshape(nf1, nbl, cpw)[ok1], want1[ok1], atol=1e-5),
           "field 1 Stokes I")
    f0 = stokes_i_oracle(lin, 0, 0)["vis"].reshape(nt, nbl, cpw)[list(FIELD1_INTEGRATIONS)]
    expect(np.abs(f0 - o1["vis"].reshape(nf1, nbl, cpw))[ok1].min() > 1e-3,
           "field 1 data differ from field 0's")
    expect(stokes_i_oracle(lin, 1, 1)["vis"].size == 0, "field 1 has no spw 1 rows")

    # Circular.
    cir = os.path.join(out, "low-circular.ms")
    s = ms_summary(cir)
    expect(s["correlations"]["corr_type"] == [5, 6, 7, 8], "circular CORR_TYPE")
    expect(len(s["spectral_windows"]) == 1 and len(s["fields"]) == 1, "circular: 1 spw 1 field")
    expect(np.array_equal(s["spectral_windows"][0]["chan_freq_hz"], sim.freq), "circular freq")
    expect("WEIGHT_SPECTRUM" not in s["main"]["columns"]
           and "CORRECTED_DATA" in s["main"]["columns"], "circular columns")
    oc = stokes_i_oracle(cir, 0, 0)
    occ = stokes_i_oracle(cir, 0, 0, "CORRECTED_DATA")
    fl, fr = circular["flag"], circular["flag_row"][..., None]
    rr_ok, ll_ok = ~(fl[..., 0] | fr), ~(fl[..., 3] | fr)
    ok = rr_ok | ll_ok
    expect(np.array_equal(~oc["flag"].reshape(nt, nbl, -1), ok), "circular flags")
    got = oc["vis"].reshape(nt, nbl, -1)
    expect(np.allclose(got[ok], sim.vis[ok], atol=1e-6 * np.abs(sim.vis).max()),
           "circular Stokes I = the bundle's vis")
    expect(np.allclose(occ["vis"], 2 * oc["vis"]) and np.array_equal(occ["weight"], oc["weight"]),
           "circular CORRECTED_DATA = 2 x DATA")
    k = np.stack([sim.pair_index(t, None) for t in range(nt)])[..., None]
    want_w = np.where(rr_ok & ll_ok, sim.weight,
                      np.where(rr_ok, sim.weight * pairs[k, 0], sim.weight * pairs[k, 1]))
    expect(np.allclose(oc["weight"].reshape(nt, nbl, -1)[ok], want_w[ok], rtol=1e-6),
           "circular weights")
    expect((rr_ok & ~ll_ok).sum() > 0, "circular: an LL-only-flagged case")
    notes.append(f"low-circular: {int((~ok).sum())} of {ok.size} samples flagged, "
                 f"{int((rr_ok ^ ll_ok).sum())} from one hand")

    # Unsupported.
    uns = os.path.join(out, "unsupported.ms")
    s = ms_summary(uns)
    expect(s["correlations"]["corr_type"] == [10, 11], "unsupported CORR_TYPE")
    try:
        stokes_i_oracle(uns, 0, 0)
        raise CheckError("unsupported.ms gave a Stokes I")
    except ValueError:
        pass

    # Oracle bundles read back equal to fresh oracles; sizes.
    for name in ("low-linear", "low-circular"):
        with open(os.path.join(out, f"{name}.expected.json"), encoding="utf-8") as f:
            doc = json.load(f)
        for key, e in doc["selections"].items():
            d = os.path.join(out, e["oracle_bundle"])
            o = stokes_i_oracle(os.path.join(out, f"{name}.ms"), e["field_id"],
                                e["spectral_window_id"], e["data_column"])
            for arr in ("vis", "weight", "flag", "time", "uvw", "ant1", "ant2"):
                expect(np.array_equal(np.load(os.path.join(d, f"{arr}.npy")), o[arr]),
                       f"{e['oracle_bundle']}/{arr}.npy")
            expect(e["n_rows"] == len(o["time"]), f"{name} {key} n_rows")
    for name in ("low-linear.ms", "low-circular.ms", "unsupported.ms"):
        size = sum(os.path.getsize(os.path.join(dp, f))
                   for dp, _, fs in os.walk(os.path.join(out, name)) for f in fs)
        notes.append(f"{name}: {size / 1024:.0f} KiB")
        expect(size < 1024 * 1024, f"{name} is {size} bytes, over 1 MiB")
    return notes


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="an `aperture simulate` bundle directory")
    ap.add_argument("--out", required=True, help="output directory (e.g. tests/data/ms)")
    ap.add_argument("--seed", type=int, default=9, help="seed of the flag patterns")
    ap.add_argument("--check", action="store_true",
                    help="after writing, reopen everything and assert it is as intended")
    a = ap.parse_args()
    sim = Sim(a.bundle)
    os.makedirs(a.out, exist_ok=True)
    # What made the files, independent of where they were written.
    command = f"scripts/make_ms_fixtures.py --bundle BUNDLE --seed {a.seed}"
    for name in os.listdir(a.out):
        if name.endswith((".ms", ".stokes-i")) and (
                name.startswith(("low-linear", "low-circular", "unsupported"))):
            shutil.rmtree(os.path.join(a.out, name))
    lin_path = os.path.join(a.out, "low-linear.ms")
    linear = write_linear(sim, lin_path, a.seed)
    write_expected(a.out, "low-linear.ms", sim, {
        **{f"field0-spw{w}": (0, w, "DATA") for w in range(sim.nwin)},
        "field1-spw0": (1, 0, "DATA")}, command,
        {"field1_sky": sim.field1_sky()})
    circular = write_circular(sim, os.path.join(a.out, "low-circular.ms"), a.seed)
    write_expected(a.out, "low-circular.ms", sim, {
        "field0-spw0": (0, 0, "DATA"), "field0-spw0-corrected": (0, 0, "CORRECTED_DATA")},
        command)
    write_unsupported(sim, os.path.join(a.out, "unsupported.ms"))
    doc = {"ms": "unsupported.ms", "generated_by": command,
           **ms_summary(os.path.join(a.out, "unsupported.ms")),
           "must_refuse": "no parallel-hand correlations: the error names POLARIZATION and "
                          "CORR_TYPE"}
    with open(os.path.join(a.out, "unsupported.expected.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote low-linear.ms, low-circular.ms, unsupported.ms in {a.out}")
    if a.check:
        for line in check(a.out, sim, linear, circular):
            print("check:", line)
        print("check: all passed")


if __name__ == "__main__":
    try:
        main()
    except CheckError as e:
        print(f"check failed: {e}", file=sys.stderr)
        sys.exit(1)
