"""Undo-history memory after ten full-volume fills (issue 11).

A :class:`~engine.editing.editor.LabelEditor` on a ``Z x 512 x 512`` label map (no
journal, default 512 MB budget) receives ten whole-volume fills (values 1, 2, 3,
1, ...), each one undo step whose delta holds every voxel. Printed: the history's
bytes in memory, the steps kept on disk, the process RSS now and at its peak, and
the time of undoing all ten (the labels must be back to all zeros).

Run (Z=1000 is the 1000-slice scan of the issue; a smaller Z scales linearly)::

    PYTHONPATH=$PWD nice python benchmarks/history_memory.py --slices 250 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


def _rss_mb() -> float:
    return _status_mb("VmRSS:")


def measure(slices: int, fills: int = 10) -> dict:
    from engine.editing.editor import LabelEditor

    ed = LabelEditor(np.zeros((slices, 512, 512), np.uint8))
    base = _rss_mb()
    t0 = time.perf_counter()
    for k in range(fills):
        ed.apply_labels(np.full(ed.shape, 1 + k % 3, np.uint8), f"Fill {k}")
    fill_s = time.perf_counter() - t0
    h = ed.history
    out = {"slices": slices, "label_mb": round(ed.labels.nbytes / 1024 ** 2, 1),
           "budget_mb": round(h.max_bytes / 1024 ** 2, 1), "steps": len(h),
           "history_mb_in_memory": round(h.nbytes / 1024 ** 2, 1),
           "steps_on_disk": getattr(h, "steps_on_disk", 0),
           "rss_after_mb": round(_rss_mb(), 1), "rss_before_fills_mb": round(base, 1),
           "peak_rss_mb": round(_status_mb("VmHWM:"), 1),
           "fills_s": round(fill_s, 2)}
    t0 = time.perf_counter()
    while ed.history.can_undo:
        ed.undo()
    out["undo_all_s"] = round(time.perf_counter() - t0, 2)
    out["undo_back_to_zero"] = bool(not ed.labels.any())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=250)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = measure(args.slices)
    print(json.dumps(r, indent=1) if args.json else "\n".join(f"{k:22s} {v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
