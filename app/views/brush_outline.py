"""The brush outline: a circle of the brush's size that follows the mouse in each view.

View coordinates are millimetres, so the circle's radius is the brush radius in mm and
it shows the true painted area on any plane and spacing.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem

from ..state.interaction import VoxelMouseEvent
from ..state.tool_settings import ToolSettings


class BrushOutline:
    """One ellipse item per view; shown while ``active()`` is true and the mouse is over the view."""

    def __init__(self, views: Any, settings: ToolSettings, active: Callable[[], bool]) -> None:
        self.settings = settings
        self.active = active
        self.items: dict[Any, QGraphicsEllipseItem] = {}
        pen = QPen(QColor(255, 255, 255, 200))
        pen.setCosmetic(True)
        pen.setWidthF(1.0)
        for view in views:
            item = QGraphicsEllipseItem()
            item.setPen(pen)
            item.setZValue(25)
            item.setVisible(False)
            view.add_item(item)
            self.items[view] = item
            view.mouse_event.connect(lambda e, v=view: self.follow(v, e))
        settings.changed.connect(self.hide)

    def follow(self, view: Any, event: VoxelMouseEvent) -> None:
        """Centre the outline of ``view`` on the event's voxel."""
        item = self.items.get(view)
        if item is None:
            return
        if not self.active() or event.kind == "release":
            item.setVisible(False)
            return
        centre = view.scene_point(event.zyx)
        r = self.settings.radius_mm
        item.setRect(QRectF(centre.x() - r, centre.y() - r, 2 * r, 2 * r))
        for other, it in self.items.items():
            it.setVisible(other is view)

    def hide(self) -> None:
        for item in self.items.values():
            item.setVisible(False)
