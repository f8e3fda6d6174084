"""Checks of a file's voxel grid that every reader applies: length units, plausible voxel sizes, shear.

A header can be valid and still describe a grid that no chest CT has: lengths in metres or microns
(``xyzt_units`` of NIfTI, ``space units`` of NRRD), voxels of 0.0008 mm or 800 mm, slice axes that
are not perpendicular to the slice (gantry tilt, a sheared affine). The image is then shown at a
wrong size or straightened, and every mL is wrong, so each such grid is converted where the header
says how, and named to the user where it cannot be (QA pass: a NIfTI in metres read as 0.0008 mm
voxels, a sheared one as a straight stack, both without a word).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..types import Geometry

#: millimetres per unit of a header's length unit (NIfTI ``xyzt_units`` names, NRRD ``space units``)
MM_PER_UNIT = {"mm": 1.0, "millimeter": 1.0, "millimetre": 1.0, "meter": 1000.0, "metre": 1000.0, "m": 1000.0,
               "cm": 10.0, "centimeter": 10.0, "micron": 1e-3, "um": 1e-3, "µm": 1e-3, "micrometer": 1e-3}

#: voxel sizes a CT grid can have (mm): thinner than 0.05 mm or thicker than 30 mm is a header error
PLAUSIBLE_MM = (0.05, 30.0)


def plausible(spacing: tuple[float, ...] | np.ndarray) -> bool:
    """True when every voxel size lies in :data:`PLAUSIBLE_MM`."""
    s = np.asarray(spacing, dtype=float)
    return bool(np.all(np.isfinite(s)) and np.all(s >= PLAUSIBLE_MM[0]) and np.all(s <= PLAUSIBLE_MM[1]))


def unit_scale(unit: Optional[str], spacing_in_units: tuple[float, ...] | np.ndarray, name: str,
               warnings: list[str]) -> float:
    """The factor that turns the header's lengths into millimetres, with a warning when it is not 1.

    ``unit`` is the header's length unit (``None`` or unknown: millimetres, as DICOM and the formats'
    defaults have it). A conversion that would make the voxels implausible while the raw numbers read
    as millimetres are plausible is not made (a writer that sets the unit field wrong), and said.
    """
    key = (unit or "").strip().lower()
    scale = MM_PER_UNIT.get(key)
    if scale is None or scale == 1.0:
        return 1.0
    raw = np.abs(np.asarray(spacing_in_units, dtype=float))
    size = "x".join(f"{v * scale:.4g}" for v in raw)
    if plausible(raw * scale) or not plausible(raw):
        warnings.append(f"{name}: the header gives lengths in {unit}; converted to millimetres (voxels {size} mm).")
        return scale
    warnings.append(f"{name}: the header gives lengths in {unit}, which would make the voxels {size} mm; the "
                    f"numbers read as millimetres ({'x'.join(f'{v:.4g}' for v in raw)} mm) are what a CT has, "
                    "so they were read as millimetres. Check the scale (a ruler, a known organ size).")
    return 1.0


def spacing_note(geometry: Geometry, name: str) -> Optional[str]:
    """A warning when the voxel sizes are not those of a CT (:data:`PLAUSIBLE_MM`); ``None`` otherwise."""
    if not geometry.spacing_known or plausible(geometry.spacing):
        return None
    size = "x".join(f"{v:.4g}" for v in geometry.spacing_xyz)
    return (f"{name}: the voxels are {size} mm, which no chest CT has: the header's sizes or units are likely "
            "wrong, so distances, mL and % of lung cannot be trusted.")


def shear_degrees(geometry: Geometry) -> float:
    """Angle (degrees) between the slice axis and the normal of the slice plane (0: a straight stack)."""
    d = geometry.direction_matrix
    normal = np.cross(d[:, 0], d[:, 1])
    n = float(np.linalg.norm(normal))
    if n == 0.0:
        return 0.0
    c = abs(float(np.dot(normal / n, d[:, 2]))) / max(float(np.linalg.norm(d[:, 2])), 1e-12)
    return float(np.degrees(np.arccos(min(1.0, c))))


def shear_note(geometry: Geometry, name: str, why: str = "a gantry tilt or a sheared affine") -> Optional[str]:
    """A warning when the slice axis is not perpendicular to the slices (more than 0.5 degree)."""
    angle = shear_degrees(geometry)
    if angle <= 0.5:
        return None
    sz, sy, sx = geometry.spacing
    shift = sz * geometry.shape[0] * float(np.tan(np.radians(angle)))
    return (f"{name}: the slices are stacked at {angle:.1f} degrees off perpendicular ({why}). LungLens shows them "
            f"as a straight stack, so the top and bottom slices sit up to {shift:.0f} mm apart from where they are "
            f"in the patient; volumes count the distance between slice planes ({sz * np.cos(np.radians(angle)):.3g} "
            "mm), not along the tilted axis.")
