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


def label_counts(labels: np.ndarray, minlength: int = 256) -> np.ndarray:
    """Number of voxels holding each value ``0..minlength-1`` (``int64``)."""
    lab = np.asarray(labels)
    if lab.dtype != np.uint8:
        raise TypeError(f"label maps are uint8, got {lab.dtype}")
    return np.bincount(lab.ravel(), minlength=minlength).astype(np.int64)
