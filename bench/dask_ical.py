#!/usr/bin/env python3
"""The seed's execution framework as a peer: invert and ICAL in Dask distributed.

The comparison benchmark of issue #4 ("End to end against the seed's execution
framework"): the same workflows `aperture run` executes, written the way the seed
(RASCIL on Dask) runs them, on the same numpy visibility bundle:

  - ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` bound to
    127.0.0.1, no dashboard; every frequency window scattered to the workers
    (``client.scatter``); the whole task graph submitted up front as futures;
  - ducc0 kernels (``ducc0.wgridder.experimental.vis2dirty / dirty2vis``,
    ``do_wgridding=True``, ``nthreads=1``, the bundle's w sign flipped as in
    scripts/ducc0_bench.py);
  - partial images reduced by k-ary trees (fan-in 4) of tasks;
  - ICAL as aperture's plan lays it out (crates/pipeline/src/plan/build.rs,
    tasks/map.rs, tasks/deconvolve.rs): cycle 0 inverts dirty image and PSF per
    window; each major cycle c = 1..N runs one deconvolve task (global phase-only T
    solve by StEFCal from the summed per-window normal equations of the previous
    residual pass, then a Hogbom minor cycle with PSF-patch subtraction), then a fused
    residual pass per window (accumulate the T normal equations against the model,
    correct the data by the latest T gains, predict the model, subtract, invert), then
    a tree reduction; a restore task ends the job.

Two subcommands:

  corrupt RAW OUT   copy a bundle written by ``aperture simulate`` and multiply its
                    visibilities by frequency-independent, phase-only antenna gains
                    g_p (V_pq -> g_p conj(g_q) V_pq, the pipeline simulate's T
                    corruption); the gains are saved as OUT/true_gains_T.npy.
  run BUNDLE        run the workflow and print one JSON line at the end: wall time,
                    the sum of task times measured inside the tasks, the task count,
                    overhead = wall - sum(task)/workers and its fraction of wall.
                    ``--single`` runs the same tasks in this one process instead.

Example (what scripts/bench-vs-dask.sh does):
  aperture simulate --telescope low --rmax 300 --windows 8 --channels-per-window 1 \
      --times 7 --out raw/
  python3 bench/dask_ical.py corrupt raw/ obs/ --gain-phase-rms 20
  python3 bench/dask_ical.py run obs/ --npix 512 --workflow ical
  python3 bench/dask_ical.py run obs/ --npix 512 --workflow ical --single
"""

import os

# One thread per task everywhere (numpy, ducc0), as in the seed's measurement.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

# Task times of this process when tasks run here (--single); Dask workers keep theirs
# on the Worker object (see _record).
_LOCAL_TIMES = []


def _record(name, seconds):
    # Inside a Dask worker `distributed` is already imported; --single never imports it.
    dist = sys.modules.get("distributed")
    try:
        w = dist.get_worker() if dist is not None else None
    except ValueError:
        w = None
    if w is None:
        _LOCAL_TIMES.append((name, seconds))
        return
    if not hasattr(w, "bench_times"):
        w.bench_times = []
    w.bench_times.append((name, seconds))


def timed(fn):
    """Measures the task body (not Dask's (de)serialisation or transfers)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        _record(fn.__name__, time.perf_counter() - t)
        return out

    return wrapper


# --------------------------------------------------------------------------- kernels


def _grid_args(cfg):
    return dict(
        pixsize_x=cfg["cell"],
        pixsize_y=cfg["cell"],
        epsilon=cfg["epsilon"],
        do_wgridding=True,
        # Point-source fluxes in, point-source fluxes out: vis2dirty and dirty2vis
        # without the 1/n factor are an adjoint pair whose PSF peaks at 1.
        divide_by_n=False,
        # ducc0's w sign is the opposite of aperture's (DESIGN.md).
        flip_w=True,
        nthreads=1,
    )


def _invert(win, vis_rc, wgt_rc, cfg):
    import ducc0

    return ducc0.wgridder.experimental.vis2dirty(
        uvw=win["uvw"],
        freq=win["freq"],
        vis=vis_rc,
        wgt=wgt_rc,
        npix_x=cfg["npix"],
        npix_y=cfg["npix"],
        **_grid_args(cfg),
    )


def _predict(win, model_yx, cfg):
    import ducc0

    return ducc0.wgridder.experimental.dirty2vis(
        uvw=win["uvw"], freq=win["freq"], dirty=model_yx, **_grid_args(cfg)
    )


def _normal_equations(win, mvis_rc, nant):
    """Per-baseline sufficient statistics of a frequency-independent T solve.

    For V_pq = g_p conj(g_q) M_pq (p = ant1, q = ant2), the weighted least-squares cost
    depends on the data only through R_pq = sum w V conj(M) and Q_pq = sum w |M|^2,
    summed over times and channels; filled Hermitian (R_qp = conj R_pq) so a StEFCal
    step is g_p = sum_q R_pq g_q / sum_q Q_pq |g_q|^2 (Salvini & Wijnholds 2014).
    """
    w = win["wgt"]
    r = (w * win["vis"] * np.conj(mvis_rc)).sum(axis=1)
    q = (w * np.abs(mvis_rc) ** 2).sum(axis=1)
    idx = win["ant1"].astype(np.int64) * nant + win["ant2"]
    rr = np.bincount(idx, weights=r.real, minlength=nant * nant) + 1j * np.bincount(
        idx, weights=r.imag, minlength=nant * nant
    )
    qq = np.bincount(idx, weights=q, minlength=nant * nant)
    rr = rr.reshape(nant, nant)
    qq = qq.reshape(nant, nant)
    return rr + rr.conj().T, qq + qq.T


def stefcal_phase(r_pq, q_pq, g0, max_iter=200, tol=1e-8, refant=0):
    """Phase-only StEFCal (Salvini & Wijnholds 2014, alg. 1 with the even-step average)
    on summed normal equations; gains referenced to `refant` (real, positive)."""
    g = g0.astype(np.complex128).copy()
    for it in range(max_iter):
        num = r_pq @ g
        den = q_pq @ (np.abs(g) ** 2)
        gn = np.where(den > 0, num / np.where(den > 0, den, 1.0), g)
        gn = np.where(np.abs(gn) > 0, gn / np.maximum(np.abs(gn), 1e-300), 1.0)
        if it % 2 == 1:
            gn = 0.5 * (gn + g)
            gn = gn / np.maximum(np.abs(gn), 1e-300)
        step = np.linalg.norm(gn - g) / max(np.linalg.norm(gn), 1e-300)
        g = gn
        if step < tol:
            break
    return g * np.conj(g[refant]) / max(abs(g[refant]), 1e-300)


def hogbom(dirty_yx, psf_yx, niter, gain, threshold, frac, support, window):
    """Hogbom CLEAN (Hogbom 1974): peak search over the window, subtraction of a PSF
    patch of half-width `support` (clipped at the edges). Returns (components, residual,
    iterations)."""
    res = dirty_yx.copy()
    comp = np.zeros_like(res)
    ny, nx = res.shape
    cy, cx = ny // 2, nx // 2
    s = min(support, cy, cx)
    patch = psf_yx[cy - s : cy + s + 1, cx - s : cx + s + 1]
    if window == "quarter":
        y0, y1, x0, x1 = ny // 4, 3 * ny // 4, nx // 4, 3 * nx // 4
    else:
        y0, y1, x0, x1 = 0, ny, 0, nx
    view = res[y0:y1, x0:x1]
    wx = x1 - x0
    first = np.abs(view).max()
    stop = max(threshold, frac * first)
    it = 0
    for it in range(niter):
        k = int(np.abs(view).argmax())
        py, px = y0 + k // wx, x0 + k % wx
        peak = res[py, px]
        if abs(peak) < stop:
            break
        c = gain * peak
        comp[py, px] += c
        ya, yb = max(py - s, 0), min(py + s + 1, ny)
        xa, xb = max(px - s, 0), min(px + s + 1, nx)
        res[ya:yb, xa:xb] -= c * patch[ya - py + s : yb - py + s, xa - px + s : xb - px + s]
    else:
        it = niter
    return comp, res, it


def clean_beam(psf_yx):
    """Gaussian clean beam from the second moments of the PSF's main lobe (> 0.5)."""
    ny, nx = psf_yx.shape
    cy, cx = ny // 2, nx // 2
    h = 16
    p = psf_yx[cy - h : cy + h + 1, cx - h : cx + h + 1]
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    m = np.where(p > 0.5, p, 0.0)
    tot = max(m.sum(), 1e-12)
    cyy = (m * yy * yy).sum() / tot
    cxx = (m * xx * xx).sum() / tot
    cxy = (m * xx * yy).sum() / tot
    # A circular Gaussian weighted by itself inside its half-maximum contour has
    # <x^2> = (1 - (1 + ln 2)/2) / (1/2) / 2 * 2 sigma^2 = 0.3069 sigma^2 per axis.
    k = 1.0 / 0.30685
    cov = np.array([[cxx, cxy], [cxy, cyy]]) * k
    yg, xg = np.mgrid[0:ny, 0:nx]
    dx, dy = xg - cx, yg - cy
    inv = np.linalg.inv(cov + 1e-9 * np.eye(2))
    return np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))


# ----------------------------------------------------------------------------- tasks


@timed
def invert_task(win, cfg):
    """Cycle 0 of a window: dirty image and PSF (natural weights)."""
    dirty = _invert(win, win["vis"], win["wgt"], cfg)
    psf = _invert(win, np.ones_like(win["vis"]), win["wgt"], cfg)
    return {"dirty": dirty, "psf": psf, "sumwt": float(win["wgt"].sum())}


@timed
def residual_task(win, state, cfg):
    """Fused residual pass of a window: T normal equations against the model (raw
    data), correct by the latest T gains, predict, subtract, invert."""
    model = state["model"]
    mvis = _predict(win, model, cfg)
    out = {"sumwt": float(win["wgt"].sum())}
    if state["solve_t"]:
        out["R"], out["Q"] = _normal_equations(win, mvis, cfg["nant"])
    vis = win["vis"]
    g = state["gains"]
    if g is not None:
        gpq = g[win["ant1"]] * np.conj(g[win["ant2"]])
        vis = vis / gpq[:, None]
    out["dirty"] = _invert(win, vis - mvis, win["wgt"], cfg)
    return out


@timed
def psf_task(win, cfg):
    """--granularity split: the PSF of a window as its own task (RASCIL's invert_list)."""
    return {"psf": _invert(win, np.ones_like(win["vis"]), win["wgt"], cfg), "sumwt": float(win["wgt"].sum())}


@timed
def dirty_task(win, cfg):
    """--granularity split: the dirty image of a window."""
    return {"dirty": _invert(win, win["vis"], win["wgt"], cfg), "sumwt": float(win["wgt"].sum())}


@timed
def predict_task(win, state, cfg):
    """--granularity split: model visibilities and the T normal equations."""
    mvis = _predict(win, state["model"], cfg)
    out = {"mvis": mvis}
    if state["solve_t"]:
        out["R"], out["Q"] = _normal_equations(win, mvis, cfg["nant"])
    return out


@timed
def subtract_task(win, state, pred):
    """--granularity split: correct by the latest T gains and subtract the model."""
    vis = win["vis"]
    g = state["gains"]
    if g is not None:
        vis = vis / (g[win["ant1"]] * np.conj(g[win["ant2"]]))[:, None]
    return vis - pred["mvis"]


@timed
def invert_residual_task(win, resid, pred, cfg):
    """--granularity split: invert the residual; carries the normal equations on."""
    out = {"dirty": _invert(win, resid, win["wgt"], cfg), "sumwt": float(win["wgt"].sum())}
    if "R" in pred:
        out["R"], out["Q"] = pred["R"], pred["Q"]
    return out


@timed
def sum_task(*parts):
    """One node of a reduction tree: element-wise sum of partials."""
    out = {}
    for p in parts:
        for k, v in p.items():
            out[k] = v if k not in out else out[k] + v
    return out


@timed
def deconvolve_task(prev, psf_part, state, cfg):
    """Major cycle c: T solve from the summed normal equations of the previous pass (if
    any), then Hogbom on the normalised residual; the model of cycle c."""
    gains = state["gains"]
    if "R" in prev:
        g0 = gains if gains is not None else np.ones(cfg["nant"], np.complex128)
        gains = stefcal_phase(prev["R"], prev["Q"], g0)
    dirty = prev["dirty"] / prev["sumwt"]
    psf = psf_part["psf"] / psf_part["sumwt"]
    comp, res, nit = hogbom(
        dirty,
        psf,
        cfg["niter"],
        cfg["gain"],
        cfg["threshold"],
        cfg["fractional_threshold"],
        cfg["psf_support"],
        cfg["window"],
    )
    model = comp if state["model"] is None else state["model"] + comp
    return {
        "model": model,
        "gains": gains,
        "solve_t": state["cycle"] + 1 >= cfg["t_first_cycle"],
        "cycle": state["cycle"] + 1,
        "iterations": state["iterations"] + [nit],
        "peak": state["peak"] + [float(np.abs(dirty).max())],
    }


@timed
def restore_task(final, psf_part, state):
    """Model convolved with the clean beam plus the residual; summary figures."""
    psf = psf_part["psf"] / psf_part["sumwt"]
    residual = final["dirty"] / final["sumwt"]
    beam = clean_beam(psf)
    conv = np.fft.irfft2(
        np.fft.rfft2(state["model"]) * np.fft.rfft2(np.fft.ifftshift(beam)), s=beam.shape
    )
    restored = conv + residual
    return {
        "restored": restored,
        "gains": state["gains"],
        "residual_peak": float(np.abs(residual).max()),
        "residual_rms": float(np.sqrt(np.mean(residual**2))),
        "model_flux": float(state["model"].sum()),
        "iterations": state["iterations"],
        "peaks": state["peak"],
    }


@timed
def normalise_task(root):
    """The invert workflow's end: dirty image and PSF divided by the sum of weights."""
    return {
        "restored": root["dirty"] / root["sumwt"],
        "psf_peak": float((root["psf"] / root["sumwt"]).max()),
        "dirty_peak": float(np.abs(root["dirty"] / root["sumwt"]).max()),
    }


# -------------------------------------------------------------------------- runners


class LocalRunner:
    """Runs every task at once, in this process (the graph is built in order)."""

    nworkers = 1

    def __init__(self):
        self.tasks = 0

    def scatter(self, items):
        return list(items)

    def submit(self, fn, *args):
        self.tasks += 1
        return fn(*args)

    def result(self, x):
        return x

    def task_times(self):
        return list(_LOCAL_TIMES)

    def close(self):
        pass


class DaskRunner:
    """A LocalCluster of worker processes on 127.0.0.1; tasks submitted as futures."""

    def __init__(self, nworkers):
        from distributed import Client, LocalCluster

        self.nworkers = nworkers
        self.cluster = LocalCluster(
            n_workers=nworkers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
            silence_logs=40,
        )
        self.client = Client(self.cluster)
        self.tasks = 0

    def scatter(self, items):
        return self.client.scatter(list(items))

    def submit(self, fn, *args):
        self.tasks += 1
        return self.client.submit(fn, *args, pure=False)

    def result(self, fut):
        return fut.result()

    def task_times(self):
        per = self.client.run(lambda dask_worker: getattr(dask_worker, "bench_times", []))
        return [t for v in per.values() for t in v]

    def close(self):
        self.client.close()
        self.cluster.close()


def tree_reduce(runner, parts, fan_in):
    """k-ary reduction tree of tasks (the same levels as aperture's plan)."""
    while len(parts) > 1:
        parts = [runner.submit(sum_task, *parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)]
    return parts[0]


# --------------------------------------------------------------------------- bundle


def load_windows(bundle, channels_per_window):
    """The bundle's frequency windows as independent dicts (uvw, freq, vis, wgt,
    ant1, ant2), one window's channels each; flagged samples get weight 0."""
    meta = json.load(open(os.path.join(bundle, "meta.json")))
    uvw = np.load(os.path.join(bundle, "uvw.npy"))
    freq = np.load(os.path.join(bundle, "freq.npy"))
    vis = np.load(os.path.join(bundle, "vis.npy")).astype(np.complex128)
    wgt = np.load(os.path.join(bundle, "weight.npy")).astype(np.float64)
    if os.path.exists(os.path.join(bundle, "flag.npy")):
        wgt = np.where(np.load(os.path.join(bundle, "flag.npy")), 0.0, wgt)
    ant1 = np.load(os.path.join(bundle, "ant1.npy")).astype(np.int64)
    ant2 = np.load(os.path.join(bundle, "ant2.npy")).astype(np.int64)
    cpw = channels_per_window or meta.get("frequency_windows", {}).get("channels_per_window") or freq.size
    wins = []
    for c0 in range(0, freq.size, cpw):
        sl = slice(c0, min(c0 + cpw, freq.size))
        wins.append(
            {
                "uvw": uvw,
                "freq": np.ascontiguousarray(freq[sl]),
                "vis": np.ascontiguousarray(vis[:, sl]),
                "wgt": np.ascontiguousarray(wgt[:, sl]),
                "ant1": ant1,
                "ant2": ant2,
            }
        )
    nant = int(max(ant1.max(), ant2.max())) + 1
    return wins, meta, nant


def corrupt(args):
    """Copies RAW to OUT with frequency-independent phase-only gains applied."""
    if os.path.exists(args.out):
        if not args.overwrite:
            sys.exit(f"corrupt: {args.out} exists (use --overwrite)")
        shutil.rmtree(args.out)
    shutil.copytree(args.raw, args.out)
    ant1 = np.load(os.path.join(args.raw, "ant1.npy")).astype(np.int64)
    ant2 = np.load(os.path.join(args.raw, "ant2.npy")).astype(np.int64)
    vis = np.load(os.path.join(args.raw, "vis.npy"))
    nant = int(max(ant1.max(), ant2.max())) + 1
    rng = np.random.default_rng(args.seed)
    g = np.exp(1j * np.deg2rad(args.gain_phase_rms) * rng.standard_normal(nant))
    gpq = g[ant1] * np.conj(g[ant2])
    np.save(os.path.join(args.out, "vis.npy"), (vis * gpq[:, None]).astype(vis.dtype))
    np.save(os.path.join(args.out, "true_gains_T.npy"), g)
    print(json.dumps({"out": args.out, "nant": nant, "gain_phase_rms_deg": args.gain_phase_rms}))


def phase_error_deg(g_sol, g_true, refant=0):
    """RMS phase difference (degrees) after removing the reference antenna's phase."""
    d = np.angle(g_sol * np.conj(g_true))
    d = np.angle(np.exp(1j * (d - d[refant])))
    return float(np.rad2deg(np.sqrt(np.mean(d**2))))


# ----------------------------------------------------------------------------- main


def build_and_run(runner, wins, cfg, workflow):
    """Submits the whole graph and waits for the final task."""
    data = runner.scatter(wins)
    k = cfg["fan_in"]
    if cfg["granularity"] == "fused":
        root0 = tree_reduce(runner, [runner.submit(invert_task, d, cfg) for d in data], k)
        dirty0 = psf0 = root0
    else:
        dirty0 = tree_reduce(runner, [runner.submit(dirty_task, d, cfg) for d in data], k)
        psf0 = tree_reduce(runner, [runner.submit(psf_task, d, cfg) for d in data], k)
        root0 = runner.submit(sum_task, dirty0, psf0) if workflow == "invert" else None
    if workflow == "invert":
        return runner.result(runner.submit(normalise_task, root0))
    state = {"model": None, "gains": None, "solve_t": False, "cycle": 0, "iterations": [], "peak": []}
    prev = dirty0
    for _ in range(cfg["major_cycles"]):
        state = runner.submit(deconvolve_task, prev, psf0, state, cfg)
        if cfg["granularity"] == "fused":
            parts = [runner.submit(residual_task, d, state, cfg) for d in data]
        else:
            parts = []
            for d in data:
                pred = runner.submit(predict_task, d, state, cfg)
                resid = runner.submit(subtract_task, d, state, pred)
                parts.append(runner.submit(invert_residual_task, d, resid, pred, cfg))
        prev = tree_reduce(runner, parts, k)
    return runner.result(runner.submit(restore_task, prev, psf0, state))


def run(args):
    wins, meta, nant = load_windows(args.bundle, args.channels_per_window)
    cell = args.cell_rad or meta.get("advised_image", {}).get("cell_rad")
    if not cell:
        sys.exit("run: --cell-rad is needed (the bundle's meta.json has no advised_image)")
    cfg = {
        "npix": args.npix,
        "cell": float(cell),
        "epsilon": args.epsilon,
        "nant": nant,
        "fan_in": args.fan_in,
        "major_cycles": args.major_cycles,
        "niter": args.niter,
        "gain": args.gain,
        "threshold": args.threshold,
        "fractional_threshold": args.fractional_threshold,
        "psf_support": args.psf_support,
        "window": args.window,
        "t_first_cycle": args.t_first_cycle,
        "granularity": args.granularity,
    }
    t_setup = time.perf_counter()
    runner = LocalRunner() if args.single else DaskRunner(args.workers)
    setup_s = time.perf_counter() - t_setup
    try:
        t0 = time.perf_counter()
        out = build_and_run(runner, wins, cfg, args.workflow)
        wall = time.perf_counter() - t0
        times = runner.task_times()
    finally:
        runner.close()
    task_s = sum(t for _, t in times)
    by_kind = {}
    for name, t in times:
        by_kind[name] = by_kind.get(name, 0.0) + t
    overhead = wall - task_s / runner.nworkers
    res = {
        "framework": "python single process" if args.single else f"dask distributed {_dask_version()}",
        "workflow": args.workflow,
        "workers": runner.nworkers,
        "windows": len(wins),
        "nvis": int(sum(w["vis"].size for w in wins)),
        "nant": nant,
        "npix": args.npix,
        "cell_rad": float(cell),
        "epsilon": args.epsilon,
        "major_cycles": args.major_cycles if args.workflow == "ical" else 0,
        "granularity": args.granularity,
        "tasks": runner.tasks,
        "tasks_timed": len(times),
        "wall_s": round(wall, 4),
        "task_s": round(task_s, 4),
        "overhead_s": round(overhead, 4),
        "overhead_fraction": round(overhead / wall, 4) if wall > 0 else 0.0,
        "cluster_start_s": round(setup_s, 3),
        "task_s_by_kind": {k: round(v, 4) for k, v in sorted(by_kind.items())},
        "ducc0": _ducc0_version(),
    }
    if args.workflow == "ical":
        res["minor_iterations"] = out["iterations"]
        res["cycle_peaks"] = [round(p, 6) for p in out["peaks"]]
        res["residual_peak"] = round(out["residual_peak"], 6)
        res["residual_rms"] = round(out["residual_rms"], 6)
        res["model_flux"] = round(out["model_flux"], 6)
        truth = os.path.join(args.bundle, "true_gains_T.npy")
        if out["gains"] is not None and os.path.exists(truth):
            res["gain_phase_error_deg"] = round(phase_error_deg(out["gains"], np.load(truth)), 4)
    else:
        res["dirty_peak"] = round(out["dirty_peak"], 6)
        res["psf_peak"] = round(out["psf_peak"], 6)
    if args.save:
        np.save(args.save, out["restored"])
    print(json.dumps(res))


def _dask_version():
    try:
        import distributed

        return distributed.__version__
    except ImportError:
        return "?"


def _ducc0_version():
    import ducc0

    return ducc0.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corrupt", help="apply phase-only T gains to a bundle")
    c.add_argument("raw")
    c.add_argument("out")
    c.add_argument("--gain-phase-rms", type=float, default=20.0, help="degrees")
    c.add_argument("--seed", type=int, default=7)
    c.add_argument("--overwrite", action="store_true")
    r = sub.add_parser("run", help="run invert or ICAL and print one JSON line")
    r.add_argument("bundle")
    r.add_argument("--workflow", choices=["invert", "ical"], default="ical")
    r.add_argument("--single", action="store_true", help="all tasks in this process")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--npix", type=int, default=512)
    r.add_argument("--cell-rad", type=float, help="default: meta.json advised_image")
    r.add_argument("--epsilon", type=float, default=1e-5)
    r.add_argument("--channels-per-window", type=int, help="default: meta.json")
    r.add_argument("--fan-in", type=int, default=4)
    r.add_argument("--major-cycles", type=int, default=3)
    r.add_argument("--niter", type=int, default=500)
    r.add_argument("--gain", type=float, default=0.1)
    r.add_argument("--threshold", type=float, default=0.001)
    r.add_argument("--fractional-threshold", type=float, default=0.1)
    r.add_argument("--psf-support", type=int, default=128, help="PSF patch half-width, pixels")
    r.add_argument("--window", choices=["all", "quarter"], default="all")
    r.add_argument("--t-first-cycle", type=int, default=1, help="first cycle that solves T")
    r.add_argument(
        "--granularity",
        choices=["fused", "split"],
        default="fused",
        help="fused: one residual task per window and cycle (aperture's plan); split: "
        "RASCIL-like separate dirty/PSF, predict, subtract and invert tasks",
    )
    r.add_argument("--save", help="write the restored (or dirty) image as .npy")
    args = ap.parse_args()
    if args.cmd == "corrupt":
        corrupt(args)
    else:
        if args.fan_in < 2 or args.workers < 1 or args.major_cycles < 1:
            sys.exit("run: --fan-in >= 2, --workers >= 1 and --major-cycles >= 1 are needed")
        run(args)


if __name__ == "__main__":
    main()
