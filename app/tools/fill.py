"""Flood fill: click a region to give its connected voxels of the same label the current label."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.editing import ops
from engine.errors import LungLensError

from ..views.tools import VoxelMouseEvent
from .base import EditContext, EditTool

#: a 3D fill may cover at most this fraction of the volume (a click in the open background)
MAX_3D_FRACTION = 0.25


class FloodFillTool(EditTool):
    """2D fill (the clicked slice) or 3D fill (the whole connected region); one undo step."""

    cursor = Qt.CursorShape.PointingHandCursor

    def __init__(self, context: EditContext, three_d: bool = False) -> None:
        super().__init__(context)
        self.three_d = three_d
        self.name = "fill3d" if three_d else "fill"
        self.title = "3D fill" if three_d else "Fill"
        self.shortcut = "Shift+F" if three_d else "F"

    def press(self, event: VoxelMouseEvent) -> None:
        ed = self.editor
        if ed is None:
            return
        seed = event.voxel
        if not all(0 <= seed[i] < ed.shape[i] for i in range(3)):
            return
        try:
            limit = int(ed.labels.size * MAX_3D_FRACTION) if self.three_d else None
            region = ops.flood_fill(ed.labels, seed, None if self.three_d else self.plane_axis(event),
                                    max_voxels=limit)
        except LungLensError as exc:
            self.context.report_error(str(exc))
            return
        s = self.settings
        ed.paint(region, s.label, name=self.step_name(), mode=s.mode, over_label=s.over_label)
