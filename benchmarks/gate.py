"""Benchmark the lung gate (``engine.inference.gate.lung_gate``) against the scan's length; prints JSON.

Cases: the phantom (``engine.phantom.chest_ct``, 512 x 512, the default 300 mm field of view,
seed 0) at 100, 200, 300 and 400 slices. The labels are the phantom's findings plus 40
random boxes of GGO, consolidation and effusion anywhere in the scan (fixed seed): what a
model marks on a whole CT (bowel, stomach, neck), so that every rule has work to do. The
lungs are found once (``engine.anatomy.lung_masks``) outside the clock.

Each measurement runs in a fresh subprocess that loads the case from a temporary folder,
runs the gate once with ``tracemalloc`` on (``peak_mb``: the largest memory the call held
at once beyond its inputs) and once more timed (``wall_s`` and ``cpu_s``, the process's CPU
time, which a loaded machine inflates less). With ``--old PATH`` (a checkout of an earlier
LungLens, e.g. the main branch) the same cases run on that code too, in the same session,
old and new interleaved repetition by repetition; medians are reported.

With ``--device cuda`` the new code gates on the device (``lung_gate(..., device="cuda")``:
labels from the host, results back to it, synchronised), the old code on the host as always.

Usage: ``python benchmarks/gate.py [--slices 100,200,300,400] [--repeat 3] [--old /work/main] [--device cpu]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BLOBS = 40


def build(n: int, folder: Path) -> dict:
    """Write the ``n``-slice case (scan, labels, lung masks, geometry) into ``folder``."""
    from engine.anatomy import lung_masks
    from engine.labels import CONSOLIDATION, EFFUSION, GGO
    from engine.phantom import chest_ct

    p = chest_ct((n, 512, 512), None, seed=0)
    labels = p.labels.copy()
    rng = np.random.default_rng(1)
    for _ in range(BLOBS):
        z, y, x = rng.integers(0, n), rng.integers(0, 480), rng.integers(0, 480)
        d, s = rng.integers(1, max(2, n // 50)), rng.integers(4, 30)
        labels[z:z + d, y:y + s, x:x + s] = rng.choice([GGO, CONSOLIDATION, EFFUSION])
    lungs = lung_masks(p.volume)
    g = p.volume.geometry
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in (("array", p.volume.array), ("labels", labels), ("left", lungs.left), ("right", lungs.right)):
        np.save(folder / f"{name}.npy", arr)
    meta = {"spacing": g.spacing, "origin": g.origin, "direction": g.direction, "is_hu": p.volume.is_hu,
            "scan_mb": round(p.volume.array.nbytes / 1e6, 1), "finding_voxels": int((labels > 0).sum())}
    (folder / "meta.json").write_text(json.dumps(meta))
    return meta


def child(folder: Path, device: str) -> dict:
    """Run the gate of whatever code ``PYTHONPATH`` gives on the case in ``folder``."""
    import tracemalloc

    from engine.anatomy import LungMasks
    from engine.inference.gate import lung_gate
    from engine.types import Geometry, Volume

    meta = json.loads((folder / "meta.json").read_text())
    arr = np.load(folder / "array.npy")
    labels = np.load(folder / "labels.npy")
    geometry = Geometry(arr.shape, tuple(meta["spacing"]), tuple(meta["origin"]),
                        tuple(tuple(r) for r in meta["direction"]))
    volume = Volume(arr, geometry, is_hu=meta["is_hu"])
    lungs = LungMasks.from_masks(np.load(folder / "left.npy"), np.load(folder / "right.npy"), geometry)
    kw = {} if device == "cpu" else {"device": device}
    tracemalloc.start()
    first = lung_gate(volume, labels, lungs, **kw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del first
    t, c = time.perf_counter(), time.process_time()
    out = lung_gate(volume, labels, lungs, **kw)  # the result is on the host: nothing left to synchronise
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    res = {"wall_s": wall, "cpu_s": cpu, "peak_mb": peak / 1e6, "removed": out.removed_voxels,
           "code": str(Path(sys.modules["engine"].__file__).resolve().parents[1]), "device": device}
    if device.startswith("cuda"):
        import torch
        res["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 1e6
    return res


def _run(code: Path, folder: Path, device: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code))
    proc = subprocess.run([sys.executable, __file__, "--child", str(folder), "--device", device], capture_output=True,
                          text=True, env=env, cwd=str(code))
    if proc.returncode != 0:
        raise SystemExit(f"the gate failed on {code}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", default="100,200,300,400")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions per case and code (medians)")
    ap.add_argument("--old", help="root of another LungLens checkout to compare with (e.g. /work/main)")
    ap.add_argument("--device", default="cpu", help="where the new code gates (cpu, cuda)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.device)))
        return 0
    sizes = [int(s) for s in args.slices.split(",") if s]
    codes = {"new": ROOT}
    if args.old:
        codes["old"] = Path(args.old).resolve()
    load = os.getloadavg()
    report: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                "load_avg_1min_at_start": round(load[0], 2)},
                    "codes": {k: str(v) for k, v in codes.items()}, "repeat": args.repeat, "cases": []}
    with tempfile.TemporaryDirectory(prefix="lunglens_gate_") as tmp:
        metas = {n: build(n, Path(tmp) / str(n)) for n in sizes}
        runs: dict = {(n, k): [] for n in sizes for k in codes}
        for _ in range(args.repeat):
            for n in sizes:
                for k, code in codes.items():
                    runs[n, k].append(_run(code, Path(tmp) / str(n), args.device if k == "new" else "cpu"))
    for n in sizes:
        case: dict = {"slices": n, "scan_mb": metas[n]["scan_mb"], "finding_voxels": metas[n]["finding_voxels"]}
        for k in codes:
            r = runs[n, k]
            wall = float(np.median([x["wall_s"] for x in r]))
            cpu = float(np.median([x["cpu_s"] for x in r]))
            case[k] = {"device": r[0]["device"], "gate_s": round(wall, 3), "ms_per_slice": round(1000 * wall / n, 2),
                       "cpu_s": round(cpu, 3), "cpu_ms_per_slice": round(1000 * cpu / n, 2),
                       "peak_mb": round(float(np.median([x["peak_mb"] for x in r])), 1),
                       "wall_s_all": [round(x["wall_s"], 3) for x in r]}
            if "gpu_peak_mb" in r[0]:
                case[k]["gpu_peak_mb"] = round(max(x["gpu_peak_mb"] for x in r), 1)
        if "old" in codes:
            case["speedup_wall"] = round(case["old"]["gate_s"] / case["new"]["gate_s"], 2)
            case["speedup_cpu"] = round(case["old"]["cpu_s"] / case["new"]["cpu_s"], 2)
            case["same_removed_counts"] = all(x["removed"] == y["removed"]
                                              for x, y in zip(runs[n, "old"], runs[n, "new"]))
        report["cases"].append(case)
    report["machine"]["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
