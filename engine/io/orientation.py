"""Canonical orientation: the only place in LungLens that swaps or flips array axes.

Every reader in :mod:`engine.io` describes the array it finds in the file (the
*source* layout, in C order ``(k, j, i)``) by a :class:`~engine.types.Geometry`
whose direction columns are the LPS vectors of the source index axes. This module
plans how to bring that array to the *canonical* layout:

- the array is ``(z, y, x)``, C-contiguous;
- the index axes point as close as possible to LPS: ``x`` (last axis) towards the
  patient's Left, ``y`` towards Posterior, ``z`` (first axis) towards Superior.

So an axial slice ``array[k]`` shows anterior at the top and the patient's right
on the image's left (the radiological convention), and ``k`` grows towards the
head. Only permutations and flips are used: voxels are never resampled, so an
oblique scan keeps an exact, slightly non-diagonal direction matrix.

The plan (:class:`SourceOrientation`) is stored in
``volume.meta["source_orientation"]`` (as a dict, :meth:`SourceOrientation.to_dict`)
so that :meth:`SourceOrientation.to_source` can restore the source layout (e.g. for
DICOM SEG frames that must follow the source images).

Readers that stream data use :meth:`SourceOrientation.place`, which writes a slab
of consecutive source slices straight into the preallocated canonical array: no
second full-size copy is needed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import Geometry

__all__ = ["SourceOrientation", "plan_orientation", "canonicalize"]


@dataclass(frozen=True)
class SourceOrientation:
    """How the source array maps onto the canonical one.

    ``canonical = flip(transpose(source, axes), flips)``: canonical array axis ``a``
    is source array axis ``axes[a]``, reversed when ``flips[a]``.

    Attributes
    ----------
    source_geometry
        Geometry of the array as stored in the file (C order ``(k, j, i)``).
    axes
        For each canonical array axis (z, y, x), the source array axis it comes from.
    flips
        For each canonical array axis, whether it runs opposite to the source axis.
    """

    source_geometry: Geometry
    axes: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[bool, bool, bool] = (False, False, False)

    # -- derived --------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        """True when the source layout already is canonical."""
        return self.axes == (0, 1, 2) and not any(self.flips)

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        s = self.source_geometry.shape
        return tuple(int(s[a]) for a in self.axes)  # type: ignore[return-value]

    def canonical_geometry(self) -> Geometry:
        """The geometry of the canonical array (same world positions, new index axes)."""
        src = self.source_geometry
        d_src = src.direction_matrix  # columns: i, j, k  == source array axes 2, 1, 0
        shape_src = src.shape
        spacing = tuple(src.spacing[a] for a in self.axes)
        # canonical array axis a <-> canonical index column 2 - a
        cols = np.zeros((3, 3))
        for a in range(3):
            col = d_src[:, 2 - self.axes[a]]
            cols[:, 2 - a] = -col if self.flips[a] else col
        # world position of canonical voxel (0, 0, 0): the source index of that voxel
        src_idx = [0.0, 0.0, 0.0]
        for a in range(3):
            if self.flips[a]:
                src_idx[self.axes[a]] = shape_src[self.axes[a]] - 1
        origin = src.index_to_world(np.asarray(src_idx))
        return Geometry(shape=self.canonical_shape, spacing=spacing, origin=tuple(origin),
                        direction=cols, spacing_known=src.spacing_known)

    # -- array operations -------------------------------------------------------
    def _flip_view(self, arr: np.ndarray) -> np.ndarray:
        index = tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)
        return arr[index]

    def from_source(self, source: np.ndarray) -> np.ndarray:
        """The canonical, C-contiguous array for a whole source array."""
        if tuple(source.shape) != tuple(self.source_geometry.shape):
            raise ValueError(f"source shape {source.shape} != {self.source_geometry.shape}")
        return np.ascontiguousarray(self._flip_view(source.transpose(self.axes)))

    def to_source(self, canonical: np.ndarray) -> np.ndarray:
        """Restore the source layout of a canonical array (labels for export, say)."""
        if tuple(canonical.shape) != self.canonical_shape:
            raise ValueError(f"canonical shape {canonical.shape} != {self.canonical_shape}")
        inverse = tuple(int(i) for i in np.argsort(self.axes))
        return np.ascontiguousarray(self._flip_view(canonical).transpose(inverse))

    def place(self, out: np.ndarray, slab: np.ndarray, start: int) -> None:
        """Write source slices ``start : start + len(slab)`` into the canonical ``out``.

        ``slab`` has the source layout ``(n, rows, columns)``. Values are cast to
        ``out.dtype`` by the caller's choice (numpy assignment casting).
        """
        n = slab.shape[0]
        view = self._flip_view(slab.transpose(self.axes))
        a0 = self.axes.index(0)
        size = out.shape[a0]
        lo, hi = (size - start - n, size - start) if self.flips[a0] else (start, start + n)
        target = [slice(None)] * 3
        target[a0] = slice(lo, hi)
        out[tuple(target)] = view

    def canonical_slice(self, k: int) -> tuple[int, int]:
        """``(canonical axis, index)`` of source slice ``k`` (source array axis 0)."""
        a0 = self.axes.index(0)
        n = self.source_geometry.shape[0]
        return a0, (n - 1 - int(k)) if self.flips[a0] else int(k)

    # -- serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"axes": list(self.axes), "flips": list(self.flips),
                "source_geometry": self.source_geometry.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SourceOrientation":
        return cls(source_geometry=Geometry.from_dict(d["source_geometry"]),
                   axes=tuple(int(a) for a in d["axes"]),  # type: ignore[arg-type]
                   flips=tuple(bool(f) for f in d["flips"]))  # type: ignore[arg-type]


def plan_orientation(source_geometry: Geometry) -> SourceOrientation:
    """Choose the permutation and flips that bring ``source_geometry`` closest to LPS.

    For each canonical array axis (z -> S, y -> P, x -> L) pick the source axis whose
    direction has the largest component along that world axis (best total over the
    six permutations, as nibabel's ``io_orientation`` does), and flip it when it
    points the opposite way.
    """
    d = np.abs(source_geometry.direction_matrix)  # rows: L, P, S; cols: i, j, k
    best: tuple[float, tuple[int, int, int]] = (-1.0, (0, 1, 2))
    for perm in itertools.permutations(range(3)):
        # canonical array axis a (world row 2 - a) takes source array axis perm[a]
        # (direction column 2 - perm[a])
        score = sum(d[2 - a, 2 - perm[a]] for a in range(3))
        if score > best[0] + 1e-9:
            best = (score, perm)  # type: ignore[assignment]
    axes = best[1]
    signed = source_geometry.direction_matrix
    flips = tuple(bool(signed[2 - a, 2 - axes[a]] < 0) for a in range(3))
    return SourceOrientation(source_geometry=source_geometry, axes=tuple(axes),  # type: ignore[arg-type]
                             flips=flips)  # type: ignore[arg-type]


def canonicalize(array: np.ndarray, source_geometry: Geometry) -> tuple[np.ndarray, Geometry, SourceOrientation]:
    """Canonical array, its geometry and the plan, for a whole in-memory source array."""
    plan = plan_orientation(source_geometry)
    if plan.is_identity:
        return np.ascontiguousarray(array), plan.canonical_geometry(), plan
    return plan.from_source(array), plan.canonical_geometry(), plan


def missing_slices(meta: dict[str, Any]) -> frozenset[tuple[int, int]]:
    """``(canonical axis, index)`` of the slices a reader filled in for missing images
    (``meta["missing_slices"]``, source order, with ``meta["source_orientation"]``): the viewer marks them."""
    missing = meta.get("missing_slices") or []
    plan = meta.get("source_orientation")
    if not missing or not plan:
        return frozenset()
    orientation = SourceOrientation.from_dict(plan)
    return frozenset(orientation.canonical_slice(int(k)) for k in missing)
