"""What the vessel rule would remove from the radiologist's labels of ``medseg100``.

The labelled data here are single 8-bit lung-window slices, so only the rule's in-plane
form (``remove_vessels(..., min_slices=1)``: a region that is a bright *line* of vessel
calibre) can be measured on them; the shipped rule runs on volumes only (see
:mod:`engine.inference.vessels`). The slices carry no spacing: each pixel size given is
assumed (the MedSeg slices come from CT volumes with pixels of about 0.6-0.8 mm).

Prints, per assumed pixel size, the labelled GGO and consolidation pixels (and regions)
the rule removes, and the slices it touches.

Usage: ``python benchmarks/vessels.py [--json] [--pixel-mm 0.6 0.7 0.8]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "medseg100"


def measure(pixel_mm: float) -> dict:
    """Labelled pixels and regions the in-plane vessel rule removes at ``pixel_mm``."""
    from engine.inference.vessels import remove_vessels
    from engine.labels import CONSOLIDATION, GGO
    from engine.types import Geometry, Volume

    total = {"ggo": 0, "consolidation": 0}
    removed = {"ggo": 0, "consolidation": 0}
    regions = {"ggo": [0, 0], "consolidation": [0, 0]}  # removed, all
    touched: list[str] = []
    for f in sorted((DATA / "images").glob("*.png")):
        img = np.asarray(Image.open(f).convert("L"))[None]
        lab = np.asarray(Image.open(DATA / "labels" / f.name))[None].astype(np.uint8)
        vol = Volume(array=np.ascontiguousarray(img), is_hu=False,
                     geometry=Geometry(shape=img.shape, spacing=(5.0, pixel_mm, pixel_mm)))
        out, rem = remove_vessels(vol, lab, min_slices=1)
        for value, key in ((GGO, "ggo"), (CONSOLIDATION, "consolidation")):
            total[key] += int((lab == value).sum())
            removed[key] += rem[key]
            _, n_all = ndimage.label(lab[0] == value, structure=np.ones((3, 3)))
            _, n_kept = ndimage.label(out[0] == value, structure=np.ones((3, 3)))
            regions[key][0] += n_all - n_kept
            regions[key][1] += n_all
        if any(rem.values()):
            touched.append(f.stem)
    return {"pixel_mm": pixel_mm, "slices": len(list((DATA / "images").glob("*.png"))),
            "removed_percent": {k: round(100.0 * removed[k] / max(total[k], 1), 2) for k in total},
            "removed_pixels": removed, "labelled_pixels": total,
            "removed_regions": {k: v[0] for k, v in regions.items()},
            "labelled_regions": {k: v[1] for k, v in regions.items()}, "slices_touched": touched}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--pixel-mm", type=float, nargs="+", default=[0.6, 0.7, 0.8])
    args = ap.parse_args(argv)
    if not (DATA / "images").is_dir():
        print(f"No labelled slices at {DATA}", file=sys.stderr)
        return 1
    rows = [measure(p) for p in args.pixel_mm]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| pixel (assumed) | GGO removed | consolidation removed | slices touched |")
    print("|---|---|---|---|")
    for r in rows:
        g, c = r["removed_percent"]["ggo"], r["removed_percent"]["consolidation"]
        print(f"| {r['pixel_mm']:g} mm | {g:.2f} % ({r['removed_regions']['ggo']} of "
              f"{r['labelled_regions']['ggo']} regions) | {c:.2f} % ({r['removed_regions']['consolidation']} of "
              f"{r['labelled_regions']['consolidation']} regions) | {len(r['slices_touched'])} of {r['slices']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
