"""Measurements on the slice views: one ruler, one ellipse ROI and one freehand ROI per plane.

The ruler and ROI tools (:mod:`app.tools.ruler`, :mod:`app.tools.roi`) call
:meth:`Measurements.set`; the overlay of each view (:mod:`app.views.measure_overlay`)
mirrors :attr:`Measurements.items`. The numbers come from :mod:`engine.display.reading`
on the scan's own values of the measured slice (not the thick slab on screen). Units
follow the data: mm and mm² with a known spacing, pixels otherwise; HU on CT, grey
levels on 8-bit images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from PySide6.QtCore import QObject, Signal

from engine.display import Plane, RegionStats, display_shape, distance, ellipse_mask, extract, pixel_spacing, \
    region_stats
from engine.display.reading import FILLED, filled_in_region, tilted_note
from engine.editing.ops import polygon_mask_2d

from .session import Session

#: kinds of measurement
KINDS = ("ruler", "ellipse", "freehand")


@dataclass(frozen=True)
class Measurement:
    """One measurement on slice ``index`` of ``plane``.

    Attributes
    ----------
    kind
        ``"ruler"``, ``"ellipse"`` (the ellipse inscribed in the box of ``p0``, ``p1``) or
        ``"freehand"`` (the closed outline through ``points``).
    p0, p1
        Display points ``(row, col)`` in pixels of the plane's image.
    points
        The freehand outline (display points), empty for the other kinds.
    length
        Ruler length (mm, or pixels when the spacing is unknown).
    stats
        Ellipse statistics (``None`` for a ruler or an empty ellipse).
    text
        What the view shows beside it.
    """

    kind: str
    plane: Plane
    index: int
    p0: tuple[float, float]
    p1: tuple[float, float]
    length: float = 0.0
    stats: Optional[RegionStats] = None
    text: str = ""
    points: tuple[tuple[float, float], ...] = ()


class Measurements(QObject):
    """The current measurements of the open scan (cleared when another scan opens).

    Signals
    -------
    changed(object)
        the measurements of a plane changed (the :class:`Plane`; ``None`` for all planes).
    """

    changed = Signal(object)

    def __init__(self, session: Session, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.session = session
        self._items: dict[tuple[Plane, str], Measurement] = {}
        session.volume_changed.connect(lambda _v: self.clear())

    def items(self, plane: Plane) -> list[Measurement]:
        """The measurements drawn on ``plane`` (any slice)."""
        return [m for (p, _k), m in self._items.items() if p == plane]

    def get(self, plane: Plane, kind: str) -> Optional[Measurement]:
        return self._items.get((Plane(plane), kind))

    def set(self, kind: str, plane: Plane, index: int, p0: tuple[float, float],
            p1: tuple[float, float], points: Sequence[tuple[float, float]] = ()) -> Optional[Measurement]:
        """Measure ``kind`` between display points ``p0`` and ``p1`` (through ``points`` for a freehand
        outline) of slice ``index``; replaces the plane's last one of that kind."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        volume = self.session.volume
        if volume is None:
            return None
        plane = Plane(plane)
        known = volume.geometry.spacing_known
        spacing = pixel_spacing(volume.spacing, plane) if known else (1.0, 1.0)
        length, stats = 0.0, None
        if kind == "ruler":
            length = distance(p0, p1, spacing)
            if known:
                text = f"{length:.1f} mm"
                if plane is not Plane.AXIAL and tilted_note(volume.meta):  # across tilted slices
                    text += f" ({tilted_note(volume.meta)})"
            elif plane is Plane.AXIAL:
                text = f"{length:.1f} px"
            else:  # rows are slices here: without spacing a slice step and a pixel are not the same length
                text = f"{abs(p1[0] - p0[0]):.1f} slices x {abs(p1[1] - p0[1]):.1f} px (no spacing)"
        else:
            image = extract(volume.array, plane, index)
            shape = display_shape(volume.shape, plane)
            mask = ellipse_mask(shape, p0, p1) if kind == "ellipse" else \
                polygon_mask_2d(shape, np.asarray(points), outline=False)  # pixel centres inside, as the ellipse
            stats = region_stats(image, mask, spacing)
            text = self.stats_text(stats, volume.is_hu, known,
                                   doubtful=bool((volume.meta or {}).get("hu_scale_doubtful")),
                                   decimals=max(1, self.session.value_decimals), plane=plane)
            if self.session.slab.mode:  # the view shows a slab; the statistics are of the voxels of its slice
                text += f"\nof slice {int(index) + 1} alone, not the {self.session.slab.mode.upper()} shown"
            filled = filled_in_region(volume.meta, plane, index, image, mask)
            if filled:
                text += ("\nincludes filled NaN/inf voxels: not image data (see Notices)" if filled == FILLED else
                         "\nmay include filled NaN/inf voxels (see Notices)")
        m = Measurement(kind, plane, int(index), tuple(p0), tuple(p1), length, stats, text,  # type: ignore[arg-type]
                        tuple((float(r), float(c)) for r, c in points))
        self._items[(plane, kind)] = m
        self.changed.emit(plane)
        return m

    @staticmethod
    def stats_text(stats: Optional[RegionStats], is_hu: bool, spacing_known: bool, doubtful: bool = False,
                   decimals: int = 1, plane: Any = Plane.AXIAL) -> str:
        """``mean 35.2 HU  SD 12.1`` and the area on a second line (``HU?`` when the reader doubted the scale);
        values to ``decimals`` (more for scans of small values: "mean 0.0" of values 0.01-0.06, QA pass). Without
        spacing the area is in pixels, and on a coronal or sagittal view in slice x pixel cells."""
        if stats is None:
            return "empty"
        unit = ("HU?" if doubtful else "HU") if is_hu else "grey"
        cells = "px" if Plane(plane) is Plane.AXIAL else "cells (slice x pixel, no spacing)"
        area = f"{stats.area:.1f} mm²" if spacing_known else f"{stats.pixels} {cells}"
        return f"mean {stats.mean:.{decimals}f} {unit}  SD {stats.sd:.{decimals}f}\narea {area}"

    def clear(self, plane: Optional[Plane] = None) -> bool:
        """Remove the measurements of ``plane`` (all when ``None``); True when there were some."""
        keys = [k for k in self._items if plane is None or k[0] == plane]
        for k in keys:
            del self._items[k]
        if keys:
            self.changed.emit(plane)
        return bool(keys)

