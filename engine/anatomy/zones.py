"""Zone codes of lung masks: upper / middle / lower third of each lung, by side.

The codes (:data:`engine.anatomy.lungs.ZONES`) are a function of the two masks and three
small tables (:func:`zone_tables`): a lung voxel takes its lung's code on its slice
(``1..6``), any other voxel the code of its slice and column side (``7..12``). The
tables are cheap; the full ``(z, y, x)`` array is made only when asked for
(:attr:`engine.anatomy.LungMasks.zones`), or for a box (:meth:`~engine.anatomy.LungMasks.zones_in`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..types import Geometry

RIGHT, LEFT = 0, 1


def _superior_sign(geometry: Geometry) -> float:
    """+1 when the slice index k grows towards the head, -1 when towards the feet."""
    return 1.0 if geometry.direction_matrix[2, 2] >= 0 else -1.0


def _left_sign(geometry: Geometry) -> float:
    """+1 when the column index x grows towards the patient's left (LPS +x)."""
    return 1.0 if geometry.direction_matrix[0, 0] >= 0 else -1.0


def _thirds(extent: Optional[tuple[int, int]], nz: int, sup: float) -> np.ndarray:
    """Zone offset (0 upper, 1 middle, 2 lower) of every slice for one lung."""
    if extent is None:
        return np.full(nz, 1, dtype=np.uint8)
    k0, k1 = extent
    t = (np.arange(nz) - k0 + 0.5) / (k1 - k0 + 1)  # 0 at the first slice, 1 at the last
    height = t if sup > 0 else 1.0 - t  # 0 inferior, 1 superior
    out = np.where(height >= 2.0 / 3.0, 0, np.where(height >= 1.0 / 3.0, 1, 2))
    return out.astype(np.uint8)


def _zone_codes(left: np.ndarray, right: np.ndarray, geometry: Geometry):
    """The zone code tables (:func:`zone_tables`), each lung's slice extent and the lung voxels
    per zone code.

    Vectorised: a few passes over the masks, whatever the number of slices.
    """
    nz, ny, nx = left.shape
    extents: dict[str, Optional[tuple[int, int]]] = {}
    cols: dict[int, float] = {}
    per_slice: dict[int, np.ndarray] = {}
    for name, side, mask in (("right", RIGHT, right), ("left", LEFT, left)):
        ks = np.flatnonzero(mask.any(axis=(1, 2)))
        extents[name] = (int(ks[0]), int(ks[-1])) if ks.size else None
        # voxels per column (summed over slices first: uint16 holds up to 65535 slices)
        per_col = np.add.reduce(mask, axis=0, dtype=np.uint16).sum(axis=0, dtype=np.int64)
        if per_col.any():
            cols[side] = float(np.average(np.arange(nx), weights=per_col))
        per_slice[side] = np.add.reduce(mask, axis=2, dtype=np.uint16).sum(axis=1, dtype=np.int64)
    tables = zone_tables(extents, cols, nz, nx, geometry)
    counts = np.zeros(13, dtype=np.int64)
    np.add.at(counts, tables[1].astype(np.int64), per_slice[RIGHT])
    np.add.at(counts, tables[2].astype(np.int64), per_slice[LEFT])
    return tables, extents, counts


def _zones_from(left: np.ndarray, right: np.ndarray, tables: tuple[np.ndarray, np.ndarray, np.ndarray],
                zs: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
    """Zone codes of masks ``left`` / ``right`` (a box of slices ``zs`` and columns ``xs``) from their tables."""
    outside, right_code, left_code = tables
    zones = np.empty(left.shape, dtype=np.uint8)
    zones[...] = outside[zs, None, xs]
    np.copyto(zones, right_code[zs, None, None], where=right)
    np.copyto(zones, left_code[zs, None, None], where=left)
    return zones


def zone_tables(extents: dict[str, Optional[tuple[int, int]]], cols: dict[int, float], nz: int, nx: int,
                geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The zone codes as tables: uint8 ``(z, x)`` of the voxels outside the lungs (by column), and uint8
    ``(z,)`` of the right and of the left lung's voxels on each slice.

    ``cols``: the column centroid of each lung present (keys :data:`RIGHT`, :data:`LEFT`).
    """
    sup = _superior_sign(geometry)
    third = {RIGHT: _thirds(extents["right"], nz, sup), LEFT: _thirds(extents["left"], nz, sup)}
    # side of every column outside the lungs: midline between the two lungs' centroids
    if len(cols) == 2:
        mid = (cols[RIGHT] + cols[LEFT]) / 2.0
    else:
        mid = (nx - 1) / 2.0
    col_is_left = (np.arange(nx) > mid) if _left_sign(geometry) > 0 else (np.arange(nx) < mid)
    outside = np.where(col_is_left[None, :], (7 + 3 + third[LEFT])[:, None], (7 + third[RIGHT])[:, None])
    return (outside.astype(np.uint8), (1 + third[RIGHT]).astype(np.uint8), (4 + third[LEFT]).astype(np.uint8))
