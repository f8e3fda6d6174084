"""Time the numbers on a 512x512x300 scan: lungs, full quantification, incremental update.

Usage: ``python benchmarks/quantification.py [--json] [--small]``

The scan is the built-in phantom (300 x 512 x 512, 0.7 x 0.7 x 1 mm). The brush stroke
is a 10 mm wide round brush dragged 40 mm across one axial slice (the app's stroke), and
the update recounts only the stroke's bounding box.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.phantom import chest_ct  # noqa: E402
from engine.quantification import IncrementalQuantifier, LungMasks, lung_masks, quantify  # noqa: E402


def _time(fn, repeat: int = 1):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, min(times), statistics.median(times)


def brush_stroke(labels: np.ndarray, spacing, k: int, y: int, x0: int, value: int, diameter_mm: float = 10.0,
                 length_mm: float = 40.0) -> tuple[slice, slice, slice]:
    """Paint a round brush dragged along x on slice k; return the stroke's bounding box."""
    _, sy, sx = spacing
    r_y, r_x = diameter_mm / 2 / sy, diameter_mm / 2 / sx
    x1 = x0 + int(round(length_mm / sx))
    box = (slice(k, k + 1), slice(int(y - r_y), int(y + r_y) + 1), slice(int(x0 - r_x), int(x1 + r_x) + 1))
    yy = np.arange(box[1].start, box[1].stop)[:, None]
    xx = np.arange(box[2].start, box[2].stop)[None, :]
    xc = np.clip(xx, x0, x1)
    m = ((yy - y) / r_y) ** 2 + ((xx - xc) / r_x) ** 2 <= 1
    labels[box][0][m] = value
    return box


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--small", action="store_true", help="64x128x128 instead of 300x512x512")
    args = ap.parse_args()
    shape, spacing = ((64, 128, 128), (4.0, 2.8, 2.8)) if args.small else ((300, 512, 512), (1.0, 0.7, 0.7))
    ph, t_ph, _ = _time(lambda: chest_ct(shape, spacing))
    vol, g = ph.volume, ph.volume.geometry
    found, t_lungs, _ = _time(lambda: lung_masks(vol))
    truth, t_zones, _ = _time(lambda: LungMasks.from_masks(ph.lung_left, ph.lung_right, g), repeat=2)
    q, t_quant, t_quant_med = _time(lambda: quantify(ph.labels, g, truth, vol.array), repeat=3)
    # a severe case: a third of every lung slice labelled (GGO / consolidation stripes)
    dense = ph.labels.copy()
    stripes = (np.arange(shape[2]) % 3 == 0)[None, None, :]
    dense[ph.lung_mask & stripes] = 1
    dense[ph.lung_mask & (np.arange(shape[1]) % 7 == 0)[None, :, None]] = 2
    qd, t_dense, _ = _time(lambda: quantify(dense, g, truth, vol.array), repeat=2)
    del dense
    labels = ph.labels.copy()
    iq, t_init, _ = _time(lambda: IncrementalQuantifier(labels, g, truth, vol.array))
    rng = np.random.default_rng(0)
    upd = []
    for i in range(20):
        k = int(rng.integers(shape[0] // 3, 2 * shape[0] // 3))
        y = int(rng.integers(shape[1] // 3, 2 * shape[1] // 3))
        x0 = int(rng.integers(shape[2] // 6, shape[2] // 2))
        box = brush_stroke(labels, spacing, k, y, x0, 1 + i % 3)
        t = time.perf_counter()
        res = iq.update_region(box)
        _ = res.findings["total"].percent_of_lungs
        upd.append(time.perf_counter() - t)
    full = quantify(labels, g, truth, vol.array)
    assert full.to_dict() == iq.result().to_dict(), "incremental numbers differ from a full recount"
    dice = {s: 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))
            for s, a, b in (("left", found.left, ph.lung_left), ("right", found.right, ph.lung_right))}
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "shape": list(shape), "spacing_mm": list(spacing),
        "phantom_s": round(t_ph, 3),
        "lung_masks_s": round(t_lungs, 3),
        "lung_masks_dice_vs_truth": {k: round(v, 4) for k, v in dice.items()},
        "zones_from_masks_s": round(t_zones, 3),
        "quantify_all_numbers_s": {"best": round(t_quant, 3), "median": round(t_quant_med, 3)},
        "quantify_dense_s": {"best": round(t_dense, 3),
                             "involvement_percent": round(qd.findings["total"].percent_of_lungs, 1)},
        "incremental_init_s": round(t_init, 3),
        "brush_stroke_update_ms": {"median": round(1000 * statistics.median(upd), 2),
                                   "max": round(1000 * max(upd), 2), "strokes": len(upd),
                                   "stroke": "10 mm round brush, 40 mm drag, one slice"},
        "incremental_equals_full_recount": True,
        "ggo_ml": round(q.findings["ggo"].ml, 2), "expected_ggo_ml": round(ph.expected_ml["ggo"], 2),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
