"""Benchmark ``engine.io.load``: time and peak memory per format; prints JSON.

Cases: the real 99-slice DICOM series (``../shared/data/dicom/chest_ct_99``), a
512x512x300 int16 NIfTI as ``.nii.gz`` and ``.nii``, and a stack of 300 PNG files
(512x512), all but the DICOM generated into a temporary folder. Each measurement
runs in a fresh subprocess (imports done before the clock starts), ``--repeat``
times; the report gives the median and best wall time, the peak RSS increase
(``ru_maxrss`` after the load minus the resident size before it) and, in one more
run, the tracemalloc peak (numpy buffers included). Goals (issue 2, on a 2-core
machine): DICOM 99 slices < 1.5 s, NIfTI 300 slices < 2 s, peak memory < 2x the
volume's bytes.

Usage: ``python benchmarks/io.py [--repeat 3] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DICOM_99 = ROOT.parent / "shared" / "data" / "dicom" / "chest_ct_99"
GOALS_S = {"dicom_99": 1.5, "nifti_300_gz": 2.0, "nifti_300": 2.0, "png_300": None}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(path: str, trace: bool) -> None:
    """Run one load in this (fresh) process and print its figures as JSON."""
    import tracemalloc

    import numpy  # noqa: F401 - imports outside the clock

    sys.path.insert(0, str(ROOT))
    import engine.io as eio
    from engine.io import dicom_read, images, nifti, sitk_io  # noqa: F401

    before = _rss_bytes()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    vol = eio.load(path)
    seconds = time.perf_counter() - t0
    peak_trace = tracemalloc.get_traced_memory()[1] if trace else None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss_increase": max(0, maxrss - before),
                      "tracemalloc_peak": peak_trace, "volume_bytes": vol.nbytes,
                      "shape": list(vol.shape), "dtype": str(vol.array.dtype)}))


def _measure(path: Path, repeat: int) -> dict:
    runs = []
    for trace in [False] * repeat + [True]:
        out = subprocess.run([sys.executable, __file__, "--child", str(path)] + (["--trace"] if trace else []),
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    timed = runs[:-1]
    vol_bytes = runs[0]["volume_bytes"]
    peak_rss = max(r["peak_rss_increase"] for r in timed)
    return {
        "shape": runs[0]["shape"], "dtype": runs[0]["dtype"], "volume_mb": round(vol_bytes / 1e6, 1),
        "seconds_median": round(statistics.median(r["seconds"] for r in timed), 3),
        "seconds_best": round(min(r["seconds"] for r in timed), 3),
        "peak_rss_increase_mb": round(peak_rss / 1e6, 1),
        "peak_rss_over_volume": round(peak_rss / vol_bytes, 2),
        "tracemalloc_peak_over_volume": round(runs[-1]["tracemalloc_peak"] / vol_bytes, 2),
    }


def _make_volume(shape=(300, 512, 512)):
    """A CT-like int16 volume: air, an elliptic body with lungs, smooth structure and noise."""
    import numpy as np

    rng = np.random.default_rng(0)
    z, y, x = shape
    yy, xx = np.mgrid[0:y, 0:x]
    body = ((yy - y / 2) / (0.38 * y)) ** 2 + ((xx - x / 2) / (0.45 * x)) ** 2 < 1
    lungs = (((yy - y / 2) / (0.25 * y)) ** 2 + ((np.abs(xx - x / 2) - 0.2 * x) / (0.14 * x)) ** 2) < 1
    base = np.where(body, 40, -1000).astype(np.int16)
    base[lungs] = -850
    vol = np.empty(shape, dtype=np.int16)
    for k in range(z):
        vol[k] = base + rng.normal(0, 15, size=(y, x)).astype(np.int16) * body
    return vol


def _prepare(folder: Path) -> dict[str, Path]:
    import nibabel as nib
    import numpy as np
    from PIL import Image

    cases: dict[str, Path] = {}
    if DICOM_99.is_dir():
        cases["dicom_99"] = DICOM_99
    vol = _make_volume()
    affine = np.diag([-0.7, -0.7, 1.0, 1.0])
    for name, fname in (("nifti_300_gz", "ct300.nii.gz"), ("nifti_300", "ct300.nii")):
        path = folder / fname
        if not path.exists():
            nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), affine), str(path))
        cases[name] = path
    stack = folder / "png300"
    if not stack.is_dir():
        stack.mkdir()
        for k in range(vol.shape[0]):
            grey = np.clip((vol[k].astype(np.float32) + 1350) / 1500 * 255, 0, 255).astype(np.uint8)
            Image.fromarray(grey).save(stack / f"slice{k + 1}.png", compress_level=1)
    cases["png_300"] = stack
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="folder for the generated files (kept between runs)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.trace)
        return
    tmp = None
    if args.keep:
        folder = Path(args.keep)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="lunglens-io-bench-")
        folder = Path(tmp.name)
    t0 = time.perf_counter()
    cases = _prepare(folder)
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "generate_seconds": round(time.perf_counter() - t0, 1), "cases": {}}
    for name, path in cases.items():
        res = _measure(path, args.repeat)
        goal = GOALS_S.get(name)
        res["goal_seconds"] = goal
        res["meets_time_goal"] = None if goal is None else res["seconds_median"] < goal
        res["meets_memory_goal"] = res["peak_rss_over_volume"] < 2.0
        if name != "dicom_99":
            res["file_mb"] = round(sum(p.stat().st_size for p in ([path] if path.is_file()
                                                                    else path.iterdir())) / 1e6, 1)
        report["cases"][name] = res
    print(json.dumps(report, indent=1))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
