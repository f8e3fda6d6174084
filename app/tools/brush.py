"""Brush, 3D brush, eraser and threshold brush: one tool class, four configurations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from PySide6.QtCore import Qt

from engine.editing import Stroke, ops

from ..views.tools import VoxelMouseEvent
from .base import EditContext, EditTool


@dataclass(frozen=True)
class BrushConfig:
    """How a brush paints: ``sphere`` (3D ball instead of a disk on the slice), ``erase``
    (paint 0) and ``threshold`` (only voxels inside the settings' HU range)."""

    name: str
    title: str
    shortcut: str
    sphere: bool = False
    erase: bool = False
    threshold: bool = False


BRUSHES: tuple[BrushConfig, ...] = (
    BrushConfig("brush", "Brush", "B"),
    BrushConfig("brush3d", "3D brush", "Shift+B", sphere=True),
    BrushConfig("eraser", "Eraser", "E", erase=True),
    BrushConfig("threshold", "Threshold brush", "T", threshold=True),
)


class BrushTool(EditTool):
    """Press-drag-release paints one stroke (one undo step); Esc while drawing drops it.

    Successive drag events are joined by :func:`engine.editing.ops.brush_segment`
    capsules, so fast moves leave no gaps.
    """

    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, context: EditContext, config: BrushConfig) -> None:
        super().__init__(context)
        self.config = config
        self.name, self.title, self.shortcut = config.name, config.title, config.shortcut
        self._stroke: Optional[Stroke] = None
        self._last: Optional[tuple[float, float, float]] = None
        self._axis = 0

    @property
    def drawing(self) -> bool:
        return self._stroke is not None and not self._stroke.closed

    def press(self, event: VoxelMouseEvent) -> None:
        ed = self.editor
        if ed is None:
            return
        if self.drawing:  # a release was lost: close the previous stroke first
            self._finish()
        value = 0 if self.config.erase else self.settings.label
        self._value = value
        self._axis = self.plane_axis(event)
        self._stroke = ed.stroke(self.step_name(value) if not self.config.erase else "Eraser")
        self._last = event.zyx
        self._paint(event.zyx, event.zyx)

    def drag(self, event: VoxelMouseEvent) -> None:
        if not self.drawing or self._last is None:
            return
        self._paint(self._last, event.zyx)
        self._last = event.zyx

    def release(self, event: VoxelMouseEvent) -> None:
        if not self.drawing:
            return
        if self._last is not None and tuple(self._last) != tuple(event.zyx):
            self._paint(self._last, event.zyx)
        self._finish()

    def cancel(self) -> bool:
        if not self.drawing:
            return False
        assert self._stroke is not None
        self._stroke.cancel()
        self._stroke, self._last = None, None
        return True

    # -- helpers --------------------------------------------------------------
    def _finish(self) -> None:
        assert self._stroke is not None
        self._stroke.commit()
        self._stroke, self._last = None, None

    def _paint(self, p0: tuple[float, float, float], p1: tuple[float, float, float]) -> None:
        ed, s = self.editor, self.settings
        assert ed is not None and self._stroke is not None
        plane_axis = None if self.config.sphere else self._axis
        region = ops.brush_segment(ed.shape, ed.spacing, p0, p1, s.radius_mm, plane_axis)
        if self.config.erase:
            mode = "label" if s.mode == "label" else "everything"
        else:
            mode = s.mode
        hu = s.hu_range if self.config.threshold and ed.intensities is not None else None
        self._stroke.paint(region, self._value, mode=mode, over_label=s.over_label, hu_range=hu)
