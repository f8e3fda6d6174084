"""Ruler (R): drag a line on a slice; its length shows in mm (pixels when the spacing is unknown)."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt

from engine.display import to_display

from ..state.interaction import ViewTool, VoxelMouseEvent
from ..state.measurements import Measurements


class RulerTool(ViewTool):
    """Press-drag-release draws one measurement (the plane's last one is replaced); Esc while dragging drops it."""

    name, title, shortcut = "ruler", "Ruler", "R"
    cursor = Qt.CursorShape.CrossCursor
    #: the :class:`Measurements` kind this tool makes
    kind = "ruler"

    def __init__(self, measurements: Measurements) -> None:
        self.measurements = measurements
        self._start: Optional[tuple[int, float, float]] = None
        self._plane = None

    @property
    def drawing(self) -> bool:
        return self._start is not None

    def _display(self, event: VoxelMouseEvent) -> Optional[tuple[int, float, float]]:
        volume = self.measurements.session.volume
        return None if volume is None else to_display(event.plane, event.zyx, volume.shape)

    def press(self, event: VoxelMouseEvent) -> None:
        self._start = self._display(event)
        self._plane = event.plane

    def drag(self, event: VoxelMouseEvent) -> None:
        here = self._display(event)
        if self._start is None or here is None or event.plane != self._plane:
            return
        index, r0, c0 = self._start
        self.measurements.set(self.kind, event.plane, index, (r0, c0), (here[1], here[2]))

    def release(self, event: VoxelMouseEvent) -> None:
        if self._start is None:
            return
        here = self._display(event)
        if here is not None and event.plane == self._plane and (here[1], here[2]) != self._start[1:]:
            self.drag(event)
        self._start = None

    def cancel(self) -> bool:
        """Esc: drop the measurement being dragged; True when there was one."""
        if self._start is None:
            return False
        self._start = None
        self.measurements.clear(self._plane)
        return True

    def deactivate(self) -> None:
        self._start = None
