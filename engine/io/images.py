"""PNG/JPG slices and numbered stacks (Pillow), and label maps as a folder of PNG slices.

Scans
-----
A single image is a one-slice volume; a folder of images is a stack ordered by the
*number* in each file name (``a10002.jpeg`` before ``a10010.jpeg``; ``2.jpeg``
before ``10.jpeg``), as the Radiopaedia stacks need. Images are converted to grey
``uint8`` (``is_hu=False``). The files carry no spacing, so the geometry has 1 mm
placeholders and ``spacing_known=False``: image rows run anterior to posterior and
columns patient right to left (radiological display).

Stack order: exported axial slices usually run from head to feet, so the *first*
file (lowest number) is taken as the most **superior** slice. The stack is described
by a source geometry whose slice axis points inferior (direction ``(0, 0, -1)``,
file 1 at world ``z = 0``, file ``N`` at ``z = -(N - 1)``) and canonicalised like
every other reader (:mod:`.orientation`): in the canonical array file 1 is the top
slice ``z = N - 1`` and file ``N`` is ``z = 0``. ``meta["image_files"]`` keeps the
file (source) order, so ``image_files[i]`` is canonical slice ``N - 1 - i``.
A stack exported from feet to head (file 1 the lowest slice; some Radiopaedia
cases are) needs the opposite: pass ``first_slice="inferior"`` to
:func:`read_image_stack` or :func:`engine.io.load` (the app: File > Reopen stack feet
first; the command line: ``--stack-order feet-first``). The files carry no position, so
this cannot be detected from the names; the stack's notice says which end was assumed, since
the upper and lower lung zones depend on it.

Labels
------
:func:`write_png_labels` writes ``slice_0000.png``, ``slice_0001.png`` ... (8-bit
grey, values 0..3, one per canonical ``z`` slice) plus ``labels.json`` (label table,
geometry for information, and ``z_order``). By default ``slice_0000.png`` is
canonical ``z = 0`` (``"z_order": "ascending"``). For an image-stack scan
:func:`engine.io.save_labels` writes them in the stack's file order instead
(``"descending"`` for a head-to-feet stack), so label file ``N`` belongs to source
file ``N``; :func:`read_png_labels` restores the canonical order from ``z_order``
(see :func:`stack_slice_order`). PNG cannot carry geometry:
:func:`engine.io.load_labels` reuses the reference scan's geometry and checks that
the shape matches.
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
from PIL import Image, ImageOps

from ..errors import CorruptFileError, UnsupportedFormatError
from ..labels import LabelTable
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Geometry, Volume
from ._common import guard_size, wrap_errors
from .orientation import SourceOrientation, plan_orientation
from .stack_checks import IMAGE_SUFFIXES, NUMBER, WIDE_MODES, natural_key, stack_members, stack_range

__all__ = ["IMAGE_SUFFIXES", "image_files", "numbered_stack", "read_image_stack", "write_png_labels",
           "read_png_labels", "natural_key", "stack_slice_order", "STACK_FIRST_SLICE"]

#: Where the first file of a numbered stack lies: "superior" (head to feet, the usual
#: order of exported axial slices) or "inferior" (feet to head).
STACK_FIRST_SLICE = "superior"
_Z_ORDERS = ("ascending", "descending")


def numbering_gap_note(paths: list[Path]) -> Optional[str]:
    """A notice when the stack's file numbers skip some (``None`` when they do not, or carry no numbers).

    A stack holds no positions: its slices are its files in number order. Files missing from the
    numbering (a copy that stopped, slices left out of an export) put the slices either side next
    to each other, so the anatomy jumps there and volumes are short, with nothing on the image to
    show it. The usual step is the commonest difference between consecutive numbers.
    """
    numbers = [natural_key(p)[0] for p in paths]
    if len(numbers) < 3 or min(numbers) < 0:
        return None
    steps = np.diff(np.asarray(numbers, dtype=np.int64))
    values, counts = np.unique(steps, return_counts=True)
    step = int(values[np.argmax(counts)])
    if step <= 0:
        return None
    jumps = [(i, int(d)) for i, d in enumerate(steps.tolist()) if d > step]
    if not jumps:
        return None
    missing = sum(d // step - 1 for _, d in jumps)
    where = "; ".join(f"between {paths[i].name} and {paths[i + 1].name}" for i, _ in jumps[:3]) \
        + (" ..." if len(jumps) > 3 else "")
    return (f"About {missing} file(s) are missing from the stack's numbering ({where}): the slices either side "
            "are shown next to each other, so the anatomy jumps there and volumes are short. Copy the stack again "
            "if files were lost.")


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in stack order (hidden files ignored)."""
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=natural_key)


def numbered_stack(path: Path) -> list[Path]:
    """The numbered stack one image file belongs to, in stack order (as one DICOM file opens its series).

    ``slice_0042.png`` brings every ``slice_<number>.png`` of its folder (same prefix,
    suffix and extension, any number of digits); a name without a number is a stack of one.
    """
    numbers = list(NUMBER.finditer(path.stem))
    try:
        siblings = [p for p in path.parent.iterdir() if not p.name.startswith(".") and p.is_file()]
    except OSError:
        return [path]
    best = [path]
    for at in reversed(numbers):  # the number that counts the slices: the one that finds most files (the last
        # usually; not in names that end in a constant number, such as lung_001_512.png)
        pattern = re.compile(re.escape(path.stem[:at.start()]) + r"\d+" + re.escape(path.stem[at.end():]) +
                             re.escape(path.suffix) + "$", re.IGNORECASE)
        files = [p for p in siblings if pattern.match(p.name)]
        if path in files and len(files) > len(best):
            best = files
    return sorted(best, key=natural_key)


def _grey(img: Image.Image, name: str, warnings: list[str], scale: Optional[tuple[float, float]] = None) -> np.ndarray:
    """Grey ``uint8`` of one image; more than 8 bits per pixel are mapped to 0..255 by ``scale`` (the whole
    stack's range, :func:`.stack_checks.stack_range`), or by the image's own range without one."""
    if img.mode in WIDE_MODES:
        arr = np.asarray(img)
        lo, hi = scale if scale is not None else (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < 0 or hi > 255:
            if scale is None and not warnings:
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


#: the notice of files that carry an EXIF orientation (as photos do): applied, as every image viewer shows them
EXIF_NOTE = ("The images carry an EXIF orientation tag (as photos do): they are shown turned as image viewers show "
             "them. Check the patient's sides (R/L) against a known landmark.")


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned by its EXIF orientation tag (JPEG/TIFF), or ``img`` itself when it has none."""
    try:
        turn = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF: the pixels as stored
        return img
    return ImageOps.exif_transpose(img) if turn not in (None, 1) else img


def _decode(p: Path, size: tuple[int, int], first: Path, source: Path, warnings: list[str],
            scale: Optional[tuple[float, float]] = None, page: int = 0) -> np.ndarray:
    with wrap_errors(p, "image"):
        img = _open(p)
        try:
            if page:
                img.seek(page)
            else:
                turned = _upright(img)
                if turned is not img:
                    if EXIF_NOTE not in warnings:
                        warnings.append(EXIF_NOTE)
                    img.close()
                    img = turned
            if img.size != size:
                raise UnsupportedFormatError(
                    f"{p.name} is {img.size[0]}x{img.size[1]} but {first.name} is {size[0]}x{size[1]}: the "
                    f"images of a stack must all have the same size. Remove the odd image from {source}.")
            pages = getattr(img, "n_frames", 1)
            if pages > 1 and p != first and not page:
                warnings.append(f"{p.name} holds {pages} pages; only its first is a slice of this stack.")
            return _grey(img, p.name, warnings, scale)
        finally:
            img.close()


def _stack_geometry(shape: tuple[int, int, int], first_slice: str) -> Geometry:
    """Source geometry of a stack: file order along ``k``, pointing inferior for a head-first stack."""
    kz = -1.0 if first_slice == "superior" else 1.0
    return Geometry(shape=shape, direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, kz)),
                    spacing_known=False)


def read_image_stack(paths: list[Path], source: Path, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelLike] = None, first_slice: Optional[str] = None) -> Volume:
    """Read one image or an ordered list of same-size images as a uint8 volume.

    ``first_slice`` says where ``paths[0]`` lies: ``"superior"`` (a head-to-feet
    stack: it becomes the top canonical slice ``z = N - 1``) or ``"inferior"`` (feet
    to head: ``z = 0``); default :data:`STACK_FIRST_SLICE` (``"superior"``). Stacks are decoded by a few threads
    (Pillow releases the GIL while decoding); slices are placed straight into the
    canonical array and the cancel token is checked for each.
    """
    first_slice = first_slice or STACK_FIRST_SLICE
    if first_slice not in ("superior", "inferior"):
        raise ValueError(f"first_slice must be 'superior' or 'inferior', not {first_slice!r}")
    if not paths:
        raise UnsupportedFormatError(f"{source} holds no PNG/JPG image.")
    report = as_progress(progress)
    warnings: list[str] = []
    paths, left_out = stack_members(list(paths))
    with wrap_errors(paths[0], "image"):
        with _open(paths[0]) as first:
            w, h = _upright(first).size
            pages = getattr(first, "n_frames", 1) if len(paths) == 1 else 1  # a multi-page TIFF: its pages
        items = [(paths[0], k) for k in range(pages)] if pages > 1 else [(p, 0) for p in paths]
        guard_size((len(items), h, w), 1, source)
        source_geometry = _stack_geometry((len(items), h, w), first_slice)
        plan = plan_orientation(source_geometry)
        array = np.empty(plan.canonical_shape, dtype=np.uint8)
        scale = stack_range(paths)
    if scale is not None and (scale[0] < 0 or scale[1] > 255):
        warnings.append(f"The images have more than 8 bits per pixel (values {scale[0]:g} to {scale[1]:g}); the "
                        "whole stack was mapped to 0..255 with one scale, the same for every slice.")
    workers = min(4, os.cpu_count() or 1) if len(items) > 8 else 1
    if workers == 1:
        for k, (p, page) in enumerate(items):
            check_cancel(cancel)
            plan.place(array, _decode(p, (w, h), paths[0], source, warnings, scale, page)[None], k)
            report((k + 1) / len(items), f"Reading {p.name}")
    else:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="lunglens-io-decode")
        try:
            window = 2 * workers
            futures = deque(pool.submit(_decode, p, (w, h), paths[0], source, warnings, scale, page)
                            for p, page in items[:window])
            for k, (p, _) in enumerate(items):
                check_cancel(cancel)
                plan.place(array, futures.popleft().result()[None], k)
                if k + window < len(items):
                    q, page = items[k + window]
                    futures.append(pool.submit(_decode, q, (w, h), paths[0], source, warnings, scale, page))
                report((k + 1) / len(items), f"Reading {p.name}")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    warnings.extend(left_out)
    if pages > 1:
        warnings.append(f"{paths[0].name} holds {pages} pages, read as {pages} slices in page order.")
    fmt = {"png": "png", "jpeg": "jpeg"}.get(IMAGE_SUFFIXES.get(paths[0].suffix.lower(), ""), "image")
    geometry = plan.canonical_geometry()
    # image_files stays in file (source) order; see the module docstring for the canonical slice of each
    meta = {"modality": "", "image_files": [str(p) for p in paths], "stack_first_slice": first_slice,
            "source_orientation": plan.to_dict()}
    if len(items) > 1:
        warnings.append("Image stack: slice spacing and pixel size are unknown, so volumes are not in mL.")
        warnings.append(stack_order_note(paths[0].name, first_slice))
    gap = numbering_gap_note(paths)
    if gap:
        warnings.append(gap)
    return Volume(array=array, geometry=geometry, is_hu=False, source=str(source), format=fmt, meta=meta,
                  warnings=list(dict.fromkeys(warnings)))  # once each (the decoding threads share the list)


def stack_order_note(first_file: str, first_slice: str) -> str:
    """The notice of a stack's assumed order: its files carry no positions, and the lung zones (upper / lower:
    severity, the RSNA lower-zone predominance) depend on which end is the head."""
    end, other = ("top (head end)", "feet first") if first_slice == "superior" else ("bottom (feet end)", "head first")
    return (f"Image stack: the files carry no positions; the first, {first_file}, is taken as the {end} slice. "
            f"Upper and lower lung zones depend on it: if the stack runs the other way, reopen it {other}.")


def stack_slice_order(volume: Optional[Volume]) -> str:
    """``z_order`` of PNG label slices for ``volume``: its file order for an image stack.

    ``"descending"`` (``slice_0000.png`` is the top canonical slice) for a stack whose
    first file is its most superior slice, else ``"ascending"`` (canonical order).
    """
    if volume is None or not volume.meta.get("image_files") or volume.shape[0] < 2:
        return "ascending"
    so = volume.meta.get("source_orientation")
    if not isinstance(so, dict):
        return "ascending"
    plan = SourceOrientation.from_dict(so)
    return "descending" if plan.axes[0] == 0 and plan.flips[0] else "ascending"


def write_png_labels(labels: np.ndarray, geometry: Geometry, folder: Path, table: LabelTable,
                     z_order: str = "ascending") -> None:
    """Write ``slice_NNNN.png`` files and ``labels.json`` into the (new, empty) ``folder``.

    ``z_order="descending"`` writes the top canonical slice first (the file order of a
    head-to-feet image stack, see :func:`stack_slice_order`); it is recorded in
    ``labels.json`` so that :func:`read_png_labels` restores the canonical order.
    """
    if z_order not in _Z_ORDERS:
        raise ValueError(f"z_order must be one of {_Z_ORDERS}, not {z_order!r}")
    n = labels.shape[0]
    digits = max(4, len(str(n - 1)))
    for f in range(n):
        k = n - 1 - f if z_order == "descending" else f
        Image.fromarray(np.ascontiguousarray(labels[k], dtype=np.uint8), mode="L").save(
            folder / f"slice_{f:0{digits}d}.png", compress_level=1)
    info = {"format": "lunglens-png-labels", "geometry": geometry.to_dict(), "z_order": z_order,
            "labels": [{"value": lab.value, "key": lab.key, "name": lab.name, "color": list(lab.color)}
                       for lab in table],
            "note": "PNG cannot carry geometry; it is given here for information and checked on load. "
                    "z_order 'ascending': slice_0000.png is canonical z = 0 (the most inferior slice); "
                    "'descending': slice_0000.png is the top slice z = N - 1 (file order of a head-to-feet "
                    "image stack)."}
    (folder / "labels.json").write_text(json.dumps(info, indent=1))


def read_png_labels(folder: Path, z_order: Optional[str] = None) -> tuple[np.ndarray, Optional[Geometry]]:
    """Read a folder of label PNG slices (values kept as stored) and the geometry of its labels.json.

    The slices are returned in canonical ``z`` order: ``labels.json``'s ``z_order``
    says how the files run; without one, ``z_order`` (default ``"ascending"``) is used.
    """
    paths = image_files(folder)
    if not paths:
        raise UnsupportedFormatError(f"{folder} holds no PNG label slices.")
    geometry = None
    order = z_order or "ascending"
    sidecar = folder / "labels.json"
    if sidecar.is_file():
        try:
            info = json.loads(sidecar.read_text())
        except Exception:  # noqa: BLE001 - informational sidecar
            info = {}
        info = info if isinstance(info, dict) else {}
        try:
            geometry = Geometry.from_dict(info["geometry"])
        except Exception:  # noqa: BLE001 - informational sidecar
            geometry = None
        if "z_order" in info:
            if info["z_order"] not in _Z_ORDERS:
                raise CorruptFileError(f"{sidecar}: unknown z_order {info['z_order']!r}.")
            order = info["z_order"]
    if order == "descending":
        paths = paths[::-1]  # slice_0000.png is the top slice: canonical z = 0 is the last file
    arrays = []
    for p in paths:
        with wrap_errors(p, "label image"):
            with Image.open(p) as img:
                guard_size(img.size[::-1], 1, p)
                if img.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LA", "HSV", "LAB", "RGBX"):
                    raise UnsupportedFormatError(
                        f"{p.name} is a colour image ({img.mode}): label slices must be grey-level values "
                        "(0 background, 1 GGO, 2 consolidation, 3 pleural effusion). Export the labels as "
                        "values, not as a coloured picture.")
                if img.mode not in ("L", "P", "I", "I;16", "1"):
                    img = img.convert("L")
                arrays.append(np.asarray(img))
    if len({a.shape for a in arrays}) != 1:
        raise CorruptFileError(f"The label slices in {folder} do not all have the same size.")
    return np.stack(arrays), geometry
