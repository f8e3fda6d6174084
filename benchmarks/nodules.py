"""What the solid nodule rule (:mod:`engine.inference.nodules`) takes from real COVID-19 consolidation.

- ``stacks``: the five radiopaedia COVID-19 stacks read by the default model (the presence
  model keeping every region), as volumes with an *assumed* spacing (they carry none): pixels
  of ``--pixel-mm`` and 250 mm of lung over the slices with lung. Prints the consolidation
  regions and voxels the shipped 3D rule sets aside.
- ``slices``: the radiologist's consolidation of the 50 ``medseg100`` slices (pixel size
  assumed) and the model's on the NY-SBU HU slices, with the rule's in-plane form (circle-
  equivalent diameter, in-plane roundness and fill, the same ring and density tests). The
  shipped rule does not run on single slices; this bounds how often COVID-19 consolidation
  looks like a nodule in cross-section.

Usage: ``python benchmarks/nodules.py [stacks|slices] [--pixel-mm 0.6 0.7 0.8] [--json]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def in_plane(labels: np.ndarray, lung: np.ndarray, hu: np.ndarray, px: float) -> list[tuple[int, bool]]:
    """``(pixels, set aside)`` of each consolidation region of one slice under the rule's in-plane form."""
    import cc3d
    from scipy import ndimage

    from engine.inference import nodules as N
    from engine.labels import CONSOLIDATION, GGO
    comp = cc3d.connected_components(labels == CONSOLIDATION, connectivity=8)
    out = []
    for i, box in enumerate(cc3d.statistics(comp)["bounding_boxes"]):
        if i == 0 or box is None:
            continue
        reg = comp == i
        n = int(reg.sum())
        ext = np.array([(b.stop - b.start) * px for b in box])
        deq = 2.0 * np.sqrt(n * px * px / np.pi)
        fill = n * px * px / (np.pi / 4.0 * float(np.prod(ext)))
        d = ndimage.distance_transform_edt(~reg, sampling=(px, px))
        ring = (d > N.RING_MM[0]) & (d <= N.RING_MM[1])
        ok = bool(deq >= N.NODULE_MM[0] and ext.max() <= N.NODULE_MM[1] and ext.min() >= N.ROUND_RATIO * ext.max()
                  and min(b.stop - b.start for b in box) >= N.MIN_PIXELS_ACROSS
                  and fill >= N.FILL_MIN and 1.0 - lung[ring].mean() <= N.RING_MAX_OUTSIDE
                  and (hu[ring] < N.AERATED_HU).mean() >= N.RING_MIN_AERATED
                  and (labels[ring] == GGO).mean() <= N.RING_MAX_GGO and np.median(hu[reg]) >= N.SOLID_MIN_HU)
        out.append((n, ok))
    return out


def slices(pixels: list[float]) -> dict:
    from PIL import Image

    from engine import io
    from engine.anatomy import lung_masks
    from engine.inference import Predictor
    from engine.inference.calibration import slice_volume
    from engine.inference.presence import KEEP_ALL
    from engine.inference.vessels import hu_image
    from engine.labels import CONSOLIDATION, GGO
    res: dict = {}
    root = DATA / "medseg100"
    items = []
    for p in sorted((root / "images").glob("*.png")):
        img = np.asarray(Image.open(p).convert("L"))
        lab = np.asarray(Image.open(root / "labels" / p.name).convert("L"))
        try:
            lung = lung_masks(slice_volume(img)).lung[0]
        except Exception:  # noqa: BLE001 - a slice without lung found: the labels are the lung
            lung = np.zeros(img.shape, bool)
        items.append((lab, lung | (lab == GGO) | (lab == CONSOLIDATION), hu_image(slice_volume(img))[0]))
    for px in pixels:
        rows = [r for lab, lung, hu in items for r in in_plane(lab, lung, hu, px)]
        res[f"medseg100 radiologist, pixel {px} mm"] = _sum(rows)
    pred = Predictor(None, device="cpu", covid_model=False, presence=KEEP_ALL)
    rows = []
    for p in sorted((DATA / "dicom" / "covid_ny_sbu_axial_slices").rglob("*.dcm")):
        v = io.load(p)
        r = pred.predict(v)
        if r.assessed:
            rows += in_plane(r.labels[0], r.lungs.lung[0], hu_image(v)[0], float(v.geometry.spacing[1]))
    res["NY-SBU model output (HU, own spacing)"] = _sum(rows)
    return res


def _sum(rows: list[tuple[int, bool]]) -> dict:
    return {"regions": len(rows), "set_aside": sum(ok for _, ok in rows), "pixels": sum(n for n, _ in rows),
            "pixels_set_aside": sum(n for n, ok in rows if ok)}


def stacks(pixels: list[float]) -> dict:
    from engine import io
    from engine.anatomy import lung_masks
    from engine.inference import Predictor
    from engine.inference.nodules import RULE
    from engine.inference.presence import KEEP_ALL
    from engine.labels import CONSOLIDATION
    from engine.types import Geometry, Volume
    pred = Predictor(None, device="cpu", covid_model=False, presence=KEEP_ALL, keep_probabilities=False)
    res: dict = {}
    for case in sorted((DATA / "radiopaedia_covid_stacks").glob("case_*")):
        v0 = io.load(case)
        with_lung = int(lung_masks(v0).lung.any(axis=(1, 2)).sum())
        for px in pixels:
            geo = Geometry(shape=v0.shape, spacing=(250.0 / with_lung, px, px), direction=v0.geometry.direction)
            r = pred.predict(Volume(v0.array, geo, is_hu=False, format=v0.format))
            gone = int(r.rules_removed.get(RULE, {}).get("consolidation", 0))
            res[f"{case.name}, pixel {px} mm"] = {
                "consolidation_voxels": int((r.labels == CONSOLIDATION).sum()) + gone, "set_aside_voxels": gone,
                "nodules": [n.to_dict() for n in r.nodules]}
            print(case.name, px, res[f"{case.name}, pixel {px} mm"], file=sys.stderr, flush=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="stacks", choices=("stacks", "slices"))
    ap.add_argument("--pixel-mm", type=float, nargs="+", default=[0.6, 0.7, 0.8])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = stacks(args.pixel_mm) if args.what == "stacks" else slices(args.pixel_mm)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
