"""``python -m engine batch SOURCE... --out DIR``: read a whole archive on Ray, one task per scan.

A SOURCE is a folder tree of scans, a scan, a list file (.txt/.lst, one path per line) or a
PACS query ``dicomweb+http://host/dicom-web?modality=CT&date=2020-01-01..2020-12-31``.
Each scan is read, segmented (Run AI), quantified and written to DIR/scans/<scan id>/
(labels.nii.gz, findings.json, report); DIR/cohort.csv and DIR/cohort.parquet hold one row
per scan (ids safe to share), DIR/failures.csv the reason of each failure. Rerunning on the
same DIR resumes (finished scans are skipped; --retry-failed runs the failed ones again).

Without --address a local Ray starts on this machine with --workers task slots; with
--address it joins a running cluster (every node needs LungLens installed).
"""

from __future__ import annotations

import argparse
import sys
import time

NAME = "batch"


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="read a whole archive on Ray: cohort table of every scan",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="folder tree, scan, list file or dicomweb+ query")
    p.add_argument("--out", required=True, help="batch folder (created; rerun to resume)")
    p.add_argument("--address", help="join this Ray cluster (ray://head:10001 or head:6379)")
    p.add_argument("--workers", type=int, default=None, help="scans in flight at once (default: local CPUs, or "
                                                            "the cluster's CPUs / --cpus-per-task)")
    p.add_argument("--cpus-per-task", type=int, default=None, help="CPUs (torch threads) per scan")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run the models")
    p.add_argument("--task-timeout", type=float, default=None, metavar="S",
                   help="stop a scan after S seconds and record it as failed")
    p.add_argument("--memory-per-task", type=float, default=None, metavar="GB",
                   help="memory Ray reserves per scan (a 99-slice CT needs about 1.1 GB)")
    p.add_argument("--retry-failed", action="store_true", help="run again the scans that failed before")
    p.add_argument("--model", default=None, help="segmentation model (default: the registry default)")
    p.add_argument("--findings-model", default=None, help="finding classifier ('none' to skip)")
    p.add_argument("--covid-model", default=None, help="COVID classifier ('none' to skip)")
    p.add_argument("--batch-size", type=int, default=None, help="slices per forward pass")
    p.add_argument("--report", default="pdf", choices=("pdf", "json", "none"), help="per-scan report format")
    p.add_argument("--keep-retrieved", action="store_true", help="keep PACS series in DIR/pacs-cache after "
                                                                 "reading them (default: deleted)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def _fmt_s(s) -> str:
    if s is None:
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class _Line:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        width = 24
        filled = int(round(width * p.done / max(p.total, 1)))
        sys.stderr.write(f"\rbatch [{'#' * filled}{'-' * (width - filled)}] {p.done}/{p.total} done, "
                         f"{p.failed} failed, {p.rate_per_hour:.0f} scans/h, ETA {_fmt_s(p.eta_s)}   ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def run(args: argparse.Namespace) -> int:
    from ..batch import BatchOptions, run_batch

    opts = BatchOptions(model=args.model, findings_model=args.findings_model, covid_model=args.covid_model,
                        batch_size=args.batch_size, report=args.report, keep_retrieved=args.keep_retrieved)
    line = _Line(not args.quiet and sys.stderr.isatty())
    t = time.perf_counter()
    try:
        summary = run_batch(args.sources, args.out, workers=args.workers, address=args.address, device=args.device,
                            retry_failed=args.retry_failed, options=opts, cpus_per_task=args.cpus_per_task,
                            task_timeout=args.task_timeout, memory_per_task=args.memory_per_task, progress=line)
    finally:
        line.close()
    tables = ", ".join(str(p) for p in summary.tables.values() if p is not None)
    print(f"{summary.scans} scans: {summary.processed} processed now, {summary.skipped} already done; "
          f"{summary.ok} ok, " + (f"{summary.not_assessed} not assessed by the AI (see failures.csv), "
                                  if summary.not_assessed else "")
          + f"{summary.failed} failed; {summary.workers} workers on {summary.device}; "
          f"{summary.scans_per_hour:.0f} scans/h (Ray start {summary.ray_start_s:.1f} s, total "
          f"{time.perf_counter() - t:.1f} s)")
    print(f"tables: {tables}")
    return 1 if summary.failed else 0
