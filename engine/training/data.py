"""Training data: labelled slice folders, label volumes exported by the app, pseudo-labelled
slices, class folders; derived lung masks; the fixed validation split."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image
from scipy import ndimage

from ..errors import DataError
from ..preprocessing.normalize import hu_to_unit
from ..preprocessing.resize import resize_image, resize_labels

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class SliceSet:
    """Slices at a common size: ``images`` uint8 (N, H, W), ``labels`` uint8 (N, H, W) or None."""

    ids: list[str]
    images: np.ndarray
    labels: Optional[np.ndarray] = None
    lungs: Optional[np.ndarray] = None
    meta: dict = field(default_factory=dict)

    def subset(self, idx: list[int]) -> "SliceSet":
        pick = np.asarray(idx, dtype=int)
        return SliceSet([self.ids[i] for i in pick], self.images[pick],
                        None if self.labels is None else self.labels[pick],
                        None if self.lungs is None else self.lungs[pick], dict(self.meta))


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"Folder {folder} does not exist.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT)
    if not files:
        raise DataError(f"No PNG/JPG images in {folder}.")
    return files


def read_grey(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"Cannot read image {path}: {exc}") from exc


def read_label(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(np.uint8)


def _fit(img: np.ndarray, lab: Optional[np.ndarray], size: Optional[int]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    if size is None or img.shape == (size, size):
        return img, lab
    out = np.clip(np.rint(resize_image(img.astype(np.float32), (size, size))), 0, 255).astype(np.uint8)
    return out, None if lab is None else resize_labels(lab, (size, size))


def pad_square(img: np.ndarray, lab: Optional[np.ndarray] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Pad a non-square slice to a square, centred, with the median of its border pixels
    (labels with 0), so that a later resize keeps its aspect ratio."""
    h, w = img.shape
    if h == w:
        return img, lab
    n = max(h, w)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    out = np.full((n, n), np.median(border), dtype=img.dtype)
    y0, x0 = (n - h) // 2, (n - w) // 2
    out[y0:y0 + h, x0:x0 + w] = img
    if lab is None:
        return out, None
    lo = np.zeros((n, n), dtype=lab.dtype)
    lo[y0:y0 + h, x0:x0 + w] = lab
    return out, lo


def load_slice_folder(root: str | Path, size: Optional[int] = None, label_dir: str = "labels",
                      keep_values: bool = False) -> SliceSet:
    """``root/images/*.png`` + ``root/<label_dir>/<same stem>.png`` (values 0..3, or 0/255 binary;
    with ``keep_values`` label values are kept as they are, e.g. 255 = ignore in teacher labels)."""
    root = Path(root)
    files = _list_images(root / "images")
    ids, imgs, labs = [], [], []
    for f in files:
        cands = [root / label_dir / (f.stem + ext) for ext in (".png", f.suffix)]
        lab_path = next((c for c in cands if c.is_file()), None)
        if lab_path is None:
            continue
        img, lab = read_grey(f), read_label(lab_path)
        if lab.shape != img.shape:
            raise DataError(f"Label {lab_path.name} is {lab.shape}, its image is {img.shape}.")
        if lab.max() > 3 and not keep_values:  # 0/255 binary pseudo masks
            lab = (lab > 127).astype(np.uint8)
        img, lab = _fit(img, lab, size)
        ids.append(f.stem)
        imgs.append(img)
        labs.append(lab)
    if not ids:
        raise DataError(f"No image in {root / 'images'} has a label in {root / label_dir}.")
    return SliceSet(ids, np.stack(imgs), np.stack(labs))


def load_pseudo_folder(root: str | Path, size: int) -> SliceSet:
    """zenodo20-style folder: ``images/*.jpg`` + ``pseudo_masks/*.png`` (0/255) -> binary labels."""
    return load_slice_folder(root, size, label_dir="pseudo_masks")


def load_class_folders(root: str | Path, size: int, classes: tuple[str, ...] = ("CT_NonCOVID", "CT_COVID")) -> SliceSet:
    """One sub-folder per class; label = index of the folder in ``classes``."""
    root = Path(root)
    ids, imgs, ys = [], [], []
    for k, name in enumerate(classes):
        for f in _list_images(root / name):
            ids.append(f"{name}/{f.name}")
            imgs.append(_fit(read_grey(f), None, size)[0])
            ys.append(k)
    return SliceSet(ids, np.stack(imgs), np.asarray(ys, dtype=np.uint8))


def stack_files(folder: str | Path) -> list[Path]:
    """Images of a slice stack in slice order: by the number in the file name (``a10007.jpeg``
    -> 10007), then by name."""
    import re

    def key(p: Path) -> tuple[int, str]:
        digits = re.sub(r"\D", "", p.stem)
        return (int(digits) if digits else -1, p.name)

    return sorted(_list_images(Path(folder)), key=key)


def load_negatives(ranges: list, size: int) -> SliceSet:
    """Slices without lung, ``[[stack folder, first, last], ...]`` (inclusive indices in
    :func:`stack_files` order), at ``size`` x ``size``; their targets are all background."""
    ids, imgs = [], []
    for entry in ranges:
        try:
            folder, first, last = entry
            first, last = int(first), int(last)
        except (TypeError, ValueError):
            raise DataError(f"A negatives entry must be [folder, first, last], not {entry!r}.") from None
        files = stack_files(folder)
        if not 0 <= first <= last < len(files):
            raise DataError(f"Negatives {first}..{last} are outside the {len(files)} slices of {folder}.")
        for f in files[first:last + 1]:
            ids.append(f"{Path(folder).name}/{f.name}")
            imgs.append(_fit(pad_square(read_grey(f))[0], None, size)[0])
    images = np.stack(imgs)
    return SliceSet(ids, images, np.zeros_like(images))


def load_label_volume(scan: str | Path, labels: str | Path, size: Optional[int] = None,
                      only_labelled: bool = True) -> SliceSet:
    """Axial slices of a NIfTI scan (HU) + the label NIfTI the app exported over it."""
    import nibabel as nib

    try:
        img = np.asanyarray(nib.load(str(scan)).dataobj).astype(np.float32)
        lab = np.asanyarray(nib.load(str(labels)).dataobj).astype(np.uint8)
    except Exception as exc:  # nibabel raises many types
        raise DataError(f"Cannot read NIfTI scan/labels: {exc}") from exc
    if img.shape != lab.shape or img.ndim != 3:
        raise DataError(f"Scan {img.shape} and labels {lab.shape} must be the same 3D grid.")
    ids, imgs, labs = [], [], []
    for z in range(img.shape[2]):
        sl = lab[:, :, z].T
        if only_labelled and not sl.any():
            continue
        u8 = np.rint(hu_to_unit(img[:, :, z].T) * 255).astype(np.uint8)
        u8, sl = _fit(u8, sl, size)
        ids.append(f"{Path(scan).name}#z{z}")
        imgs.append(u8)
        labs.append(sl)
    if not ids:
        raise DataError(f"{labels} holds no labelled slice.")
    return SliceSet(ids, np.stack(imgs), np.stack(labs))


def derive_lung_mask(img: np.ndarray, labels: Optional[np.ndarray] = None, threshold: int = 90) -> np.ndarray:
    """Lung region of an 8-bit lung-window slice: dark pixels not connected to the border,
    cleaned by morphology, hole-filled, the two largest components kept, united with the
    infection labels (which lie inside the lungs)."""
    dark = ndimage.binary_opening(img < threshold, iterations=2)
    lab, n = ndimage.label(dark)
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
    keep = np.zeros(n + 1, bool)
    if n:
        sizes = ndimage.sum(np.ones_like(lab), lab, index=np.arange(1, n + 1))
        order = np.argsort(sizes)[::-1]
        min_size = 0.002 * img.size
        kept = 0
        for i in order:
            comp = i + 1
            if comp in border or sizes[i] < min_size:
                continue
            keep[comp] = True
            kept += 1
            if kept == 2:
                break
    lung = keep[lab]
    if labels is not None:
        lung |= labels > 0
    lung = ndimage.binary_closing(lung, structure=np.ones((3, 3)), iterations=6)
    lung = ndimage.binary_fill_holes(lung)
    if labels is not None:
        lung |= labels > 0
    return lung.astype(np.uint8)


def fixed_split(ids: list[str], labels: np.ndarray, n_val: int = 10, seed: int = 0) -> tuple[list[int], list[int]]:
    """Seeded validation split stratified by the set of classes present on each slice.

    Slices are ordered by (classes present, seeded random key) and every k-th is taken, so
    each combination of findings is represented in proportion. Returns (train, val) indices.
    """
    rng = random.Random(seed)
    keys = []
    for i, lab in enumerate(labels):
        present = tuple(int((lab == c).any()) for c in (1, 2, 3))
        keys.append((present, rng.random(), i))
    keys.sort()
    step = len(ids) / n_val
    offset = rng.random() * step
    val = sorted({keys[min(int(offset + k * step), len(ids) - 1)][2] for k in range(n_val)})
    train = [i for i in range(len(ids)) if i not in val]
    return train, val


def class_split(labels: np.ndarray, frac_val: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """Seeded stratified split of a classification set (per-class shuffle, last ``frac_val``)."""
    rng = random.Random(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = [int(i) for i in np.flatnonzero(labels == c)]
        rng.shuffle(idx)
        n = int(round(len(idx) * frac_val))
        val += idx[:n]
        train += idx[n:]
    return sorted(train), sorted(val)
