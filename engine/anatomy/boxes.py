"""Bounding boxes and slabs of slices for whole-scan mask work.

Rules over a whole CT (the lung gate, filling findings into the lungs) touch a few
voxels of a large grid. Two habits keep their cost linear in the scan:

* work inside the :func:`bounding_box` of what matters, not on the whole grid;
* make full-resolution temporaries one slab of slices at a time (:func:`z_slabs`). A
  temporary the size of a 300-slice mask (78 MB) is above the C allocator's largest
  mmap threshold (32 MB with glibc), so every one is new memory whose pages fault in
  one by one, and that cost per slice grows with the scan; slabs of a few MB are reused.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

Box = tuple[slice, slice, slice]
#: bytes of one full-resolution temporary per slab
SLAB_BYTES = 4 * 2 ** 20


def bounding_box(mask: np.ndarray) -> Optional[Box]:
    """Bounding box of the non-zero voxels of a ``(z, y, x)`` array (``None`` when there are none)."""
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    if zs.size == 0:
        return None
    top = mask[zs[0]:zs[-1] + 1].max(axis=0)  # a reduction over whole slices: one fast pass
    ys, xs = np.flatnonzero(top.any(axis=1)), np.flatnonzero(top.any(axis=0))
    return (slice(int(zs[0]), int(zs[-1]) + 1), slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1))


def value_box(labels: np.ndarray, values: tuple[int, ...]) -> Optional[Box]:
    """:func:`bounding_box` of the voxels whose value is one of ``values``, made a slab at a time
    (no full-size mask: the same box as ``bounding_box(np.isin(labels, values))``)."""
    nz = labels.shape[0]
    zany = np.zeros(nz, dtype=bool)
    top = np.zeros(labels.shape[1:], dtype=bool)
    for k in z_slabs(labels.shape):
        part = labels[k]
        hit = part == values[0]
        for v in values[1:]:
            hit |= part == v
        zany[k] = hit.any(axis=(1, 2))
        top |= hit.any(axis=0)
    zs = np.flatnonzero(zany)
    if zs.size == 0:
        return None
    ys, xs = np.flatnonzero(top.any(axis=1)), np.flatnonzero(top.any(axis=0))
    return (slice(int(zs[0]), int(zs[-1]) + 1), slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1))


def z_slabs(shape: tuple[int, ...], itemsize: int = 1, budget: Optional[int] = None) -> Iterator[slice]:
    """Consecutive slabs of slices along axis 0 covering ``shape``, each at most ``budget`` bytes
    (default :data:`SLAB_BYTES`) of ``itemsize``-byte voxels, and at least one slice."""
    per_slice = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    step = max(1, (SLAB_BYTES if budget is None else budget) // per_slice)
    for k in range(0, shape[0], step):
        yield slice(k, min(shape[0], k + step))
