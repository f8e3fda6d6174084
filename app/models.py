"""Application state: the open scan, the cursor, the display window and the label layer.

Models own state and announce changes with Qt signals; widgets only mirror them and
write back through the setters (STYLE rule 2). Models are mutated on the GUI thread only.

:class:`Session`
    the open :class:`engine.types.Volume`, the cursor ``(z, y, x)`` shared by all views
    (the linked crosshair), the window/level and the view layout.
:class:`LabelLayerModel`
    a ``uint8`` ``(z, y, x)`` label array over the scan, its label table, opacity,
    hidden labels and fill/outline mode, with per-label voxel counts kept up to date.

Mutation API of :class:`LabelLayerModel` (the only ways to change the label array):

``set_array(array, name)``
    replace the whole array (loaded file, AI result); emits ``changed(None)``.
``write(bbox, values)``
    write a block: ``bbox`` is ``(z0, z1, y0, y1, x0, x1)`` (half-open) and ``values``
    a ``uint8`` array of the box's shape; returns the previous values of the box (for
    undo) and emits ``changed(bbox)``.
``reset(shape)``
    an empty (all zero) layer for a new scan.

Editing layers (undo, journal) wrap ``write``; nobody writes into ``array`` directly.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.display import PRESETS, WindowLevel, default_window, label_counts, label_lut
from engine.errors import GeometryMismatchError
from engine.labels import DEFAULT_TABLE, LabelTable
from engine.types import Volume

BBox = tuple[int, int, int, int, int, int]

#: view layouts: all three planes, or one plane filling the view area
LAYOUTS = ("three", "axial", "coronal", "sagittal")


class Session(QObject):
    """The open scan with its cursor, window/level and layout.

    Signals
    -------
    volume_changed(object)
        a new :class:`Volume` is open (``None`` when closed).
    cursor_changed(object)
        the cursor moved; the argument is the integer ``(z, y, x)`` tuple.
    window_changed(object)
        the :class:`WindowLevel` changed.
    layout_changed(str)
        one of :data:`LAYOUTS`.
    crosshair_toggled(bool)
        the crosshair lines were shown or hidden.
    """

    volume_changed = Signal(object)
    cursor_changed = Signal(object)
    window_changed = Signal(object)
    layout_changed = Signal(str)
    crosshair_toggled = Signal(bool)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._volume: Optional[Volume] = None
        self._cursor: tuple[int, int, int] = (0, 0, 0)
        self._window: WindowLevel = PRESETS["lung"]
        self._layout = "three"
        self._auto_single = False  # True while the layout is "axial" only because of a 1-slice scan
        self._crosshair = True

    # -- volume ---------------------------------------------------------------
    @property
    def volume(self) -> Optional[Volume]:
        """The open scan, or ``None``."""
        return self._volume

    def set_volume(self, volume: Optional[Volume]) -> None:
        """Open ``volume``: cursor to its centre, window to its default; emits all signals.

        A one-slice scan switches the three-view layout to axial only, and the next scan
        with more slices switches it back.
        """
        self._volume = volume
        if volume is not None:
            self._cursor = tuple(int(s) // 2 for s in volume.shape)  # type: ignore[assignment]
            self._window = default_window(volume.is_hu)
            # a single slice has no coronal or sagittal view worth showing
            if volume.shape[0] == 1 and self._layout == "three":
                self.set_layout("axial")
                self._auto_single = True
            elif volume.shape[0] > 1 and self._auto_single:
                self.set_layout("three")
        self.volume_changed.emit(volume)
        self.window_changed.emit(self._window)
        self.cursor_changed.emit(self._cursor)

    # -- cursor ---------------------------------------------------------------
    @property
    def cursor(self) -> tuple[int, int, int]:
        """Integer voxel ``(z, y, x)`` of the linked crosshair."""
        return self._cursor

    def set_cursor(self, z: float, y: float, x: float) -> None:
        """Move the cursor (rounded and clamped to the volume); emits ``cursor_changed`` on change."""
        if self._volume is None:
            return
        shape = self._volume.shape
        new = tuple(int(min(max(round(v), 0), n - 1)) for v, n in zip((z, y, x), shape))
        if new != self._cursor:
            self._cursor = new  # type: ignore[assignment]
            self.cursor_changed.emit(new)

    def step_cursor(self, axis: int, delta: int) -> None:
        """Move the cursor by ``delta`` voxels along array ``axis`` (0 = z, 1 = y, 2 = x)."""
        c = list(self._cursor)
        c[axis] += int(delta)
        self.set_cursor(*c)

    # -- window/level ---------------------------------------------------------
    @property
    def window(self) -> WindowLevel:
        return self._window

    def set_window(self, window: WindowLevel) -> None:
        """Set the display window; emits ``window_changed`` when it differs."""
        if window != self._window:
            self._window = window
            self.window_changed.emit(window)

    def apply_preset(self, key: str) -> None:
        """Apply a preset of :data:`engine.display.PRESETS` (ignored for 8-bit scans)."""
        if self._volume is not None and not self._volume.is_hu:
            return
        self.set_window(PRESETS[key])

    # -- layout ---------------------------------------------------------------
    @property
    def layout(self) -> str:
        return self._layout

    def set_layout(self, layout: str) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self._auto_single = False
        if layout != self._layout:
            self._layout = layout
            self.layout_changed.emit(layout)

    # -- crosshair ------------------------------------------------------------
    @property
    def crosshair_visible(self) -> bool:
        return self._crosshair

    def set_crosshair_visible(self, visible: bool) -> None:
        if bool(visible) != self._crosshair:
            self._crosshair = bool(visible)
            self.crosshair_toggled.emit(self._crosshair)


class LabelLayerModel(QObject):
    """The label map shown over the scan.

    Signals
    -------
    changed(object)
        label voxels changed inside bbox ``(z0, z1, y0, y1, x0, x1)``, or everywhere (``None``).
    appearance_changed()
        LUT, opacity, hidden labels or fill/outline mode changed (voxels did not).
    counts_changed()
        per-label voxel counts changed.
    """

    changed = Signal(object)
    appearance_changed = Signal()
    counts_changed = Signal()

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._array = np.zeros((1, 1, 1), dtype=np.uint8)
        self._counts = label_counts(self._array)
        self.name = ""
        self._table: LabelTable = DEFAULT_TABLE
        self._opacity = 0.5
        self._hidden: frozenset[int] = frozenset()
        self._outline = False
        self._lut = label_lut(self._table, self._opacity)

    # -- voxels ---------------------------------------------------------------
    @property
    def array(self) -> np.ndarray:
        """The ``uint8`` ``(z, y, x)`` label array. Read it freely; change it only via the methods."""
        return self._array

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self._array.shape)  # type: ignore[return-value]

    def reset(self, shape: tuple[int, int, int]) -> None:
        """An empty layer of ``shape`` (for a newly opened scan)."""
        self._array = np.zeros(tuple(int(s) for s in shape), dtype=np.uint8)
        self.name = ""
        self._counts = np.zeros(256, dtype=np.int64)
        self._counts[0] = self._array.size
        self.changed.emit(None)
        self.counts_changed.emit()

    def set_array(self, array: np.ndarray, name: str = "") -> None:
        """Replace the whole label map; it must have the current shape.

        Raises
        ------
        GeometryMismatchError
            When ``array`` does not have the layer's shape.
        """
        arr = np.asarray(array)
        if arr.shape != self._array.shape:
            raise GeometryMismatchError(
                f"The label map has shape {arr.shape} but the scan has {self._array.shape} (z, y, x). "
                "Open labels made for this scan.")
        self._array = np.ascontiguousarray(arr, dtype=np.uint8)
        self.name = name
        self._counts = label_counts(self._array)
        self.changed.emit(None)
        self.counts_changed.emit()

    def write(self, bbox: BBox, values: np.ndarray) -> np.ndarray:
        """Write ``values`` into the half-open box ``bbox``; return the box's previous values.

        Voxel counts are updated incrementally from the box alone.
        """
        z0, z1, y0, y1, x0, x1 = (int(v) for v in bbox)
        sl = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
        block = self._array[sl]
        values = np.asarray(values, dtype=np.uint8)
        if values.shape != block.shape:
            raise ValueError(f"values of shape {values.shape} do not fit box {bbox} ({block.shape})")
        old = block.copy()
        self._counts -= label_counts(old)
        block[...] = values
        self._counts += label_counts(values)
        self.changed.emit((z0, z1, y0, y1, x0, x1))
        self.counts_changed.emit()
        return old

    def counts(self) -> np.ndarray:
        """Voxels per label value (length 256). Do not modify."""
        return self._counts

    # -- appearance -----------------------------------------------------------
    @property
    def table(self) -> LabelTable:
        return self._table

    @property
    def opacity(self) -> float:
        return self._opacity

    @property
    def hidden(self) -> frozenset[int]:
        return self._hidden

    @property
    def outline(self) -> bool:
        """True when labels are drawn as outlines, False when filled."""
        return self._outline

    @property
    def lut(self) -> np.ndarray:
        """The current 256x4 RGBA lookup table (precomputed; opaque in outline mode)."""
        return self._lut

    def set_color(self, value: int, rgb: tuple[int, int, int]) -> None:
        self._table = self._table.with_color(value, tuple(int(c) for c in rgb))
        self._update_lut()

    def set_opacity(self, opacity: float) -> None:
        opacity = min(max(float(opacity), 0.0), 1.0)
        if opacity != self._opacity:
            self._opacity = opacity
            self._update_lut()

    def set_visible(self, value: int, visible: bool) -> None:
        hidden = self._hidden - {value} if visible else self._hidden | {value}
        if hidden != self._hidden:
            self._hidden = frozenset(hidden)
            self._update_lut()

    def is_visible(self, value: int) -> bool:
        return value not in self._hidden

    def set_outline(self, outline: bool) -> None:
        if bool(outline) != self._outline:
            self._outline = bool(outline)
            self._update_lut()

    def _update_lut(self) -> None:
        # thin outlines are drawn opaque (a half-transparent 1-voxel line is hard to see);
        # the opacity slider then only hides them at 0
        alpha = (1.0 if self._opacity > 0 else 0.0) if self._outline else self._opacity
        self._lut = label_lut(self._table, alpha, self._hidden)
        self.appearance_changed.emit()
