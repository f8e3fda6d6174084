"""PNG/JPG slices and numbered stacks (Pillow), and label maps as a folder of PNG slices.

Scans
-----
A single image is a one-slice volume; a folder of images is a stack ordered by the
*number* in each file name (``a10002.jpeg`` before ``a10010.jpeg``; ``2.jpeg``
before ``10.jpeg``), as the Radiopaedia stacks need. Images are converted to grey
``uint8`` (``is_hu=False``). The files carry no spacing, so the geometry is an
identity grid with 1 mm placeholders and ``spacing_known=False``: image rows run
anterior to posterior and columns patient right to left (radiological display), and
the stack order is kept as the slice order.

Labels
------
:func:`write_png_labels` writes ``slice_0000.png``, ``slice_0001.png`` ... (8-bit
grey, values 0..3, one per canonical ``z`` slice) plus ``labels.json`` (label table
and geometry, for information). PNG cannot carry geometry: :func:`engine.io.load_labels`
reuses the reference scan's geometry and checks that the shape matches.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..errors import CorruptFileError, UnsupportedFormatError
from ..labels import LabelTable
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Geometry, Volume
from ._common import guard_size, wrap_errors

__all__ = ["IMAGE_SUFFIXES", "image_files", "read_image_stack", "write_png_labels",
           "read_png_labels", "natural_key"]

IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp", ".tif": "tiff",
                  ".tiff": "tiff"}
_NUMBER = re.compile(r"(\d+)")


def natural_key(path: Path) -> tuple:
    """Sort key: the last number in the file stem, then the name (``a10002`` < ``a10010``)."""
    numbers = _NUMBER.findall(path.stem)
    return (int(numbers[-1]) if numbers else -1, path.name)


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in stack order (hidden files ignored)."""
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=natural_key)


def _grey(img: Image.Image, name: str, warnings: list[str]) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            lo, hi = float(arr.min()), float(arr.max())
            if not warnings:
                warnings.append(f"{name} has more than 8 bits per pixel; rescaled {lo:g}..{hi:g} to 0..255.")
            arr = (arr.astype(np.float64) - lo) * (255.0 / max(hi - lo, 1e-9))
            return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return arr.astype(np.uint8)
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise CorruptFileError(f"{path.name}: the header claims an absurdly large image; the file is damaged "
                               "or not a CT slice.") from exc
    w, h = img.size
    guard_size((h, w), 4, path)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    return img


def _decode(p: Path, size: tuple[int, int], first: Path, source: Path, warnings: list[str]) -> np.ndarray:
    with wrap_errors(p, "image"):
        img = _open(p)
        try:
            if img.size != size:
                raise UnsupportedFormatError(
                    f"{p.name} is {img.size[0]}x{img.size[1]} but {first.name} is {size[0]}x{size[1]}: the "
                    f"images of a stack must all have the same size. Remove the odd image from {source}.")
            return _grey(img, p.name, warnings)
        finally:
            img.close()


def read_image_stack(paths: list[Path], source: Path, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelLike] = None) -> Volume:
    """Read one image or an ordered list of same-size images as a uint8 volume.

    Stacks are decoded by a few threads (Pillow releases the GIL while decoding);
    slices are placed in order and the cancel token is checked for each.
    """
    if not paths:
        raise UnsupportedFormatError(f"{source} holds no PNG/JPG image.")
    report = as_progress(progress)
    warnings: list[str] = []
    with wrap_errors(paths[0], "image"):
        with _open(paths[0]) as first:
            w, h = first.size
        guard_size((len(paths), h, w), 1, source)
        array = np.empty((len(paths), h, w), dtype=np.uint8)
    workers = min(4, os.cpu_count() or 1) if len(paths) > 8 else 1
    if workers == 1:
        for k, p in enumerate(paths):
            check_cancel(cancel)
            array[k] = _decode(p, (w, h), paths[0], source, warnings)
            report((k + 1) / len(paths), f"Reading {p.name}")
    else:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="lunglens-io-decode")
        try:
            window = 2 * workers
            futures = deque(pool.submit(_decode, p, (w, h), paths[0], source, warnings)
                            for p in paths[:window])
            for k, p in enumerate(paths):
                check_cancel(cancel)
                array[k] = futures.popleft().result()
                if k + window < len(paths):
                    futures.append(pool.submit(_decode, paths[k + window], (w, h), paths[0], source, warnings))
                report((k + 1) / len(paths), f"Reading {p.name}")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    fmt = {"png": "png", "jpeg": "jpeg"}.get(IMAGE_SUFFIXES.get(paths[0].suffix.lower(), ""), "image")
    geometry = Geometry(shape=array.shape, spacing_known=False)
    meta = {"modality": "", "image_files": [str(p) for p in paths],
            "source_orientation": {"axes": [0, 1, 2], "flips": [False, False, False],
                                   "source_geometry": geometry.to_dict()}}
    if len(paths) > 1:
        warnings.append("Image stack: slice spacing and pixel size are unknown, so volumes are not in mL.")
    return Volume(array=array, geometry=geometry, is_hu=False, source=str(source), format=fmt, meta=meta,
                  warnings=warnings)


def write_png_labels(labels: np.ndarray, geometry: Geometry, folder: Path, table: LabelTable) -> None:
    """Write ``slice_NNNN.png`` files and ``labels.json`` into the (new, empty) ``folder``."""
    digits = max(4, len(str(labels.shape[0] - 1)))
    for k in range(labels.shape[0]):
        Image.fromarray(np.ascontiguousarray(labels[k], dtype=np.uint8), mode="L").save(
            folder / f"slice_{k:0{digits}d}.png", compress_level=1)
    info = {"format": "lunglens-png-labels", "geometry": geometry.to_dict(),
            "labels": [{"value": lab.value, "key": lab.key, "name": lab.name, "color": list(lab.color)}
                       for lab in table],
            "note": "PNG cannot carry geometry; it is given here for information and checked on load."}
    (folder / "labels.json").write_text(json.dumps(info, indent=1))


def read_png_labels(folder: Path) -> tuple[np.ndarray, Optional[Geometry]]:
    """Read a folder of label PNG slices (values kept as stored) and the geometry of its labels.json."""
    paths = image_files(folder)
    if not paths:
        raise UnsupportedFormatError(f"{folder} holds no PNG label slices.")
    arrays = []
    for p in paths:
        with wrap_errors(p, "label image"):
            with Image.open(p) as img:
                guard_size(img.size[::-1], 1, p)
                if img.mode not in ("L", "P", "I", "I;16", "1"):
                    img = img.convert("L")
                arrays.append(np.asarray(img))
    if len({a.shape for a in arrays}) != 1:
        raise CorruptFileError(f"The label slices in {folder} do not all have the same size.")
    labels = np.stack(arrays)
    geometry = None
    sidecar = folder / "labels.json"
    if sidecar.is_file():
        try:
            geometry = Geometry.from_dict(json.loads(sidecar.read_text())["geometry"])
        except Exception:  # noqa: BLE001 - informational sidecar
            geometry = None
    return labels, geometry
