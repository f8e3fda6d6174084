"""Draws the measurements of :class:`app.state.measurements.Measurements` in each slice view.

A ruler is a yellow line, an ROI a yellow ellipse or outline; the numbers sit beside them. A
measurement shows only on the slice it was made on.
"""

from __future__ import annotations

from typing import Any, Iterable

import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsLineItem, QGraphicsPathItem

from ..state.measurements import Measurement, Measurements

_COLOR = QColor(255, 220, 0)


class MeasureOverlay:
    """The ruler and ROI items of one slice view."""

    def __init__(self, view: Any, measurements: Measurements) -> None:
        self.view = view
        self.measurements = measurements
        pen = QPen(_COLOR)
        pen.setCosmetic(True)
        pen.setWidthF(2.0)
        self.line = QGraphicsLineItem()
        self.ellipse = QGraphicsEllipseItem()
        self.outline = QGraphicsPathItem()
        self.texts = {kind: pg.TextItem(color=_COLOR, anchor=anchor, fill=pg.mkBrush(0, 0, 0, 150))
                      for kind, anchor in (("ruler", (0, 1)), ("ellipse", (0, 0)), ("freehand", (0, 0)))}
        for item in (self.line, self.ellipse, self.outline):
            item.setPen(pen)
        for item in (self.line, self.ellipse, self.outline, *self.texts.values()):
            item.setZValue(30)
            item.setVisible(False)
            view.add_item(item)
        measurements.changed.connect(self._on_changed)
        view.session.cursor_changed.connect(lambda _c: self.update())

    def _on_changed(self, plane: Any) -> None:
        if plane is None or plane == self.view.plane:
            self.update()

    def update(self) -> None:
        """Mirror the measurements of this view's plane on the slice shown."""
        shown = {m.kind: m for m in self.measurements.items(self.view.plane) if m.index == self.view.index}
        self._show_ruler(shown.get("ruler"))
        self._show_ellipse(shown.get("ellipse"))
        self._show_outline(shown.get("freehand"))

    def _show_ruler(self, m: Measurement | None) -> None:
        text = self.texts["ruler"]
        self.line.setVisible(m is not None)
        text.setVisible(m is not None)
        if m is None:
            return
        a, b = self.view.display_point(*m.p0), self.view.display_point(*m.p1)
        self.line.setLine(a.x(), a.y(), b.x(), b.y())
        text.setText(m.text)
        text.setPos(b)

    def _show_ellipse(self, m: Measurement | None) -> None:
        text = self.texts["ellipse"]
        self.ellipse.setVisible(m is not None)
        text.setVisible(m is not None)
        if m is None:
            return
        a, b = self.view.display_point(*m.p0), self.view.display_point(*m.p1)
        rect = QRectF(a, b).normalized()
        self.ellipse.setRect(rect)
        text.setText(m.text)
        text.setPos(rect.bottomLeft())

    def _show_outline(self, m: Measurement | None) -> None:
        text = self.texts["freehand"]
        self.outline.setVisible(m is not None)
        text.setVisible(m is not None)
        if m is None:
            return
        path = QPainterPath()
        path.addPolygon(QPolygonF([self.view.display_point(r, c) for r, c in m.points]))
        path.closeSubpath()
        self.outline.setPath(path)
        text.setText(m.text)
        text.setPos(path.boundingRect().bottomLeft())


def add_overlays(views: Iterable[Any], measurements: Measurements) -> list[MeasureOverlay]:
    """One :class:`MeasureOverlay` per view."""
    return [MeasureOverlay(v, measurements) for v in views]
