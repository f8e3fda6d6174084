"""Key images for reports: an axial slice per finding and a coronal overview, as PNG.

Rendering is numpy + Pillow only: the scan through a window (lung window W1500/L-600
for HU scans; 8-bit images as they are), finding labels blended in their table colours
with a solid outline, pixels made square in millimetres (using the spacing), the
coronal view with the head at the top.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from ..display.overlay import outline
from ..labels import DEFAULT_TABLE, FINDING_KEYS, FINDINGS, LabelTable
from ..types import Volume

LUNG_WINDOW = (1500.0, -600.0)  # width, level


@dataclass
class KeyImage:
    """One rendered view."""

    title: str
    png: bytes
    width: int
    height: int
    plane: str
    index: int


def _grey(arr2d: np.ndarray, is_hu: bool, window: tuple[float, float]) -> np.ndarray:
    if not is_hu and arr2d.dtype == np.uint8:
        return arr2d
    width, level = window
    lo = level - width / 2.0
    return np.clip((arr2d.astype(np.float32) - lo) * (255.0 / width), 0, 255).astype(np.uint8)


def render(image2d: np.ndarray, labels2d: Optional[np.ndarray], is_hu: bool, pixel_mm: tuple[float, float],
           table: LabelTable = DEFAULT_TABLE, alpha: float = 0.45, window: tuple[float, float] = LUNG_WINDOW,
           max_size: int = 512) -> Image.Image:
    """An RGB image of one slice with its labels blended in.

    ``pixel_mm`` is (row height, column width) in mm; the image is resized so that pixels
    are square, longest side at most ``max_size``.
    """
    grey = _grey(image2d, is_hu, window)
    rgb = np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32)
    if labels2d is not None and labels2d.any():
        lut = np.zeros((256, 3), dtype=np.float32)
        for lab in table:
            lut[lab.value] = lab.color
        lab = labels2d
        m = lab > 0
        rgb[m] = (1 - alpha) * rgb[m] + alpha * lut[lab[m]]
        edge = outline(lab) > 0  # the one outline (engine.display), as the viewer draws it
        rgb[edge] = lut[lab[edge]]
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    h_mm = image2d.shape[0] * pixel_mm[0]
    w_mm = image2d.shape[1] * pixel_mm[1]
    scale = max_size / max(h_mm, w_mm)
    size = (max(int(round(w_mm * scale)), 1), max(int(round(h_mm * scale)), 1))
    if size != img.size:
        img = img.resize(size, Image.Resampling.NEAREST if size[0] >= img.size[0] else Image.Resampling.BILINEAR)
    return img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def key_slices(labels: np.ndarray) -> dict[str, int]:
    """For each finding present, the axial slice index where it covers the most pixels."""
    out: dict[str, int] = {}
    rows = labels.reshape(labels.shape[0], -1)
    for value in FINDINGS:
        per = (rows == value).sum(axis=1)
        if per.any():
            out[FINDING_KEYS[value]] = int(np.argmax(per))
    return out


def coronal_index(labels: np.ndarray, lung: Optional[np.ndarray] = None) -> int:
    """The coronal row (y) with most lung (an overview), else most findings, else the middle."""
    for mask in (lung, (labels > 0)):
        if mask is not None and mask.any():
            return int(np.argmax(mask.sum(axis=(0, 2))))
    return labels.shape[1] // 2


def key_images(volume: Volume, labels: np.ndarray, lung: Optional[np.ndarray] = None,
               table: LabelTable = DEFAULT_TABLE, max_size: int = 512) -> list[KeyImage]:
    """An axial slice per finding present (slice with most of it) and a coronal overview."""
    sz, sy, sx = volume.geometry.spacing
    out: list[KeyImage] = []
    for key, k in key_slices(labels).items():
        name = table.by_key(key).name
        img = render(volume.array[k], labels[k], volume.is_hu, (sy, sx), table, max_size=max_size)
        out.append(KeyImage(f"{name}: axial slice {k + 1} of {volume.shape[0]}", png_bytes(img),
                            img.size[0], img.size[1], "axial", k))
    j = coronal_index(labels, lung)
    # canonical k grows towards the head: flip so the head is at the top
    flip = volume.geometry.direction_matrix[2, 2] >= 0
    cor = volume.array[:, j, :]
    lab = labels[:, j, :]
    if flip:
        cor, lab = cor[::-1], lab[::-1]
    img = render(cor, lab, volume.is_hu, (sz, sx), table, max_size=max_size)
    out.append(KeyImage(f"Coronal overview (row {j + 1} of {volume.shape[1]})", png_bytes(img),
                        img.size[0], img.size[1], "coronal", j))
    return out
