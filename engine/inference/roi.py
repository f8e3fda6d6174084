"""Where the lungs are: which slices to segment and which part of each slice.

Segmenting every slice of a 300-slice scan at full field of view wastes most of the
work on the neck, the abdomen and the air around the patient. :func:`find_roi`
finds, cheaply (on a copy subsampled to about 128 pixels across), the slices that
hold lung and the box around the torso:

1. body = voxels denser than -500 HU (8-bit lung-window images are mapped back to
   HU through the lung window [-1350, 150] first);
2. the body's holes are filled slice by slice; air inside the body (filled body
   minus body) is lung, airways, or bowel gas;
3. the largest 3D connected air component (the lungs and the airways joined by the
   trachea) and any component at least a fifth of its size are kept as lungs;
4. the slices spanned by the lungs, widened by ``margin_mm`` above and below (pleural
   effusion collects below the lung bases), are the ones worth segmenting;
5. per slice, the box around the largest 2D body component (the torso, which keeps
   the arms and the table out when they are separate) is the in-plane region to segment.

When no lung is found (a single slice, lung-cropped images, a phantom without air)
every slice and the whole slice are used: the safe default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..preprocessing.normalize import unit_to_hu

#: pixels across of the subsampled copy used for detection
DETECT_SIZE = 128
BODY_HU = -500.0
#: components smaller than this fraction of the largest air component are not lung
MIN_FRACTION = 0.2
#: a scan with less air inside the body than this is treated as having no lung
MIN_LUNG_ML = 10.0


@dataclass(frozen=True)
class LungROI:
    """Slices and in-plane boxes to segment.

    Attributes
    ----------
    slices
        ``(z,)`` bool: True where the slice should be segmented.
    boxes
        ``(z, 4)`` int ``(y0, y1, x0, x1)`` half-open boxes in slice pixels.
    detected
        False when no lung was found and everything is used.
    """

    slices: np.ndarray
    boxes: np.ndarray
    detected: bool

    @classmethod
    def everything(cls, shape: tuple[int, int, int]) -> "LungROI":
        z, y, x = shape
        boxes = np.tile(np.array([0, y, 0, x], dtype=np.int64), (z, 1))
        return cls(np.ones(z, dtype=bool), boxes, False)

    def box(self, zs: np.ndarray) -> tuple[int, int, int, int]:
        """Union of the boxes of slices ``zs``."""
        b = self.boxes[np.asarray(zs, dtype=np.int64)]
        return int(b[:, 0].min()), int(b[:, 1].max()), int(b[:, 2].min()), int(b[:, 3].max())


def pseudo_hu(array: np.ndarray, is_hu: bool) -> np.ndarray:
    """Float32 HU (8-bit lung-window images are mapped back through [-1350, 150])."""
    a = np.asarray(array, dtype=np.float32)
    if is_hu:
        return a
    return unit_to_hu(a / 255.0)


def find_roi(array: np.ndarray, is_hu: bool, spacing: tuple[float, float, float],
             margin_mm: float = 20.0, min_slices: int = 8) -> LungROI:
    """Find the slices holding lung and the torso box of each slice.

    Parameters
    ----------
    array
        Scan ``(z, y, x)``, HU or 8-bit.
    is_hu
        Whether ``array`` holds Hounsfield units.
    spacing
        ``(sz, sy, sx)`` in mm (used for the margin and the minimum lung volume).
    margin_mm
        Slices within this distance of the lungs (above and below) are kept.
    min_slices
        Scans with fewer slices are processed whole (detection is not worth it).
    """
    nz, ny, nx = array.shape
    if nz < min_slices:
        return LungROI.everything(array.shape)
    f = max(1, int(round(min(ny, nx) / DETECT_SIZE)))
    small = pseudo_hu(array[:, ::f, ::f], is_hu)
    body = small > BODY_HU
    inplane = np.zeros((3, 3, 3), dtype=bool)
    inplane[1] = ndimage.generate_binary_structure(2, 1)
    padded = np.pad(body, ((1, 1), (0, 0), (0, 0)))
    filled = ndimage.binary_fill_holes(padded, structure=inplane)[1:-1]
    air = filled & ~body
    labels, n = ndimage.label(air)
    if n == 0:
        return LungROI.everything(array.shape)
    sizes = np.bincount(labels.ravel())[1:]
    voxel_ml = float(spacing[0]) * float(spacing[1]) * float(spacing[2]) * f * f / 1000.0
    largest = int(sizes.max())
    if largest * voxel_ml < MIN_LUNG_ML:
        return LungROI.everything(array.shape)
    keep = np.flatnonzero(sizes >= MIN_FRACTION * largest) + 1
    lung = np.isin(labels, keep)
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    margin = int(np.ceil(margin_mm / max(float(spacing[0]), 1e-3)))
    slices = np.zeros(nz, dtype=bool)
    slices[max(0, zs[0] - margin):min(nz, zs[-1] + margin + 1)] = True
    boxes = _torso_boxes(filled, f, (ny, nx))
    return LungROI(slices, boxes, True)


def _torso_boxes(filled: np.ndarray, f: int, full: tuple[int, int]) -> np.ndarray:
    """Per-slice box (in full-resolution pixels) of the largest 2D component of ``filled``."""
    ny, nx = full
    nz = filled.shape[0]
    boxes = np.tile(np.array([0, ny, 0, nx], dtype=np.int64), (nz, 1))
    inplane = np.zeros((3, 3, 3), dtype=bool)
    inplane[1] = ndimage.generate_binary_structure(2, 1)
    comp, n = ndimage.label(filled, structure=inplane)
    if n == 0:
        return boxes
    sizes = np.bincount(comp.ravel())
    best = np.zeros(nz, dtype=np.int64)
    best_size = np.zeros(nz, dtype=np.int64)
    objects = ndimage.find_objects(comp)
    for lab, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        z = sl[0].start
        if sizes[lab] > best_size[z]:
            best_size[z] = sizes[lab]
            best[z] = lab
    pad = 2  # subsampled pixels of margin around the torso
    for z in range(nz):
        if best[z] == 0:
            continue
        sl = objects[best[z] - 1]
        y0 = max(0, (sl[1].start - pad) * f)
        y1 = min(ny, (sl[1].stop + pad) * f)
        x0 = max(0, (sl[2].start - pad) * f)
        x1 = min(nx, (sl[2].stop + pad) * f)
        boxes[z] = (y0, y1, x0, x1)
    return boxes
