"""Benchmark batch throughput on Ray: scans per hour with 1 and with 2 local workers.

Copies the real 99-slice DICOM series (``../shared/data/dicom/chest_ct_99``, 512x512,
3 mm) ``--scans`` times into a temporary folder (distinct paths, so distinct scans),
then runs :func:`engine.batch.run_batch` on it with the shipped default models, the
PDF report and ``--device``, once per ``--workers`` value, each into a fresh batch
folder. Reported per run: scans per hour (Ray start-up excluded), Ray start-up, the
output written per scan (labels, findings.json, report), and
the median per-scan read / AI / quantify / write / total seconds from the cohort
table. With ``W`` workers on ``C`` cores each task gets ``C // W`` torch threads.

Usage: ``python benchmarks/batch.py [--scans 2] [--workers 1 2] [--device cpu] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DICOM_99 = ROOT.parent / "shared" / "data" / "dicom" / "chest_ct_99"
sys.path.insert(0, str(ROOT))


def measure(n_scans: int = 2, workers: tuple[int, ...] = (1, 2), device: str = "cpu") -> dict:
    import pyarrow.parquet as pq

    from engine.batch import BatchOptions, run_batch

    out: dict = {"device": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), {device}",
                 "scan": "chest_ct_99 (99 x 512 x 512 DICOM)", "scans": n_scans, "runs": []}
    with tempfile.TemporaryDirectory(prefix="lunglens-batch-bench-") as tmp:
        scans = Path(tmp) / "scans"
        for i in range(n_scans):
            shutil.copytree(DICOM_99, scans / f"copy{i}")
        for w in workers:
            summary = run_batch([str(scans)], Path(tmp) / f"out{w}", workers=w, device=device,
                                options=BatchOptions(report="pdf"))
            rows = pq.read_table(Path(tmp) / f"out{w}" / "cohort.parquet").to_pylist()

            def med(col):
                vals = [r[col] for r in rows if r[col] is not None]
                return round(statistics.median(vals), 2) if vals else None

            written = [f.stat().st_size for f in (Path(tmp) / f"out{w}" / "scans").rglob("*") if f.is_file()]
            out["runs"].append({"workers": w, "threads_per_task": max(1, (os.cpu_count() or 1) // w),
                                "output_kb_per_scan": round(sum(written) / 1024 / max(summary.ok, 1)),
                                "ok": summary.ok, "failed": summary.failed,
                                "scans_per_hour": round(summary.scans_per_hour, 1),
                                "wall_s": round(summary.seconds, 1), "ray_start_s": round(summary.ray_start_s, 1),
                                "median_s": {c: med(c) for c in ("read_s", "ai_s", "quantify_s", "write_s",
                                                                   "total_s")},
                                "worker_peak_rss_mb": max((r["worker_peak_rss_mb"] or 0) for r in rows)})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--json", action="store_true", help="one JSON line (default: indented)")
    args = parser.parse_args(argv)
    figures = measure(args.scans, tuple(args.workers), args.device)
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
