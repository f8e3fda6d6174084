"""Numbers behind the reading tools: thick slabs, rulers and region statistics (numpy only).

- :func:`slab_range` and :func:`slab_projection`: a thick-slab maximum (MIP) or minimum
  (MinIP) intensity projection of the slices around one slice of a plane, oriented like
  :func:`engine.display.extract` (so it replaces the single slice on screen). MIP shows
  vessels as branching tubes (a nodule stays a ball); MinIP shows airways and ground glass.
- :func:`distance` and :func:`ellipse_mask` / :func:`region_stats`: the ruler length and the
  mean, SD and area of an elliptical region of a display image.

All coordinates are display coordinates of one plane: ``(row, col)`` in pixels, pixel
``(r, c)`` centred at ``(r, c)``; spacings are ``(row height, column width)`` as
:func:`engine.display.pixel_spacing` returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .slicing import Plane, extract, slice_axis

#: projection modes of :func:`slab_projection`
SLAB_MODES = ("mip", "minip")


def slab_range(index: int, count: int, thickness: float, spacing: float) -> tuple[int, int]:
    """Slices ``[start, stop)`` of a slab ``thickness`` thick centred on slice ``index``.

    Parameters
    ----------
    index
        The slice on screen.
    count
        Number of slices along the plane's axis.
    thickness, spacing
        Slab thickness and slice spacing in the same unit (mm, or slices when the spacing
        is unknown and given as 1). The slab holds ``round(thickness / spacing)`` slices
        (at least one), clipped to the volume.
    """
    n = max(1, int(round(float(thickness) / max(float(spacing), 1e-6))))
    start = int(index) - (n - 1) // 2
    return max(start, 0), min(start + n, int(count))


def slab_projection(array: np.ndarray, plane: Plane | str, index: int, thickness: float, spacing: float,
                    mode: str = "mip") -> np.ndarray:
    """Thick-slab projection around slice ``index``, shaped and oriented like ``extract(array, plane, index)``.

    Parameters
    ----------
    array
        ``(z, y, x)`` volume.
    plane, index
        The slice the slab is centred on.
    thickness, spacing
        See :func:`slab_range` (``spacing`` is the spacing along the plane's axis).
    mode
        ``"mip"`` (maximum) or ``"minip"`` (minimum).

    Returns
    -------
    numpy.ndarray
        A new array of ``array.dtype`` (a view of the slice itself when the slab is one slice thick).
    """
    if mode not in SLAB_MODES:
        raise ValueError(f"slab mode must be one of {SLAB_MODES}, got {mode!r}")
    plane = Plane(plane)
    axis = slice_axis(plane)
    extract(array, plane, index)  # the same IndexError as a plain slice
    start, stop = slab_range(index, array.shape[axis], thickness, spacing)
    if stop - start <= 1:
        return extract(array, plane, index)
    reduce = np.maximum.reduce if mode == "mip" else np.minimum.reduce
    if plane is Plane.AXIAL:
        return reduce(array[start:stop], axis=0)
    if plane is Plane.CORONAL:
        return reduce(array[::-1, start:stop, :], axis=1)
    # sagittal: a reduction over a short last axis (5.8 ms on 300x512x14 int16; pairwise folding of
    # the strided columns took 15 ms)
    return reduce(array[::-1, :, start:stop], axis=2)


def distance(p0: tuple[float, float], p1: tuple[float, float], spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """Length between display points ``(row, col)`` in the unit of ``spacing`` (mm, or pixels for 1)."""
    return float(np.hypot((p1[0] - p0[0]) * spacing[0], (p1[1] - p0[1]) * spacing[1]))


def ellipse_mask(shape: tuple[int, int], p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
    """Pixels of a ``shape`` image whose centres lie in the ellipse inscribed in the box of corners ``p0``, ``p1``.

    The box corners are display points ``(row, col)``; a box less than a pixel across
    holds the pixel under its centre.
    """
    (r0, c0), (r1, c1) = p0, p1
    cr, cc = (r0 + r1) / 2.0, (c0 + c1) / 2.0
    ar, ac = max(abs(r1 - r0) / 2.0, 0.5), max(abs(c1 - c0) / 2.0, 0.5)
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    cols = np.arange(shape[1], dtype=np.float64)[None, :]
    return ((rows - cr) / ar) ** 2 + ((cols - cc) / ac) ** 2 <= 1.0


@dataclass(frozen=True)
class RegionStats:
    """Statistics of the pixels of a region.

    Attributes
    ----------
    pixels
        Number of pixels.
    mean, sd
        Mean and sample standard deviation (``ddof=1``; 0 for one pixel) of their values.
    minimum, maximum
        Extremes of their values.
    area
        ``pixels`` times the pixel area (mm² with a known spacing, pixels otherwise).
    """

    pixels: int
    mean: float
    sd: float
    minimum: float
    maximum: float
    area: float


def region_stats(image: np.ndarray, mask: np.ndarray,
                 spacing: tuple[float, float] = (1.0, 1.0)) -> Optional[RegionStats]:
    """:class:`RegionStats` of ``image[mask]`` (``None`` for an empty mask)."""
    values = np.asarray(image)[mask].astype(np.float64)
    if values.size == 0:
        return None
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return RegionStats(int(values.size), float(values.mean()), sd, float(values.min()), float(values.max()),
                       float(values.size * spacing[0] * spacing[1]))


#: how much of a place is voxels the reader filled for NaN/inf (``meta["filled"]``, see :mod:`engine.io._common`)
FILLED, MAYBE_FILLED = "filled", "maybe"


def tilted_note(meta: Optional[dict]) -> str:
    """The mark of positions on a gantry-tilted DICOM series (shown stacked straight, so positions away from its
    first slice are off sideways: the reader's ``meta["tilted_step_mm"]``); ``""`` for other scans."""
    return "approx.: tilted series shown straight" if (meta or {}).get("tilted_step_mm") else ""


def filled_voxel(meta: dict, shape: tuple[int, int, int], zyx: tuple[int, int, int], value: float) -> Optional[str]:
    """Whether voxel ``zyx`` (holding ``value``) is one the reader filled for NaN/inf: :data:`FILLED` (its flat
    index is recorded), :data:`MAYBE_FILLED` (no indices kept, the fill value on a filled slice) or ``None``."""
    filled = (meta or {}).get("filled") or {}
    if zyx[0] not in filled.get("slices", ()):
        return None
    index = filled.get("index")
    if index is None:
        return MAYBE_FILLED if float(value) in filled.get("values", ()) else None
    flat = int(np.ravel_multi_index(zyx, shape))
    return FILLED if index.size and index[min(int(np.searchsorted(index, flat)), index.size - 1)] == flat else None


def filled_in_region(meta: dict, plane: Plane | str, index: int, image: np.ndarray, mask: np.ndarray) -> Optional[str]:
    """Whether the region ``mask`` of slice ``index`` of ``plane`` (its pixels ``image``) holds filled voxels:
    exactly on an axial slice with recorded indices (:data:`FILLED`), by their value otherwise
    (:data:`MAYBE_FILLED`), or ``None``."""
    filled = (meta or {}).get("filled") or {}
    if not filled.get("slices"):
        return None
    if Plane(plane) is Plane.AXIAL and filled.get("index") is not None:
        if index not in filled["slices"]:
            return None
        flat = index * image.size + np.flatnonzero(mask)
        return FILLED if np.isin(flat, filled["index"]).any() else None
    if Plane(plane) is not Plane.AXIAL:  # rows are slices, the top one the last (engine.display.slicing.extract)
        rows = np.flatnonzero(np.asarray(mask).any(axis=1))
        if not np.isin(image.shape[0] - 1 - rows, list(filled["slices"])).any():
            return None  # the region lies on no filled slice: the fill value there is a real value
    elif index not in filled["slices"]:
        return None
    return MAYBE_FILLED if np.isin(image[mask], filled["values"]).any() else None
