"""Label overlays: lookup tables, outlines and voxel counts (numpy only)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..labels import LabelTable


def label_lut(table: LabelTable, opacity: float = 1.0, hidden: Iterable[int] = ()) -> np.ndarray:
    """A C-contiguous 256x4 ``uint8`` RGBA table for a ``uint8`` label image.

    Index 0, values not in ``table`` and ``hidden`` values are fully transparent;
    the others take the table colour with alpha ``round(255 * opacity)``.
    """
    return np.ascontiguousarray(table.lut(opacity=opacity, hidden=frozenset(int(h) for h in hidden)))


def outline(labels: np.ndarray) -> np.ndarray:
    """Keep only the boundary pixels of each labelled region of a 2D label image.

    A pixel is on the boundary when one of its 4 neighbours holds a different value,
    or when it touches the image edge. Background stays 0. Returns a new C-contiguous
    array of the same dtype.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"outline needs a 2D image, got shape {lab.shape}")
    edge = np.zeros(lab.shape, dtype=bool)
    edge[0, :] = edge[-1, :] = True
    edge[:, 0] = edge[:, -1] = True
    diff_v = lab[1:, :] != lab[:-1, :]
    diff_h = lab[:, 1:] != lab[:, :-1]
    edge[1:, :] |= diff_v
    edge[:-1, :] |= diff_v
    edge[:, 1:] |= diff_h
    edge[:, :-1] |= diff_h
    out = np.zeros(lab.shape, dtype=lab.dtype)
    np.copyto(out, lab, where=edge)
    return out


_FEW_VALUES = 16
_CHUNK = 1 << 22


def label_counts(labels: np.ndarray, minlength: int = 256) -> np.ndarray:
    """Number of voxels holding each value ``0..255`` (``int64``, at least ``minlength`` long)."""
    lab = np.asarray(labels)
    if lab.dtype != np.uint8:
        raise TypeError(f"label maps are uint8, got {lab.dtype}")
    flat = lab.ravel()
    out = np.zeros(max(minlength, 256), dtype=np.int64)
    if flat.size == 0:
        return out
    top = int(flat.max())
    if top <= _FEW_VALUES:
        # a few labels (the usual case): one comparison pass per value beats bincount,
        # which first widens every voxel to a 64-bit integer
        for value in range(1, top + 1):
            out[value] = np.count_nonzero(flat == value)
        out[0] = flat.size - out[1:].sum()
    else:
        for start in range(0, flat.size, _CHUNK):  # bounded temporary memory
            out += np.bincount(flat[start:start + _CHUNK], minlength=256)
    return out


def downsample_labels(labels: np.ndarray, spacing: tuple[float, float, float],
                      max_voxels: int = 2_000_000) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A coarser label map for 3D surfaces: integer strides per axis, finest axis first.

    Strides are chosen so that the result has at most ``max_voxels`` voxels and its
    spacing is as even as the strides allow (thick slices are kept, thin axes are
    thinned first). Returns a C-contiguous view-derived copy and its ``(sz, sy, sx)``.
    """
    lab = np.asarray(labels)
    if lab.ndim != 3:
        raise ValueError(f"labels must be 3D (z, y, x), got shape {lab.shape}")
    steps = [1, 1, 1]
    while int(np.prod([-(-n // s) for n, s in zip(lab.shape, steps)])) > max_voxels:
        # increase the stride of the axis whose current spacing is the finest
        eff = [sp * s if n // s > 1 else np.inf for sp, s, n in zip(spacing, steps, lab.shape)]
        axis = int(np.argmin(eff))
        if not np.isfinite(eff[axis]):
            break
        steps[axis] += 1
    out = np.ascontiguousarray(lab[:: steps[0], :: steps[1], :: steps[2]])
    return out, tuple(float(sp * s) for sp, s in zip(spacing, steps))  # type: ignore[return-value]
