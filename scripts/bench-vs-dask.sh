#!/usr/bin/env bash
# aperture's job pipeline against the seed's execution framework (issue #4, "End to end
# against the seed's execution framework"; bench/README.md): the invert and ICAL
# workflows on the same visibilities (LOW rmax 300 m, 8 windows x 1 channel, 7 times,
# 512^2, epsilon 1e-5, phase-only T self-calibration, 3 major cycles) in
#   - Dask distributed: LocalCluster, 2 worker processes on 127.0.0.1, ducc0 kernels;
#   - the same Python tasks in one process (--single);
#   - `aperture run` with --parallel 1 and --parallel 2 (worker processes, file store);
#   - the ICAL once more with the shards aperture's planner picks (windowsPerShard left
#     out), compared with Dask as the seed runs it (one window per task);
#   - the ICAL once more on both sides with 4 windows per map task ("batched"): aperture
#     with windowsPerShard 4 (its map tasks grid a shard's windows in one gridder call,
#     crates/pipeline/src/tasks/map.rs), the Python side with --channels-per-window 4
#     (one ducc0 call over 4 windows' channels), so the gain of batching is shown apart
#     from the gain of the framework;
# then prints a Markdown table: wall, sum of task times, tasks, overhead, the speed-up
# of the second worker and the Dask/aperture wall-time ratio.
# Usage: scripts/bench-vs-dask.sh [REPEAT]   (best wall of REPEAT runs each; default 1)
# Environment: CARGO_TARGET_DIR (respected), KEEP=DIR (keep the work files there).
set -uo pipefail
cd "$(dirname "$0")/.."
REPEAT="${1:-1}"
if [[ -n "${KEEP:-}" ]]; then
  WORK="$KEEP"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
fi
die() { echo "bench-vs-dask: $*" >&2; exit 2; }

cargo build --release -p aperture -p aperture-worker --quiet || die "cargo build failed"
APERTURE="${CARGO_TARGET_DIR:-target}/release/aperture"
[[ -x "$APERTURE" ]] || die "$APERTURE not found after the build"
if ! python3 -c "import distributed, ducc0, numpy" 2>/dev/null; then
  pip install --quiet "dask[distributed]" ducc0 numpy || die "pip install failed"
fi

# One shared bundle: aperture simulates the array and sky, the Python side puts
# frequency-independent phase-only gains on it, aperture imports it as Zarr.
"$APERTURE" -q simulate --telescope low --rmax 300 --windows 8 --channels-per-window 1 \
  --times 7 --out "$WORK/raw" --overwrite >/dev/null || die "aperture simulate failed"
python3 bench/dask_ical.py corrupt "$WORK/raw" "$WORK/obs" --gain-phase-rms 20 --overwrite \
  >/dev/null || die "corrupting the bundle failed"
rm -rf "$WORK/obs.zarr"
"$APERTURE" -q import npy "$WORK/obs" "$WORK/obs.zarr" >/dev/null || die "aperture import failed"

# The manifests: the example with its input replaced by the shared dataset, and its
# invert variant.
python3 - "$WORK" <<'PY' || die "cannot derive the manifests"
import re, sys
work = sys.argv[1]
s = open("examples/bench-ical-dask.yaml").read()
s = re.sub(r"\n  input:\n(    .*\n)+", f"\n  input:\n    visibilities: {work}/obs.zarr\n", s)
open(f"{work}/ical.yaml", "w").write(s)
inv = s.replace("pipeline: ical", "pipeline: invert").replace("name: bench-ical-dask", "name: bench-invert-dask")
inv = re.sub(r"(?m)^  (deconvolution|calibration):\n(    .*\n)+", "", inv)
inv = re.sub(r"(?m)^  majorCycles: .*\n", "", inv)
open(f"{work}/invert.yaml", "w").write(inv)
bat = re.sub(r"windowsPerShard: *1\b", "windowsPerShard: 4", s)
assert bat != s, "examples/bench-ical-dask.yaml has no windowsPerShard: 1"
open(f"{work}/ical4.yaml", "w").write(bat.replace("name: bench-ical-dask", "name: bench-ical4-dask"))
auto = re.sub(r"(?m)^    windowsPerShard: *1\n", "", s)
assert auto != s, "examples/bench-ical-dask.yaml has no windowsPerShard: 1 line"
open(f"{work}/icalauto.yaml", "w").write(auto.replace("name: bench-ical-dask", "name: bench-icalauto-dask"))
PY
"$APERTURE" -q run "$WORK/ical.yaml" --plan-only --output "$WORK/plan" --force >/dev/null \
  || die "aperture run --plan-only failed"
CELL=$(python3 -c "import json;print(json.load(open('$WORK/plan/plan.json'))['image']['cell_rad'])")
NPIX=$(python3 -c "import json;print(json.load(open('$WORK/plan/plan.json'))['image']['npix'])")

now() { python3 -c 'import time;print(time.time())'; }

# run_dask WORKFLOW MODE(dask|single) [NAME EXTRA...] -> $WORK/dask-NAME-MODE-i.json
# (NAME defaults to WORKFLOW; EXTRA are more arguments of dask_ical.py run)
run_dask() {
  local wf=$1 mode=$2 i extra=()
  local name=${3:-$wf}
  [[ $# -gt 3 ]] && extra=("${@:4}")
  [[ $mode == single ]] && extra+=(--single)
  for ((i = 1; i <= REPEAT; i++)); do
    local t0 t1
    t0=$(now)
    if python3 bench/dask_ical.py run "$WORK/obs" --workflow "$wf" --npix "$NPIX" --cell-rad "$CELL" \
      "${extra[@]}" >"$WORK/dask-$name-$mode-$i.out" 2>"$WORK/dask-$name-$mode-$i.err"; then
      t1=$(now)
      tail -n 1 "$WORK/dask-$name-$mode-$i.out" | python3 -c "
import json,sys; d=json.load(sys.stdin); d['command_s']=$t1-$t0; print(json.dumps(d))" \
        >"$WORK/dask-$name-$mode-$i.json"
    else
      echo "dask $name $mode failed: $(tail -n 1 "$WORK/dask-$name-$mode-$i.err")" >&2
    fi
  done
}

# run_aperture NAME MANIFEST PARALLEL -> $WORK/ap-NAME-pPARALLEL-i.json
run_aperture() {
  local name=$1 job=$2 par=$3 i
  for ((i = 1; i <= REPEAT; i++)); do
    local out="$WORK/out-$name-p$par" t0 t1
    # A rerun on an existing output resumes (skips committed tasks): start afresh.
    rm -rf "$out"
    t0=$(now)
    if "$APERTURE" -q run "$job" --output "$out" --force --parallel "$par" \
      >"$WORK/ap-$name-p$par-$i.out" 2>"$WORK/ap-$name-p$par-$i.err"; then
      t1=$(now)
      python3 - "$out" "$t0" "$t1" >"$WORK/ap-$name-p$par-$i.json" <<'PY'
import csv, json, sys
out, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
row = next(csv.DictReader(open(f"{out}/diagnostics/timings.csv")))
tasks = sum(1 for _ in csv.DictReader(open(f"{out}/diagnostics/tasks.csv")))
wall, task = float(row["time_overall"]), float(row["task_seconds"])
nw = int(row["nworkers"])
print(json.dumps({"wall_s": wall, "task_s": task, "tasks": tasks, "workers": nw,
                  "overhead_s": wall - task / nw, "overhead_fraction": float(row["overhead_fraction"]),
                  "command_s": t1 - t0, "graph_size": int(row["graph_size"])}))
PY
    else
      echo "aperture $name --parallel $par failed: $(grep -v '^\s*$' "$WORK/ap-$name-p$par-$i.err" | tail -n 1)" >&2
      grep -v '^\s*$' "$WORK/ap-$name-p$par-$i.err" | tail -n 1 >"$WORK/ap-$name-p$par.failed"
    fi
  done
}

LOAD_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
for wf in invert ical; do
  run_dask "$wf" dask
  run_dask "$wf" single
  run_aperture "$wf" "$WORK/$wf.yaml" 1
  run_aperture "$wf" "$WORK/$wf.yaml" 2
done
# Batched: 4 windows per map task on both sides.
run_dask ical dask ical4 --channels-per-window 4
run_dask ical single ical4 --channels-per-window 4
run_aperture ical4 "$WORK/ical4.yaml" 1
run_aperture ical4 "$WORK/ical4.yaml" 2
# The same ICAL with the shards aperture's planner chooses (windowsPerShard left out),
# against Dask as the seed runs it (one window per task).
run_aperture icalauto "$WORK/icalauto.yaml" 1
run_aperture icalauto "$WORK/icalauto.yaml" 2
# The example exactly as written (its own simulate stage adds 8 tasks).
run_aperture example examples/bench-ical-dask.yaml 2

python3 - "$WORK" "$REPEAT" "$LOAD_START" <<'PY'
import glob, json, os, sys
work, repeat, load_start = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def best(prefix):
    runs = [json.load(open(p)) for p in glob.glob(f"{work}/{prefix}-*.json")]
    return min(runs, key=lambda r: r["wall_s"]) if runs else None

def failed(prefix):
    p = f"{work}/{prefix}.failed"
    return open(p).read().strip().replace("|", "/") if os.path.exists(p) else "no result"

print(f"best wall of {repeat} run(s) each; 1-min load average {load_start} at the start, "
      f"{os.getloadavg()[0]:.2f} at the end; {os.cpu_count()} cores")
print()
print("| workflow | runner | workers | wall s | Σ task s | tasks | overhead s (wall − Σtask/workers) "
      "| overhead % | 2nd-worker speed-up | Dask wall / this wall | command s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
label = {"invert": "invert", "ical": "ical", "ical4": "ical, 4 windows per map task",
         "icalauto": "ical, aperture's planner shards (vs Dask's 1 window per task)"}
# The Dask run each aperture variant is compared with.
dask_of = {"invert": "invert", "ical": "ical", "ical4": "ical4", "icalauto": "ical"}
fails = 0
for wf in ["invert", "ical", "ical4", "icalauto"]:
    d2, d1 = best(f"dask-{dask_of[wf]}-dask"), best(f"dask-{dask_of[wf]}-single")
    a1, a2 = best(f"ap-{wf}-p1"), best(f"ap-{wf}-p2")
    rows = [
        ("Dask distributed (ducc0)", d2, d1, "dask"),
        ("Python, one process (ducc0)", d1, None, None),
        ("aperture run", a1, None, f"ap-{wf}-p1"),
        ("aperture run", a2, a1, f"ap-{wf}-p2"),
    ]
    if wf != dask_of[wf]:
        rows = rows[2:]
    for name, r, base, tag in rows:
        if r is None:
            fails += 1
            why = failed(tag) if tag and tag.startswith("ap-") else "failed (see stderr above)"
            print(f"| {label[wf]} | {name} | | not measured: {why} | | | | | | | |")
            continue
        speed = f"{base['wall_s'] / r['wall_s']:.2f}×" if base else ""
        ratio = f"{d2['wall_s'] / r['wall_s']:.2f}" if d2 else ""
        print(f"| {label[wf]} | {name} | {r['workers']} | {r['wall_s']:.2f} | {r['task_s']:.2f} | {r['tasks']} "
              f"| {r['overhead_s']:.2f} | {100 * r['overhead_s'] / r['wall_s']:.1f} | {speed} | {ratio} "
              f"| {r['command_s']:.2f} |")
ex = best("ap-example-p2")
if ex:
    print(f"| ical (example as written, with its simulate stage) | aperture run | {ex['workers']} "
          f"| {ex['wall_s']:.2f} | {ex['task_s']:.2f} | {ex['tasks']} | {ex['overhead_s']:.2f} "
          f"| {100 * ex['overhead_s'] / ex['wall_s']:.1f} | | | {ex['command_s']:.2f} |")
else:
    print(f"| ical (example as written) | aperture run | | not measured: {failed('ap-example-p2')} | | | | | | | |")
d = best("dask-ical-dask")
if d and "gain_phase_error_deg" in d:
    print()
    print(f"Dask ICAL check: T phase error after 3 cycles {d['gain_phase_error_deg']:.2f}° rms "
          f"(20° injected); residual peak {d['residual_peak']:.4f} Jy/beam; minor iterations "
          f"{d['minor_iterations']}.")
sys.exit(1 if fails else 0)
PY
