"""One plane of the scan: CT image, label overlay, crosshair and captions.

:class:`SliceView` is a ``pyqtgraph.GraphicsLayoutWidget`` holding one
:class:`SliceViewBox` with two ``ImageItem`` objects (STYLE rule 7): the CT slice as
``float32`` with explicit levels (``autoLevels=False``) and the label slice as ``uint8``
through the label layer's 256-entry RGBA lookup table. Slices are numpy views of the
volume (:func:`engine.display.extract`); the only copy is the ``float32`` conversion of the
one slice shown. Scene coordinates are millimetres (each image is scaled by its pixel
spacing), so the locked 1:1 aspect shows true proportions.

Access points for flows
-----------------------
``view.plane``, ``view.view_box``, ``view.ct_item``, ``view.label_item``,
``view.mouse_event`` (signal carrying :class:`app.state.interaction.VoxelMouseEvent` for
left-button press/drag/release and for hover), ``view.tool`` (set through
:meth:`app.views.view_set.ViewSet.set_tool`), ``view.add_item(item)`` to draw in mm
coordinates, ``view.voxel_at(scene_pos)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPen, QTransform

from engine.display import Plane, WindowLevel, display_shape, display_spacing, edge_letters, extract, outline, \
    pixel_spacing, slab_projection, slab_range, slice_axis, to_display, to_voxel, window_text
from engine.display.reading import tilted_note
from engine.io.orientation import missing_slices

from ..state.interaction import ViewTool, VoxelMouseEvent
from ..state.label_layer import LabelLayer
from ..state.session import Session
from .overlay_text import ViewCaptions

_LEFT = Qt.MouseButton.LeftButton
_WHEEL_STEP = 120  # one notch of a mouse wheel, in 1/8 degree


def scan_title(volume: Any) -> str:
    """Short description of a scan for the view corner: series description or file name."""
    desc = str(volume.meta.get("series_description", "") or "").strip()
    if desc:
        return " ".join(desc.split())
    if volume.source:
        return Path(volume.source).name
    return "Synthetic phantom" if volume.format == "phantom" else ""


class SliceViewBox(pg.ViewBox):
    """A ViewBox whose mouse gestures suit a slice viewer.

    Wheel scrolls slices (wheel down: next slice, as Page Down), Ctrl+wheel zooms,
    Shift+wheel asks for a brush size change (``brush_wheel``), left button goes to the view's tool,
    Shift+left-drag changes window/level, right-drag zooms, middle-drag pans,
    double-click toggles the one-view layout.
    """

    def __init__(self, owner: "SliceView") -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False, defaultPadding=0.0)
        self._owner = owner
        self._wheel_rest = 0
        self._window_drag = False

    def wheelEvent(self, ev: Any, axis: Optional[int] = None) -> None:  # noqa: N802 (Qt API)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        self._wheel_rest += ev.delta()  # Shift+wheel may come as a horizontal wheel: delta() covers both
        steps = int(self._wheel_rest / _WHEEL_STEP)
        if steps:
            self._wheel_rest -= steps * _WHEEL_STEP
            if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self._owner.brush_wheel.emit(steps)  # up: larger
            else:
                self._owner.step_slice(-steps)  # down (negative delta): next slice
        ev.accept()

    def mouseDragEvent(self, ev: Any, axis: Optional[int] = None) -> None:  # noqa: N802
        if ev.button() != _LEFT:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        if ev.isStart():  # the gesture is chosen when the drag starts and kept to its end
            self._window_drag = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if self._window_drag:
            d = ev.screenPos() - ev.lastScreenPos()
            self._owner.drag_window(d.x(), d.y())
            return
        if ev.isStart():
            self._owner.send_tool_event("press", ev.buttonDownPos(_LEFT), ev)
        kind = "release" if ev.isFinish() else "drag"
        self._owner.send_tool_event(kind, ev.pos(), ev)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802
        if ev.button() != _LEFT:
            super().mouseClickEvent(ev)
            return
        ev.accept()
        if ev.double():
            self._owner.toggle_single()
            return
        self._owner.send_tool_event("press", ev.pos(), ev)
        self._owner.send_tool_event("release", ev.pos(), ev)


class SliceView(pg.GraphicsLayoutWidget):
    """A view of one plane that mirrors the :class:`Session` and :class:`LabelLayer`."""

    mouse_event = Signal(object)
    #: Shift+wheel notches (positive: wheel up, a larger brush)
    brush_wheel = Signal(int)

    def __init__(self, plane: Plane, session: Session, labels: LabelLayer, parent: Any = None) -> None:
        super().__init__(parent)
        self.plane = Plane(plane)
        self.session = session
        self.labels = labels
        self.tool: Optional[ViewTool] = None
        self.setBackground("k")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 120)
        self.ci.setContentsMargins(0, 0, 0, 0)
        self.view_box = SliceViewBox(self)
        self.addItem(self.view_box)
        self.ct_item = pg.ImageItem(axisOrder="row-major")
        self.label_item = pg.ImageItem(axisOrder="row-major")
        self.label_item.setZValue(10)
        self.view_box.addItem(self.ct_item)
        self.view_box.addItem(self.label_item)
        pen = QPen(QColor(0, 200, 255, 170))
        pen.setCosmetic(True)
        pen.setWidthF(1.0)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for line in (self.vline, self.hline):
            line.setZValue(20)
            self.view_box.addItem(line, ignoreBounds=True)
        self.captions = ViewCaptions(self.view_box)
        self.view_box.sigResized.connect(self._relayout_captions)
        self.scene().sigMouseMoved.connect(self._on_hover)
        self._index = -1
        self._shown_outline = False
        self._spacing = (1.0, 1.0)
        session.volume_changed.connect(self._on_volume)
        session.cursor_changed.connect(self._on_cursor)
        session.window_changed.connect(self._on_window)
        session.crosshair_toggled.connect(self._on_crosshair_toggled)
        session.slab_changed.connect(self._on_slab)
        labels.changed.connect(self._on_labels_changed)
        labels.appearance_changed.connect(self._on_appearance)
        self._on_volume(session.volume)
        self._on_crosshair_toggled(session.crosshair_visible)

    # -- public API -----------------------------------------------------------
    @property
    def index(self) -> int:
        """Slice index shown (along the plane's axis); -1 without a scan."""
        return self._index

    @property
    def slice_count(self) -> int:
        vol = self.session.volume
        return 0 if vol is None else int(vol.shape[slice_axis(self.plane)])

    def add_item(self, item: Any) -> None:
        """Draw ``item`` in the view's scene coordinates (millimetres from the image corner)."""
        self.view_box.addItem(item, ignoreBounds=True)

    def step_slice(self, delta: int) -> None:
        """Show the slice ``delta`` steps further (positive: next index)."""
        self.session.step_cursor(slice_axis(self.plane), delta)

    def reset_view(self) -> None:
        """Fit the whole slice in the view (undo zoom and pan)."""
        if self.session.volume is not None:
            rows, cols = display_shape(self.session.volume.shape, self.plane)
            self.view_box.setRange(QRectF(0, 0, cols * self._spacing[1], rows * self._spacing[0]), padding=0.0)

    def voxel_at(self, view_pos: QPointF) -> tuple[float, float, float]:
        """Fractional voxel ``(z, y, x)`` at ``view_pos`` (ViewBox data coordinates, mm)."""
        vol = self.session.volume
        assert vol is not None
        row = view_pos.y() / self._spacing[0] - 0.5
        col = view_pos.x() / self._spacing[1] - 0.5
        return to_voxel(self.plane, max(self._index, 0), row, col, vol.shape)

    def scene_point(self, zyx: tuple[float, float, float]) -> QPointF:
        """Centre of voxel ``zyx`` in the view's data coordinates (mm)."""
        vol = self.session.volume
        assert vol is not None
        _, row, col = to_display(self.plane, zyx, vol.shape)
        return QPointF((col + 0.5) * self._spacing[1], (row + 0.5) * self._spacing[0])

    def display_point(self, row: float, col: float) -> QPointF:
        """Centre of display pixel ``(row, col)`` in the view's data coordinates (mm)."""
        return QPointF((col + 0.5) * self._spacing[1], (row + 0.5) * self._spacing[0])

    def send_tool_event(self, kind: str, local_pos: QPointF, ev: Any) -> None:
        """Turn a ViewBox-local position into a :class:`VoxelMouseEvent` for the tool and listeners."""
        if self.session.volume is None:
            return
        zyx = self.voxel_at(self.view_box.mapToView(local_pos))
        event = VoxelMouseEvent(self.plane, zyx, kind, ev.button(), ev.modifiers(), self)
        if self.tool is not None:
            getattr(self.tool, kind)(event)
        self.mouse_event.emit(event)

    def drag_window(self, dx: float, dy: float) -> None:
        """Change window/level by a mouse drag: right widens the window, down raises the level."""
        wl: WindowLevel = self.session.window
        scale = max(wl.width / 300.0, 0.5)
        self.session.set_window(wl.dragged(dx * scale, dy * scale))

    def toggle_single(self) -> None:
        """Show only this view, or all three again."""
        single = self.session.layout == self.plane.value
        self.session.set_layout("three" if single else self.plane.value)

    # -- model -> view --------------------------------------------------------
    def _on_volume(self, vol: Any) -> None:
        self._index = -1
        if vol is None:
            self.ct_item.clear()
            self.label_item.clear()
            self.captions.set_letters(None)
            self.captions.top_left.set_text("No scan open")
            self.captions.bottom_left.set_text("")
            self.captions.top_right.set_text("")
            return
        shown = display_spacing(vol.shape, vol.spacing, vol.geometry.spacing_known)
        self._spacing = pixel_spacing(shown, self.plane)
        # image pixel (col, row) -> (col * sx, row * sy) mm, set once per scan whatever the image
        scale = QTransform.fromScale(self._spacing[1], self._spacing[0])
        self.ct_item.setTransform(scale)
        self.label_item.setTransform(scale)
        self.captions.set_letters(edge_letters(self.plane))
        if self.plane is Plane.AXIAL:
            self.captions.top_right.set_text(scan_title(vol))
        self._show_slice(self.session.cursor)
        self._on_window(self.session.window)
        self.reset_view()

    def _on_crosshair_toggled(self, visible: bool) -> None:
        self.vline.setVisible(visible)
        self.hline.setVisible(visible)

    def _on_cursor(self, zyx: tuple[int, int, int]) -> None:
        if self.session.volume is None:
            return
        if zyx[slice_axis(self.plane)] != self._index:
            self._show_slice(zyx)
        p = self.scene_point(zyx)
        self.vline.setPos(p.x())
        self.hline.setPos(p.y())

    def _show_slice(self, zyx: tuple[int, int, int]) -> None:
        vol = self.session.volume
        self._index = int(zyx[slice_axis(self.plane)])
        slab = self.session.slab
        if slab.mode:
            along = vol.spacing[slice_axis(self.plane)] if vol.geometry.spacing_known else 1.0
            ct = slab_projection(vol.array, self.plane, self._index, slab.thickness, along, slab.mode)
        else:
            ct = extract(vol.array, self.plane, self._index)
        self.ct_item.setImage(np.ascontiguousarray(ct, dtype=np.float32), autoLevels=False,
                              levels=self.session.window.levels)
        self._update_labels()
        self._update_slice_caption()

    def _update_labels(self) -> None:
        arr = self.labels.array
        if self.session.volume is None or arr.shape != self.session.volume.shape:
            self.label_item.clear()
            return
        lab = extract(arr, self.plane, self._index)
        if not lab.any():  # most slices of a scan hold no label: draw nothing for them
            self.label_item.setVisible(False)
            return
        self.label_item.setVisible(True)
        self._shown_outline = self.labels.outline
        lab = outline(lab) if self._shown_outline else np.ascontiguousarray(lab)
        self.label_item.setImage(lab, autoLevels=False, levels=None, lut=self.labels.lut)

    def _missing(self, vol: Any) -> frozenset:
        """The slices of ``vol`` its reader filled in for missing images (cached per volume)."""
        if getattr(self, "_missing_for", None) is not vol:
            self._missing_for, self._missing_set = vol, missing_slices(vol.meta or {})
        return self._missing_set

    def _update_slice_caption(self) -> None:
        vol = self.session.volume
        axis = slice_axis(self.plane)
        centre = [s / 2.0 for s in vol.shape]
        centre[axis] = self._index
        world = vol.geometry.index_to_world(tuple(centre))
        coord = "xyz"[2 - axis]
        text = f"{self.plane.value.capitalize()}  {self._index + 1} / {vol.shape[axis]}"
        if vol.geometry.spacing_known:
            text += f"\n{coord} = {world[2 - axis]:.1f} mm"
            if tilted_note(vol.meta):
                text += f" ({tilted_note(vol.meta)})"
        elif self.plane is not Plane.AXIAL:
            text += "\nspacing unknown: not to scale"
        if vol.is_hu and (vol.meta or {}).get("hu_scale_doubtful"):
            text += "\nvalues may not be HU (see Notices)"
        if (axis, self._index) in self._missing(vol):
            text += "\nMISSING SLICE: no image here (shown as air)"
        if axis == 0 and self._index in ((vol.meta or {}).get("filled") or {}).get("slices", ()):
            text += "\nNaN/inf voxels filled on this slice: not image data (see Notices)"
        slab = self.session.slab
        if slab.mode:  # what the slab holds here, not the thickness asked for (3 mm slices: 9 mm for "10 mm")
            along = vol.spacing[axis] if vol.geometry.spacing_known else 1.0
            lo, hi = slab_range(self._index, vol.shape[axis], slab.thickness, along)
            held = f"{(hi - lo) * along:.3g} mm, " if vol.geometry.spacing_known else ""
            text += f"\n{'MIP' if slab.mode == 'mip' else 'MinIP'} {held}{hi - lo} slice{'s' if hi - lo != 1 else ''}"
        self.captions.top_left.set_text(text)

    def _on_slab(self, _slab: Any) -> None:
        if self._index >= 0:
            self._show_slice(self.session.cursor)

    def _on_window(self, wl: WindowLevel) -> None:
        if self.session.volume is None:
            return
        self.ct_item.setLevels(wl.levels)
        self.captions.bottom_left.set_text(window_text(wl, self.session.value_decimals))

    def _on_labels_changed(self, bbox: Optional[tuple[int, ...]]) -> None:
        if self._index < 0:
            return
        if bbox is not None:
            axis = slice_axis(self.plane)
            if not bbox[2 * axis] <= self._index < bbox[2 * axis + 1]:
                return
        self._update_labels()

    def _on_appearance(self) -> None:
        if self._index < 0:
            return
        if self.labels.outline or self._shown_outline or self.label_item.image is None:
            self._update_labels()
        else:
            self.label_item.setLookupTable(self.labels.lut)

    def _relayout_captions(self) -> None:
        self.captions.relayout(self.view_box.boundingRect())

    # -- input ----------------------------------------------------------------
    def _on_hover(self, scene_pos: QPointF) -> None:
        if self.session.volume is None or not self.view_box.sceneBoundingRect().contains(scene_pos):
            return
        zyx = self.voxel_at(self.view_box.mapSceneToView(scene_pos))
        self.mouse_event.emit(VoxelMouseEvent(self.plane, zyx, "hover", Qt.MouseButton.NoButton,
                                              Qt.KeyboardModifier.NoModifier, self))

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        # Down, Right, Page Down and the wheel turned down all go to the next slice (index + 1)
        steps = {Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_Left: -1,
                 Qt.Key.Key_PageDown: 10, Qt.Key.Key_PageUp: -10}
        key = Qt.Key(ev.key())
        if key in steps and self.session.volume is not None:
            self.step_slice(steps[key])
            ev.accept()
            return
        super().keyPressEvent(ev)

    def enterEvent(self, ev: Any) -> None:  # noqa: N802 (Qt API)
        # keys act on the view under the mouse, as in most CT viewers
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        super().enterEvent(ev)
