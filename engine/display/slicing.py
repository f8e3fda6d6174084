"""The three planes of a canonical volume and the mapping between screen and voxels.

Volumes are ``(z, y, x)`` arrays whose index axes point to patient left (x), posterior
(y) and superior (z) (LPS, see :mod:`engine.types`). Display images have row 0 at the
top of the screen and column 0 at the left, in radiological convention:

========  =====================  =====  ======  =====  ======
plane     image                  top    bottom  left   right
========  =====================  =====  ======  =====  ======
axial     ``a[k, :, :]``         A      P       R      L
coronal   ``a[::-1, j, :]``      S      I       R      L
sagittal  ``a[::-1, :, i]``      S      I       A      P
========  =====================  =====  ======  =====  ======

:func:`extract` returns numpy views (negative strides, no copy).
"""

from __future__ import annotations

from enum import Enum

import numpy as np


class Plane(str, Enum):
    """A slice plane; the value is the name shown to the user."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


PLANES: tuple[Plane, ...] = (Plane.AXIAL, Plane.CORONAL, Plane.SAGITTAL)

#: array axis that a plane's slice index runs along
_SLICE_AXIS = {Plane.AXIAL: 0, Plane.CORONAL: 1, Plane.SAGITTAL: 2}
#: (row axis, column axis) of the display image, as array axes
_IMAGE_AXES = {Plane.AXIAL: (1, 2), Plane.CORONAL: (0, 2), Plane.SAGITTAL: (0, 1)}
#: True where the display rows run against the array axis (superior at the top)
_ROW_FLIP = {Plane.AXIAL: False, Plane.CORONAL: True, Plane.SAGITTAL: True}
_LETTERS = {Plane.AXIAL: ("A", "P", "R", "L"), Plane.CORONAL: ("S", "I", "R", "L"),
            Plane.SAGITTAL: ("S", "I", "A", "P")}


def slice_axis(plane: Plane | str) -> int:
    """Array axis (0 = z, 1 = y, 2 = x) along which ``plane`` slices are stacked."""
    return _SLICE_AXIS[Plane(plane)]


def display_shape(shape: tuple[int, int, int], plane: Plane | str) -> tuple[int, int]:
    """``(rows, columns)`` of a display image of ``plane`` for a volume of ``shape``."""
    r, c = _IMAGE_AXES[Plane(plane)]
    return (int(shape[r]), int(shape[c]))


def extract(array: np.ndarray, plane: Plane | str, index: int) -> np.ndarray:
    """The display image of slice ``index`` of ``plane``: a view of ``array``, not a copy.

    Raises
    ------
    IndexError
        When ``index`` is outside the volume.
    """
    plane = Plane(plane)
    n = array.shape[_SLICE_AXIS[plane]]
    if not 0 <= index < n:
        raise IndexError(f"{plane.value} slice {index} is outside 0..{n - 1}")
    if plane is Plane.AXIAL:
        return array[index]
    if plane is Plane.CORONAL:
        return array[::-1, index, :]
    return array[::-1, :, index]


def pixel_spacing(spacing: tuple[float, float, float], plane: Plane | str) -> tuple[float, float]:
    """``(row height, column width)`` in mm of one display pixel; ``spacing`` is ``(sz, sy, sx)``."""
    r, c = _IMAGE_AXES[Plane(plane)]
    return (float(spacing[r]), float(spacing[c]))


def to_voxel(plane: Plane | str, index: int, row: float, col: float,
             shape: tuple[int, int, int]) -> tuple[float, float, float]:
    """Voxel ``(z, y, x)`` (fractional) shown at display ``(row, col)`` of slice ``index``."""
    plane = Plane(plane)
    ra, ca = _IMAGE_AXES[plane]
    out = [0.0, 0.0, 0.0]
    out[_SLICE_AXIS[plane]] = float(index)
    out[ra] = (shape[ra] - 1 - row) if _ROW_FLIP[plane] else row
    out[ca] = col
    return (out[0], out[1], out[2])


def to_display(plane: Plane | str, zyx: tuple[float, float, float],
               shape: tuple[int, int, int]) -> tuple[int, float, float]:
    """``(slice index, row, col)`` at which voxel ``zyx`` appears in ``plane``."""
    plane = Plane(plane)
    ra, ca = _IMAGE_AXES[plane]
    row = (shape[ra] - 1 - zyx[ra]) if _ROW_FLIP[plane] else zyx[ra]
    return (int(round(zyx[_SLICE_AXIS[plane]])), float(row), float(zyx[ca]))


def edge_letters(plane: Plane | str) -> dict[str, str]:
    """Patient direction at each edge of a display image: keys ``top, bottom, left, right``."""
    top, bottom, left, right = _LETTERS[Plane(plane)]
    return {"top": top, "bottom": bottom, "left": left, "right": right}


#: height:width the coronal/sagittal views aim at when the real spacing is unknown
NOMINAL_HEIGHT_RATIO = 0.75


def display_spacing(shape: tuple[int, int, int], spacing: tuple[float, float, float],
                    spacing_known: bool = True) -> tuple[float, float, float]:
    """Spacing ``(sz, sy, sx)`` to draw a volume with.

    The real spacing when it is known. Otherwise (PNG/JPG stacks) square in-plane pixels
    and a slice gap that gives coronal and sagittal views a nominal
    :data:`NOMINAL_HEIGHT_RATIO` height:width instead of a flat strip; the views then say
    that they are not to scale.
    """
    if spacing_known:
        return tuple(float(s) for s in spacing)  # type: ignore[return-value]
    nz, ny, nx = shape
    sz = max(1.0, NOMINAL_HEIGHT_RATIO * max(ny, nx) / max(nz, 1))
    return (float(sz), 1.0, 1.0)
