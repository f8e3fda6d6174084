"""Build a compact copy of the training data (for shipping to a training machine).

The copy keeps the folder layouts the loaders read (``images/`` + ``labels/``,
``images/`` + ``pseudo_masks/``, class folders) and only shrinks the unlabelled and
classification images, so ``python -m engine train`` runs on it unchanged. Write it into a
git-ignored folder: the data must never be committed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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
