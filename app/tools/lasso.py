"""Lasso (L): drag an outline on a slice; on release its inside gets the current label."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from engine.editing import ops

from ..state.interaction import VoxelMouseEvent
from .base import EditContext, EditTool


class LassoTool(EditTool):
    """Polygon/lasso fill on the slice under the mouse; one undo step per outline."""

    name, title, shortcut = "lasso", "Lasso", "L"
    options = ("label", "paint_over")
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, context: EditContext) -> None:
        super().__init__(context)
        self._points: list[tuple[float, float, float]] = []
        self._view: Any = None
        self._curve: Optional[pg.PlotCurveItem] = None
        self._axis = 0

    @property
    def drawing(self) -> bool:
        return bool(self._points)

    def press(self, event: VoxelMouseEvent) -> None:
        self.cancel()
        if self.editor is None:
            return
        self._axis = self.plane_axis(event)
        self.settings.painted_axis = self._axis
        self._view = event.view
        self._points = [event.zyx]
        if self._view is not None:
            self._curve = pg.PlotCurveItem(pen=pg.mkPen((255, 255, 255), width=1, cosmetic=True))
            self._curve.setZValue(30)
            self._view.add_item(self._curve)

    def drag(self, event: VoxelMouseEvent) -> None:
        if not self._points:
            return
        self._points.append(event.zyx)
        if self._curve is not None and self._view is not None:
            pts = [self._view.scene_point(p) for p in self._points + self._points[:1]]
            self._curve.setData([p.x() for p in pts], [p.y() for p in pts])

    def release(self, event: VoxelMouseEvent) -> None:
        if not self._points:
            return
        self._points.append(event.zyx)
        points, axis = self._points, self._axis
        self.cancel()
        ed = self.editor
        if ed is None or len(points) < 3:
            return
        keep = [i for i in range(3) if i != axis]
        verts = np.array([[p[keep[0]], p[keep[1]]] for p in points], dtype=float)
        index = int(round(points[0][axis]))
        region = ops.polygon_region(ed.shape, verts, axis, index)
        s = self.settings
        ed.paint(self.visible_only(region, s.label), s.label, name=self.step_name(), mode=s.mode,
                 over_label=s.over_label)

    def cancel(self) -> bool:
        had = bool(self._points)
        self._points = []
        if self._curve is not None:
            scene = self._curve.scene()
            if self._view is not None:
                self._view.view_box.removeItem(self._curve)
            elif scene is not None:
                scene.removeItem(self._curve)
            self._curve = None
        return had
