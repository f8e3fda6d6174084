"""Core data types: :class:`Geometry` and :class:`Volume`.

Conventions
-----------
- Arrays are C-contiguous in ``(z, y, x)`` order: ``array[k, j, i]``.
- World coordinates are patient LPS millimetres (DICOM/ITK convention).
- ``Geometry.spacing`` is ``(sz, sy, sx)`` in mm, in array order.
- ``Geometry.origin`` is the LPS position ``(x, y, z)`` of the centre of voxel
  ``array[0, 0, 0]``.
- ``Geometry.direction`` is a 3x3 matrix whose **columns** are the unit LPS
  vectors of the index axes ``i`` (x, last array axis), ``j`` (y) and ``k``
  (z, first array axis), as in ITK/SimpleITK.

So ``world = origin + direction @ (spacing_xyz * [i, j, k])``. The nibabel/NIfTI
affine (RAS) is :meth:`Geometry.affine_ras`. Readers in :mod:`engine.io` bring
every scan to a canonical orientation (see :mod:`engine.io.orientation`, the only
place that swaps axes); writers restore the source orientation when asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of a volume: shape, spacing, origin and direction."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    #: False when the source gave no spacing (PNG/JPG stacks): 1 mm is then a placeholder,
    #: and volumes in mL must not be reported as if they were measured.
    spacing_known: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(s) for s in self.origin))
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in d))
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"shape must be three positive ints, got {self.shape}")
        if min(self.spacing) <= 0 or not np.all(np.isfinite(self.spacing)):
            raise ValueError(f"spacing must be positive and finite, got {self.spacing}")

    # -- derived quantities -------------------------------------------------
    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float)

    @property
    def spacing_xyz(self) -> tuple[float, float, float]:
        sz, sy, sx = self.spacing
        return (sx, sy, sz)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (1 mL = 1000 mm^3): the spacings' product times the cosine of a
        sheared grid's tilt (``|det|`` of the unit direction columns; 1 for a straight grid), since slices
        stacked along a tilted axis lie closer together than the step along it."""
        shear = abs(float(np.linalg.det(self.direction_matrix)))
        return float(np.prod(self.spacing)) * (shear if 0.0 < shear < 0.99995 else 1.0) / 1000.0  # > 0.5 degree

    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping ``(i, j, k, 1)`` (x, y, z index) to LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing_xyz)[None, :]
        a[:3, 3] = self.origin
        return a

    def affine_ras(self) -> np.ndarray:
        """4x4 matrix mapping ``(i, j, k, 1)`` to RAS mm: the NIfTI/nibabel affine."""
        return _LPS_TO_RAS @ self.affine_lps()

    @classmethod
    def from_affine_ras(cls, affine: np.ndarray, shape: tuple[int, int, int], **kw: Any) -> "Geometry":
        """Build a geometry from a nibabel-style RAS affine and a (z, y, x) shape."""
        lps = _LPS_TO_RAS @ np.asarray(affine, dtype=float)
        m = lps[:3, :3]
        spacing_xyz = np.linalg.norm(m, axis=0)
        spacing_xyz[spacing_xyz == 0] = 1.0
        direction = m / spacing_xyz[None, :]
        return cls(shape=tuple(shape), spacing=tuple(spacing_xyz[::-1]), origin=tuple(lps[:3, 3]),
                   direction=direction, **kw)

    def index_to_world(self, zyx: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """LPS mm of (fractional) index ``(z, y, x)``; accepts an (..., 3) array."""
        zyx = np.asarray(zyx, dtype=float)
        ijk = zyx[..., ::-1]
        a = self.affine_lps()
        return ijk @ a[:3, :3].T + a[:3, 3]

    def world_to_index(self, lps: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Fractional ``(z, y, x)`` index of LPS point(s)."""
        lps = np.asarray(lps, dtype=float)
        inv = np.linalg.inv(self.affine_lps())
        ijk = lps @ inv[:3, :3].T + inv[:3, 3]
        return ijk[..., ::-1]

    def orientation_code(self) -> str:
        """Three letters naming the patient direction each index axis (i, j, k) points to, LPS style.

        E.g. ``"LPS"`` means x increases to the patient's left, y posterior, z superior.
        """
        letters = (("L", "R"), ("P", "A"), ("S", "I"))
        code = ""
        for col in self.direction_matrix.T:
            ax = int(np.argmax(np.abs(col)))
            code += letters[ax][0] if col[ax] > 0 else letters[ax][1]
        return code

    def same_grid(self, other: "Geometry", tol: float = 1e-3) -> bool:
        """True when ``other`` describes the same voxel grid (shape, spacing, origin, direction).

        ``tol`` is absolute (mm) for the origin and the direction cosines; spacings must
        agree to 0.01 % (and ``min(tol, 1e-4)`` mm): grids 1 % apart are different grids,
        whose volumes in mL differ by 1 % per axis.
        """
        return (self.shape == other.shape
                and np.allclose(self.spacing, other.spacing, rtol=1e-4, atol=min(tol, 1e-4))
                and np.allclose(self.origin, other.origin, atol=tol)
                and np.allclose(self.direction_matrix, other.direction_matrix, atol=tol))

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": [list(r) for r in self.direction], "spacing_known": self.spacing_known}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Geometry":
        return cls(shape=tuple(d["shape"]), spacing=tuple(d["spacing"]), origin=tuple(d["origin"]),
                   direction=tuple(tuple(r) for r in d["direction"]),
                   spacing_known=bool(d.get("spacing_known", True)))


@dataclass
class Volume:
    """A scan: ``array`` in canonical (z, y, x) order plus its :class:`Geometry`.

    Attributes
    ----------
    array
        C-contiguous array. HU sources: ``int16`` (or ``float32`` when rescale gives
        fractions). 8-bit sources (PNG/JPG): ``uint8``.
    geometry
        Voxel grid; ``geometry.shape == array.shape``.
    is_hu
        True when intensities are Hounsfield units; False for 8-bit windowed images.
    source
        Path the volume was read from (``None`` for synthetic volumes).
    format
        Short name of the source format: ``"nifti"``, ``"dicom"``, ``"nrrd"``, ``"mha"``,
        ``"png"``, ``"jpeg"``, ``"phantom"`` ...
    meta
        Free-form metadata: modality, patient/series fields, DICOM UIDs, warnings,
        the source orientation to restore on export ...
    warnings
        Human-readable warnings raised while loading (uneven slice gaps, 4D file...).
    """

    array: np.ndarray
    geometry: Geometry
    is_hu: bool = True
    source: Optional[str] = None
    format: str = "unknown"
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume array must be 3D (z, y, x), got shape {self.array.shape}")
        if tuple(self.array.shape) != tuple(self.geometry.shape):
            raise ValueError(f"array shape {self.array.shape} != geometry shape {self.geometry.shape}")
        if not self.array.flags.c_contiguous:
            self.array = np.ascontiguousarray(self.array)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.shape  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


def slice_runs(zs: "list[int]") -> "list[list[int]]":
    """Consecutive runs of (sorted) slice indices as ``[first, last]`` pairs: ``[0, 1, 2, 5]`` -> ``[[0, 2], [5, 5]]``."""
    out: list[list[int]] = []
    for z in zs:
        if out and z == out[-1][1] + 1:
            out[-1][1] = z
        else:
            out.append([z, z])
    return out
