"""Fill (F): click a region of the slice to give its connected voxels of the same label the current label.

:class:`FloodFillTool` is also the base of the 3D fill (:mod:`.fill3d`). A fill that looks
like a leak (it reaches the image edge, or covers a large part of the slice or scan) asks
first, with its size in mL and slices (:func:`engine.editing.assist.leak_question`).
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt

from engine.editing import LabelEditor, ops
from engine.editing.assist import leak_question
from engine.errors import LungLensError
from engine.labels import DEFAULT_TABLE

from ..state.interaction import VoxelMouseEvent
from .base import EditTool

#: a 3D fill may cover at most this fraction of the volume (a click in the open background)
MAX_3D_FRACTION = 0.25


class FloodFillTool(EditTool):
    """2D fill of the clicked slice's connected region; one undo step."""

    name, title, shortcut = "fill", "Fill", "F"
    options = ("label", "paint_over")
    cursor = Qt.CursorShape.PointingHandCursor
    #: fill the whole connected region in 3D
    three_d = False

    def press(self, event: VoxelMouseEvent) -> None:
        ed = self.editor
        if ed is None:
            return
        seed = event.voxel
        if not all(0 <= seed[i] < ed.shape[i] for i in range(3)):
            return
        held = int(ed.labels[tuple(seed)])
        if held and held != self.settings.label and not self.context.labels.is_visible(held):
            self.context.report_error(f"Nothing was filled: the region you clicked holds "
                                      f"{DEFAULT_TABLE[held].name if held in DEFAULT_TABLE.values else held}, which "
                                      "is hidden. Show it (Labels panel, or H) to fill over it.")
            return
        axis = None if self.three_d else self.plane_axis(event)
        limit = int(ed.labels.size * MAX_3D_FRACTION) if self.three_d else None

        def compute() -> ops.Region | LungLensError:
            try:
                return ops.flood_fill(ed.labels, seed, axis, max_voxels=limit)
            except LungLensError as exc:
                return exc

        s = self.settings
        with_ = (s.label, s.mode, s.over_label)  # as set at the click, whatever is chosen meanwhile
        if self.three_d and self.context.off_thread is not None:  # about a second for a lung: not on the GUI
            self.context.off_thread(self.title, compute, lambda region: self._fill(ed, region, axis, limit, with_))
        else:
            self._fill(ed, compute(), axis, limit, with_)

    def _fill(self, ed: LabelEditor, region: ops.Region | LungLensError, axis: Optional[int],
              limit: Optional[int], with_: tuple[int, str, Optional[int]]) -> None:
        known = ed.geometry.spacing_known
        if isinstance(region, LungLensError):
            if limit is None:
                self.context.report_error(str(region))
                return
            size = f"{limit * ed.geometry.voxel_volume_ml:.0f} mL, " if known else ""
            self.context.report_error(
                f"Nothing was filled: this 3D fill would spread over more than {size}{MAX_3D_FRACTION:.0%} of "
                "the scan, so the region you clicked is open. Close its outline, or use the 2D fill (F).")
            return
        label, mode, over = with_
        region = self.visible_only(region, label)  # before the leak question: its size is what gets painted
        question = leak_question(region, ed.shape, ed.spacing if known else None, axis)
        if question and self.context.confirm is not None and not self.context.confirm(question):
            return
        ed.paint(region, label, name=self.step_name(label), mode=mode, over_label=over)
