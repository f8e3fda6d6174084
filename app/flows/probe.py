"""The probe: intensity and coordinates under the mouse, shown in the status bar."""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel

from engine.display import slice_axis
from engine.display.reading import FILLED, filled_voxel, tilted_note
from engine.types import Volume

from ..context import AppContext
from ..state.interaction import VoxelMouseEvent


def probe_text(volume: Volume, zyx: tuple[int, int, int], label: Optional[int] = None,
               label_name: str = "", decimals: int = 0) -> str:
    """Status text for voxel ``zyx``: column, row and slice counted from 1 (as the views' captions), LPS mm,
    value (to ``decimals``: :func:`engine.display.value_decimals`; "HU?" where the reader doubted the scale, as
    the ROI says) and label."""
    z, y, x = zyx
    value = volume.array[z, y, x]
    unit = ("HU?" if (volume.meta or {}).get("hu_scale_doubtful") else "HU") if volume.is_hu else "grey"
    text = f"x {x + 1}  y {y + 1}  slice {z + 1} / {volume.shape[0]}"
    if volume.geometry.spacing_known:
        wx, wy, wz = volume.geometry.index_to_world((z, y, x))
        tilted = tilted_note(volume.meta)
        text += f"   |   {wx:.1f}, {wy:.1f}, {wz:.1f} mm (LPS{' ' + tilted if tilted else ''})"
    text += f"   |   {float(value):.{decimals}f} {unit}"
    filled = filled_voxel(volume.meta, volume.shape, (z, y, x), float(value))
    if filled:
        text += (" (a NaN/inf voxel, filled: not image data)" if filled == FILLED else
                 " (may be a filled NaN/inf voxel: not image data)")
    if label:
        text += f"   |   {label_name or 'label'} ({label})"
    return text


class ProbeFlow(QObject):
    """Listens to hover events of every view and writes :func:`probe_text` to :attr:`label` (the status bar's)."""

    def __init__(self, ctx: AppContext, views: Any) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.label = QLabel()
        self.label.setMinimumWidth(420)
        self._last: Optional[VoxelMouseEvent] = None
        for view in views:
            view.mouse_event.connect(self._on_mouse)
        ctx.session.volume_changed.connect(self._forget)  # no stale value after an open
        ctx.session.cursor_changed.connect(self._on_cursor)

    def _forget(self, _volume: Any = None) -> None:
        self._last = None
        self.label.clear()

    def _on_cursor(self, cursor: Any) -> None:
        """The slice changed under a mouse that did not move (wheel, arrow keys): the voxel under it is another
        (QA pass: the probe kept the value of the slice scrolled away from)."""
        last = self._last
        if last is None:
            return
        axis = slice_axis(last.plane)
        zyx = list(last.zyx)
        zyx[axis] = float(cursor[axis])
        self._show(tuple(zyx))

    def _on_mouse(self, event: VoxelMouseEvent) -> None:
        self._last = event
        self._show(event.zyx)

    def _show(self, point: tuple[float, float, float]) -> None:
        volume = self.ctx.session.volume
        if volume is None:
            return
        zyx = tuple(int(round(v)) for v in point)
        if not all(0 <= v < n for v, n in zip(zyx, volume.shape)):
            self.label.setText("")
            return
        labels = self.ctx.labels
        value = int(labels.array[zyx]) if labels.array.shape == volume.shape else 0
        name = ""
        if value:
            try:
                name = labels.table[value].name
            except KeyError:
                name = ""
        self.label.setText(probe_text(volume, zyx, value, name, self.ctx.session.value_decimals))
