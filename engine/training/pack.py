"""Build a compact copy of the training data (for shipping to a training machine).

The copy keeps the folder layouts the loaders read (``images/`` + ``labels/``,
``images/`` + ``pseudo_masks/``, class folders, slice stacks with their file names) and only
shrinks what can be shrunk, so ``python -m engine train`` runs on it unchanged with
``--data-root``. Write it into a git-ignored folder: the data must never be committed.

``make_pack``: the data of the per-system configs (medseg100, zenodo20 at 256 px with its
pseudo masks, UCSD COVID-CT). ``make_recipe_pack``: the data of the cross-validated recipe
(medseg100, zenodo20 images as they are, radiopaedia stacks at 512 px), about 50 MB::

    python -m engine.training.pack --recipe ../shared/data work_data/pack
"""

from __future__ import annotations

import shutil
from pathlib import Path

import argparse
import sys

from PIL import Image

from .data import IMAGE_EXT


def _shrink_folder(src: Path, dst: Path, size: int, mask: bool = False, quality: int = 80) -> int:
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(src.iterdir()):
        if f.suffix.lower() not in IMAGE_EXT:
            continue
        with Image.open(f) as im:
            im = im.convert("L")
            if im.size != (size, size):
                im = im.resize((size, size), Image.NEAREST if mask else Image.BILINEAR)
            if mask:
                im.point(lambda v: 255 if v > 127 else 0).convert("1").save(dst / (f.stem + ".png"), optimize=True)
            else:
                im.save(dst / (f.stem + ".jpg"), quality=quality)
        n += 1
    return n


def make_pack(shared_data: str | Path, out: str | Path, pseudo_size: int = 256, class_size: int = 224) -> dict[str, int]:
    """Copy medseg100, shrink zenodo20 (to ``pseudo_size``) and ucsd_covid_ct (to ``class_size``)."""
    src, dst = Path(shared_data), Path(out)
    counts = {}
    for sub in ("images", "labels"):
        shutil.copytree(src / "medseg100" / sub, dst / "medseg100" / sub, dirs_exist_ok=True)
    counts["medseg100"] = len(list((dst / "medseg100" / "images").iterdir()))
    z = src / "zenodo20_unlabeled"
    counts["zenodo20"] = _shrink_folder(z / "images", dst / "zenodo20_unlabeled" / "images", pseudo_size)
    _shrink_folder(z / "pseudo_masks", dst / "zenodo20_unlabeled" / "pseudo_masks", pseudo_size, mask=True)
    for cls in ("CT_COVID", "CT_NonCOVID"):
        counts[cls] = _shrink_folder(src / "ucsd_covid_ct" / cls, dst / "ucsd_covid_ct" / cls, class_size)
    return counts


def make_recipe_pack(shared_data: str | Path, out: str | Path, stack_size: int = 512, quality: int = 75) -> dict[str, int]:
    """Copy medseg100 and the zenodo20 images unchanged; radiopaedia stacks resized so their
    longer side is ``stack_size`` (the recipe resizes them to its 512 canvas anyway), JPEG
    ``quality``, file names kept (the recipe names stack slices by their order)."""
    src, dst = Path(shared_data), Path(out)
    counts = {}
    for sub in ("images", "labels"):
        shutil.copytree(src / "medseg100" / sub, dst / "medseg100" / sub, dirs_exist_ok=True)
    counts["medseg100"] = len(list((dst / "medseg100" / "images").iterdir()))
    shutil.copytree(src / "zenodo20_unlabeled" / "images", dst / "zenodo20_unlabeled" / "images", dirs_exist_ok=True)
    counts["zenodo20"] = len(list((dst / "zenodo20_unlabeled" / "images").iterdir()))
    stacks = src / "radiopaedia_covid_stacks"
    n = 0
    for case in sorted(p for p in stacks.iterdir() if p.is_dir()):
        (dst / stacks.name / case.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(case.iterdir()):
            if f.suffix.lower() not in IMAGE_EXT:
                continue
            with Image.open(f) as im:
                im = im.convert("L")
                scale = stack_size / max(im.size)
                if scale < 1:
                    im = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.BILINEAR)
                im.save(dst / stacks.name / case.name / f.name, "JPEG", quality=quality)
            n += 1
    counts["radiopaedia_stacks"] = n
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shared_data", help="the shared data folder (../shared/data)")
    ap.add_argument("out", help="where to write the pack (a git-ignored folder, e.g. work_data/pack)")
    ap.add_argument("--recipe", action="store_true", help="the data of the cross-validated recipe")
    args = ap.parse_args(argv)
    counts = (make_recipe_pack if args.recipe else make_pack)(args.shared_data, args.out)
    print(counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
