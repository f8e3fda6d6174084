"""Freehand ROI (P): draw an outline on a slice; the closed region's mean, SD and area show beside it.

The region is the outline closed by a straight line, filled by the even-odd rule
(:func:`engine.editing.ops.polygon_mask_2d`, as the lasso paints it); see
:class:`app.state.measurements.Measurements`.
"""

from __future__ import annotations

from ..state.interaction import VoxelMouseEvent
from .ruler import RulerTool


class FreehandRoiTool(RulerTool):
    """Press, draw the outline, release: the statistics follow the outline as it is drawn."""

    name, title, shortcut = "freehand", "Freehand ROI", "P"
    kind = "freehand"

    def press(self, event: VoxelMouseEvent) -> None:
        super().press(event)
        self._points = [] if self._start is None else [self._start[1:]]

    def drag(self, event: VoxelMouseEvent) -> None:
        here = self._display(event)
        if self._start is None or here is None or event.plane != self._plane:
            return
        if (here[1], here[2]) != self._points[-1]:
            self._points.append((here[1], here[2]))
        if len(self._points) >= 3:
            self.measurements.set(self.kind, event.plane, self._start[0], self._points[0], self._points[-1],
                                  self._points)
