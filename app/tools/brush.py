"""Brush (B): paint the current label on a disk of the slice, one undo step per stroke.

:class:`BrushTool` is also the base of the 3D brush, the eraser and the threshold brush
(:mod:`.brush3d`, :mod:`.eraser`, :mod:`.threshold`), which only change its flags.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt

from engine.editing import Stroke, ops

from ..state.interaction import VoxelMouseEvent
from .base import EditContext, EditTool


class BrushTool(EditTool):
    """Press-drag-release paints one stroke (one undo step); Esc while drawing drops it.

    Successive drag events are joined by :func:`engine.editing.ops.brush_segment`
    capsules, so fast moves leave no gaps.
    """

    name, title, shortcut = "brush", "Brush", "B"
    options = ("label", "radius", "paint_over")
    cursor = Qt.CursorShape.CrossCursor
    #: a 3D ball instead of a disk on the slice
    sphere = False
    #: paint 0
    erase = False
    #: only voxels inside the settings' HU range
    threshold = False

    def __init__(self, context: EditContext) -> None:
        super().__init__(context)
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
        value = 0 if self.erase else self.settings.label
        self._value = value
        self._axis = self.plane_axis(event)
        if not self.sphere:
            self.settings.painted_axis = self._axis
        self._stroke = ed.stroke(self.step_name(value) if not self.erase else "Eraser")
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
        plane_axis = None if self.sphere else self._axis
        region = ops.brush_segment(ed.shape, ed.spacing, p0, p1, s.radius_mm, plane_axis)
        if self.erase:
            mode = "label" if s.mode == "label" else "everything"
        else:
            mode = s.mode
        hu = s.hu_range if self.threshold and ed.intensities is not None else None
        self._stroke.paint(self.visible_only(region, self._value), self._value, mode=mode, over_label=s.over_label,
                           hu_range=hu)
