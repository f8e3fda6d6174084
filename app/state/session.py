"""The session: the open scan, the cursor, the display window and the view layout.

Models own state and announce changes with Qt signals; widgets only mirror them and
write back through the setters (STYLE rule 2). Models are mutated on the GUI thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from PySide6.QtCore import QObject, Signal

from engine.display import PRESETS, SLAB_MODES, WindowLevel, opening_window, value_decimals
from engine.types import Volume

@dataclass(frozen=True)
class Slab:
    """Thick-slab display of every view: ``mode`` ``""`` (single slice), ``"mip"`` or ``"minip"``.

    ``thickness`` is in mm, or in slices when the scan's spacing is unknown.
    """

    mode: str = ""
    thickness: float = 10.0


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
    slab_changed(object)
        the thick-slab setting changed (a :class:`Slab`).
    """

    volume_changed = Signal(object)
    cursor_changed = Signal(object)
    window_changed = Signal(object)
    layout_changed = Signal(str)
    crosshair_toggled = Signal(bool)
    slab_changed = Signal(object)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._volume: Optional[Volume] = None
        self._cursor: tuple[int, int, int] = (0, 0, 0)
        self._window: WindowLevel = PRESETS["lung"]
        self._layout = "three"
        self._auto_single = False  # True while the layout is "axial" only because of a 1-slice scan
        self._crosshair = True
        self._slab = Slab()
        #: decimals that show the open scan's values and windows (:func:`engine.display.value_decimals`)
        self.value_decimals = 0

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
        self.value_decimals = value_decimals(volume.array) if volume is not None else 0
        if volume is not None:
            self._cursor = tuple(int(s) // 2 for s in volume.shape)  # type: ignore[assignment]
            self._window = opening_window(volume)
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

    # -- thick slab -----------------------------------------------------------
    @property
    def slab(self) -> Slab:
        return self._slab

    def set_slab(self, mode: Optional[str] = None, thickness: Optional[float] = None) -> None:
        """Change the slab mode (``""``, ``"mip"``, ``"minip"``) and/or thickness; emits ``slab_changed``."""
        if mode is not None and mode and mode not in SLAB_MODES:
            raise ValueError(f"slab mode must be '' or one of {SLAB_MODES}, got {mode!r}")
        new = replace(self._slab, **{k: v for k, v in (("mode", mode), ("thickness", thickness)) if v is not None})
        new = replace(new, thickness=min(max(float(new.thickness), 1.0), 200.0))
        if new != self._slab:
            self._slab = new
            self.slab_changed.emit(new)
