"""Lung Dice of the shipped lung finder against reference lung masks; prints a table (or JSON).

References (built here, independently of :func:`engine.anatomy.lung_masks`):

- ``medseg100`` slices (8-bit lung window): pixels under 144 (about -500 HU in the
  [-1350, 150] window) not connected to the image border, opened, the two largest
  components (> 2000 px) united with the radiologist's GGO and consolidation, closed
  (3 px) and hole-filled per component, minus effusion. Reviewed by eye on overlays: they
  follow the pleura and include dense consolidation. The same slices are also read in a
  soft-tissue window (W400/L40, recomputed from the lung-window values): the reference
  does not change.
- the phantom (HU, exact ground truth: vessels filled, effusion and main airways out).

Methods: ``rules`` (the intensity / HU rules alone), ``reading`` (the lungs a Run AI
reading ends with: rules plus the kept GGO and consolidation of the default model filled
back), ``lung_unet`` (the lung model alone), ``rules+lung_unet``; in the soft-tissue window
also ``bound: reference at -160 HU``: the reference's own procedure with the threshold moved
to -160 HU (the W400/L40 window clips everything darker to black, so lung at -500..-160 HU
cannot be told from air there) and without the radiologist's labels (the reading does not
have them): what an intensity method can reach against this reference in that window.

Usage: ``python benchmarks/lungs.py [--json] [--slices N] [--split all|val|train] [--no-phantom]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "medseg100"


#: lung-window grey value of -160 HU: everything darker is clipped to black in a W400/L40 window
SOFT_FLOOR = int((-160 + 1350) / 1500 * 255)


def reference(img: np.ndarray, lab: np.ndarray, threshold: int = 144, with_labels: bool = True) -> np.ndarray:
    """The reference lung mask (module notes); ``threshold`` and ``with_labels`` build the soft-window bound."""
    air = img < threshold
    comp, _ = ndimage.label(air)
    border = np.unique(np.r_[comp[0], comp[-1], comp[:, 0], comp[:, -1]])
    inside = ndimage.binary_opening(air & ~np.isin(comp, border))
    comp, _ = ndimage.label(inside)
    sizes = np.bincount(comp.ravel())[1:]
    keep = [i + 1 for i in np.argsort(sizes)[::-1][:2] if sizes[i] > 2000]
    m = np.isin(comp, keep) | (((lab == 1) | (lab == 2)) if with_labels else False)
    m = ndimage.binary_closing(m, iterations=3)
    out = np.zeros_like(m)
    comp, n = ndimage.label(m)
    for i in range(1, n + 1):
        out |= ndimage.binary_fill_holes(comp == i)
    return out & ~(lab == 3)


def soft_window(img: np.ndarray) -> np.ndarray:
    hu = img.astype(np.float32) / 255 * 1500 - 1350
    return (np.clip((hu + 160) / 400, 0, 1) * 255).astype(np.uint8)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def methods(volume, reading, lung_model):
    from engine.anatomy import lung_masks
    from engine.errors import DataError
    out = {}
    try:
        rules = lung_masks(volume).lung
    except DataError:
        rules = np.zeros(volume.shape, bool)
    out["rules"] = rules
    pred = reading.predict(volume)
    out["reading"] = pred.lungs.lung if pred.lungs is not None else np.zeros(volume.shape, bool)
    lm = lung_model.predict(volume).lung_mask
    out["lung_unet"] = lm
    try:
        out["rules+lung_unet"] = lung_masks(volume, model_mask=lm).lung
    except DataError:
        out["rules+lung_unet"] = lm
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--slices", type=int, default=0, help="only the first N slices (0: all)")
    ap.add_argument("--split", default="all", choices=("all", "val", "train"),
                    help="only the medseg slices of lung_unet's validation (or training) split: lung_unet was "
                         "trained on the 40 training slices, so 'all' flatters it")
    ap.add_argument("--no-phantom", action="store_true", help="skip the HU phantom")
    args = ap.parse_args()
    from PIL import Image
    from engine.inference import Predictor
    from engine.inference.calibration import slice_volume
    from engine.phantom import chest_ct
    reading = Predictor(device="cpu", covid_model=False, keep_probabilities=False)  # what Run AI ends with
    lung_model = Predictor(device="cpu", covid_model=False, lung_model="lung_unet", lung_gate=False,
                           keep_probabilities=False)
    lung_model.lung_model_always = True
    scores: dict[str, dict[str, list]] = {}
    files = sorted((DATA / "images").glob("*.png"))
    if args.split != "all":
        from engine.models import registry
        names = set(registry.load("lung_unet").card.split[args.split])
        files = [f for f in files if f.stem in names]
    if args.slices:
        files = files[:args.slices]
    for f in files:
        img = np.asarray(Image.open(f).convert("L"))
        lab = np.asarray(Image.open(DATA / "labels" / f.name))
        ref = reference(img, lab)
        for window, x in (("lung window", img), ("soft-tissue window", soft_window(img))):
            for name, m in methods(slice_volume(x), reading, lung_model).items():
                scores.setdefault(window, {}).setdefault(name, []).append(dice(m[0], ref))
        # what a soft-tissue window still shows: the reference's own procedure at -160 HU, without the labels
        scores["soft-tissue window"].setdefault("bound: reference at -160 HU", []).append(
            dice(reference(img, lab, SOFT_FLOOR, with_labels=False), ref))
    if not args.no_phantom:
        ph = chest_ct(shape=(96, 256, 256), spacing=(3.0, 1.4, 1.4), seed=11)
        for name, m in methods(ph.volume, reading, lung_model).items():
            scores.setdefault("HU phantom (96x256x256)", {}).setdefault(name, []).append(dice(m, ph.lung_mask))
    table = {w: {n: {"mean": float(np.mean(v)), "median": float(np.median(v)), "min": float(np.min(v)),
                     "n": len(v)} for n, v in per.items()} for w, per in scores.items()}
    if args.json:
        print(json.dumps(table, indent=1))
    else:
        print(f"{'input':<26} {'method':<28} {'mean':>6} {'median':>7} {'min':>6} {'n':>4}")
        for w, per in table.items():
            for n, s in per.items():
                print(f"{w:<26} {n:<28} {s['mean']:6.3f} {s['median']:7.3f} {s['min']:6.3f} {s['n']:4d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
