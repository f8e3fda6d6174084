"""Benchmark ``engine.io.load``: time and peak memory per format; prints JSON.

Cases: the real 99-slice DICOM series (``../shared/data/dicom/chest_ct_99``), the
same series re-encoded to JPEG 2000 Lossless at benchmark time (pydicom's encoder,
pylibjpeg-openjpeg), the folder scan alone (``list_series``) of the real series, a
512x512x300 int16 NIfTI as ``.nii.gz`` and ``.nii``, and a stack of 300 PNG files
(512x512), all but the real DICOM generated into a temporary folder. Each
measurement runs in a fresh subprocess (imports done before the clock starts),
``--repeat`` times; the report gives the median and best wall time, the CPU time
(the process and its decoder workers; ``cpu_seconds_own``: the process alone), the
peak RSS increase (``ru_maxrss`` after
the load minus the resident size before it) and, in one more run, the tracemalloc
peak (numpy buffers included). Goals (issue 2, on a 2-core machine): DICOM 99
slices < 1.5 s, NIfTI 300 slices < 2 s, peak memory < 2x the volume's bytes.

The DICOM cases also run, interleaved with ours in the same repetitions (medians
compared): SimpleITK's ``ImageSeriesReader`` (file names from
``GetGDCMSeriesFileNames``, array included), LungLens with the decoding forced
serial (``LUNGLENS_DECODE_WORKERS=0``) and, with ``--baseline DIR``, the code of
another checkout (for example ``/work/main``: before/after in one run). Goal (issue
15): the JPEG 2000 series at least level with SimpleITK. The load average before
and after says how busy the machine was: with Linux's scheduler autogroups (one per
session), a busy machine gives this benchmark's session one share of the CPU however
many processes it runs, so extra cores (ours or SimpleITK's threads) then save no
wall time and a worker's start only costs.

Usage: ``python benchmarks/io.py [--repeat 3] [--keep DIR] [--baseline DIR] [--only NAME ...]``
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
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
DICOM_99 = ROOT.parent / "shared" / "data" / "dicom" / "chest_ct_99"
GOALS_S = {"dicom_99": 1.5, "nifti_300_gz": 2.0, "nifti_300": 2.0, "png_300": None}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_seconds(children: bool = True) -> float:
    """CPU time of this process and (``children``) of its waited-for children (the decoder workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN) if children else None
    return own.ru_utime + own.ru_stime + (kids.ru_utime + kids.ru_stime if kids else 0.0)


def _child(path: str, trace: bool, code: str, reader: str) -> None:
    """Run one load in this (fresh) process and print its figures as JSON."""
    import tracemalloc

    import numpy  # noqa: F401 - imports outside the clock

    if reader == "simpleitk":
        import SimpleITK as sitk
        before, cpu0 = _rss_bytes(), _cpu_seconds()
        t0 = time.perf_counter()
        series = sitk.ImageSeriesReader()
        series.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(path))
        arr = sitk.GetArrayFromImage(series.Execute())
        seconds = time.perf_counter() - t0
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu0,
                          "peak_rss_increase": max(0, maxrss - before), "tracemalloc_peak": None,
                          "volume_bytes": arr.nbytes, "shape": list(arr.shape), "dtype": str(arr.dtype)}))
        return
    sys.path.insert(0, code)
    import engine.io as eio
    from engine.io import dicom_read, images, nifti, sitk_io  # noqa: F401

    before, cpu0, own0 = _rss_bytes(), _cpu_seconds(), _cpu_seconds(children=False)
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    if reader == "scan":
        infos = eio.list_series(path)
        vol = None
    else:
        vol = eio.load(path)
    seconds = time.perf_counter() - t0
    cpu, own = _cpu_seconds() - cpu0, _cpu_seconds(children=False) - own0
    peak_trace = tracemalloc.get_traced_memory()[1] if trace else None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if vol is None:
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "cpu_seconds_own": own,
                          "peak_rss_increase": max(0, maxrss - before), "tracemalloc_peak": peak_trace,
                          "volume_bytes": 1, "shape": [infos[0].n_slices], "dtype": "series"}))
        return
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "cpu_seconds_own": own,
                      "peak_rss_increase": max(0, maxrss - before),
                      "tracemalloc_peak": peak_trace, "volume_bytes": vol.nbytes,
                      "shape": list(vol.shape), "dtype": str(vol.array.dtype)}))


def _run_child(path: Path, variant: dict, trace: bool = False) -> dict:
    env = dict(os.environ)
    env.update(variant.get("env", {}))
    args = [sys.executable, __file__, "--child", str(path), "--code", variant.get("code", str(ROOT)),
            "--reader", variant.get("reader", "lunglens")] + (["--trace"] if trace else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure(path: Path, repeat: int, variants: dict[str, dict]) -> dict:
    """Our reader (``lunglens``) and the other variants, interleaved in each repetition."""
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, variant in variants.items():
            runs[name].append(_run_child(path, variant))
    traced = _run_child(path, variants["lunglens"], trace=True) if variants["lunglens"].get("reader") != "scan" \
        else None
    timed = runs["lunglens"]
    vol_bytes = timed[0]["volume_bytes"]
    peak_rss = max(r["peak_rss_increase"] for r in timed)
    res = {
        "shape": timed[0]["shape"], "dtype": timed[0]["dtype"], "volume_mb": round(vol_bytes / 1e6, 1),
        "runs": len(timed), "seconds_median": round(statistics.median(r["seconds"] for r in timed), 3),
        "seconds_best": round(min(r["seconds"] for r in timed), 3),
        "cpu_seconds_median": round(statistics.median(r["cpu_seconds"] for r in timed), 3),
        # the reading process alone; the rest of cpu_seconds ran in decoder workers at the same time
        "cpu_seconds_own_median": round(statistics.median(r["cpu_seconds_own"] for r in timed), 3),
        "peak_rss_increase_mb": round(peak_rss / 1e6, 1),
    }
    if traced is not None:  # a volume was read (not the scan alone)
        res["peak_rss_over_volume"] = round(peak_rss / vol_bytes, 2)
    if traced is not None:
        res["tracemalloc_peak_over_volume"] = round(traced["tracemalloc_peak"] / vol_bytes, 2)
    others = {}
    for name, rs in runs.items():
        if name == "lunglens":
            continue
        med = statistics.median(r["seconds"] for r in rs)
        others[name] = {"seconds_median": round(med, 3), "seconds_best": round(min(r["seconds"] for r in rs), 3),
                        "cpu_seconds_median": round(statistics.median(r["cpu_seconds"] for r in rs), 3),
                        "lunglens_speedup": round(med / max(res["seconds_median"], 1e-9), 2)}
    if others:
        res["compared"] = others
    return res


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


def _jpeg2000_series(src: Path, out: Path) -> Path:
    """``src`` re-encoded to JPEG 2000 Lossless (pydicom + pylibjpeg-openjpeg), same UIDs and file names."""
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    if out.is_dir() and len(list(out.iterdir())) == len(list(src.iterdir())):
        return out
    out.mkdir(exist_ok=True)
    for p in sorted(src.iterdir()):
        ds = pydicom.dcmread(p)
        ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        ds.save_as(out / p.name)
    return out


def _prepare(folder: Path, only: set[str]) -> dict[str, Path]:
    import nibabel as nib
    import numpy as np
    from PIL import Image

    def wanted(name: str) -> bool:
        return not only or name in only

    cases: dict[str, Path] = {}
    if DICOM_99.is_dir():
        for name in ("dicom_99", "dicom_99_scan"):
            if wanted(name):
                cases[name] = DICOM_99
        if wanted("dicom_99_j2k"):
            cases["dicom_99_j2k"] = _jpeg2000_series(DICOM_99, folder / "chest_ct_99_j2k")
    if not any(wanted(n) for n in ("nifti_300_gz", "nifti_300", "png_300")):
        return cases
    vol = _make_volume()
    affine = np.diag([-0.7, -0.7, 1.0, 1.0])
    for name, fname in (("nifti_300_gz", "ct300.nii.gz"), ("nifti_300", "ct300.nii")):
        if not wanted(name):
            continue
        path = folder / fname
        if not path.exists():
            nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), affine), str(path))
        cases[name] = path
    if wanted("png_300"):
        stack = folder / "png300"
        if not stack.is_dir():
            stack.mkdir()
            for k in range(vol.shape[0]):
                grey = np.clip((vol[k].astype(np.float32) + 1350) / 1500 * 255, 0, 255).astype(np.uint8)
                Image.fromarray(grey).save(stack / f"slice{k + 1}.png", compress_level=1)
        cases["png_300"] = stack
    return cases


def _variants(name: str, baseline: Optional[str]) -> dict[str, dict]:
    """Who reads case ``name``: always ``lunglens`` (this tree), plus the comparisons of the DICOM cases."""
    reader = "scan" if name == "dicom_99_scan" else "lunglens"
    variants: dict[str, dict] = {"lunglens": {"reader": reader}}
    if not name.startswith("dicom"):
        return variants
    if name == "dicom_99_j2k":
        variants["lunglens_serial_decode"] = {"reader": reader, "env": {"LUNGLENS_DECODE_WORKERS": "0"}}
    if baseline:
        variants["baseline"] = {"reader": reader, "code": baseline}
    if reader != "scan":
        variants["simpleitk"] = {"reader": "simpleitk"}
    return variants


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="folder for the generated files (kept between runs)")
    ap.add_argument("--baseline", help="another checkout (e.g. /work/main) whose engine reads the DICOM cases too")
    ap.add_argument("--only", nargs="*", default=[], help="case names to run (default all)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--code", default=str(ROOT), help=argparse.SUPPRESS)
    ap.add_argument("--reader", default="lunglens", help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.trace, args.code, args.reader)
        return
    tmp = None
    if args.keep:
        folder = Path(args.keep)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="lunglens-io-bench-")
        folder = Path(tmp.name)
    t0 = time.perf_counter()
    cases = _prepare(folder, set(args.only))
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(), "load_average_before": os.getloadavg()},
              "baseline": args.baseline, "generate_seconds": round(time.perf_counter() - t0, 1), "cases": {}}
    for name, path in cases.items():
        res = _measure(path, args.repeat, _variants(name, args.baseline))
        goal = GOALS_S.get(name)
        res["goal_seconds"] = goal
        res["meets_time_goal"] = None if goal is None else res["seconds_median"] < goal
        if "peak_rss_over_volume" in res:
            res["meets_memory_goal"] = res["peak_rss_over_volume"] < 2.0
        if name == "dicom_99_j2k" and "simpleitk" in res.get("compared", {}):
            res["level_with_simpleitk"] = res["compared"]["simpleitk"]["lunglens_speedup"] >= 1.0
        if not name.startswith("dicom_99") or name == "dicom_99_j2k":
            res["file_mb"] = round(sum(p.stat().st_size for p in ([path] if path.is_file()
                                                                    else path.iterdir())) / 1e6, 1)
        report["cases"][name] = res
    report["machine"]["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
