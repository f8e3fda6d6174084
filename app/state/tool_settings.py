"""The editing options: a small model the tools read and the options panel mirrors."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Signal

from engine.editing import PAINT_OVER_MODES, THRESHOLD_PRESETS
from engine.labels import DEFAULT_TABLE, GGO

MIN_RADIUS_MM, MAX_RADIUS_MM = 0.25, 60.0


class ToolSettings(QObject):
    """Current label, brush radius (mm), paint-over mode, HU range and island size.

    Signals
    -------
    changed()
        any option changed.
    """

    changed = Signal()

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._label = GGO
        self._radius_mm = 5.0
        self._mode = "everything"
        self._over_label = GGO
        self._hu_range: tuple[float, float] = THRESHOLD_PRESETS["ggo"]
        self._island_ml = 0.1
        #: the slice axis of the last 2D stroke or outline (0 axial, 1 coronal, 2 sagittal; None: none yet): fill
        #: between slices fills between slices of that orientation first
        self.painted_axis: Optional[int] = None

    # -- label ----------------------------------------------------------------
    @property
    def label(self) -> int:
        return self._label

    def set_label(self, value: int) -> None:
        value = int(value)
        if value not in DEFAULT_TABLE.values:
            raise ValueError(f"unknown label {value}")
        if value != self._label:
            self._label = value
            self.changed.emit()

    @property
    def label_name(self) -> str:
        return DEFAULT_TABLE[self._label].name

    # -- brush ----------------------------------------------------------------
    @property
    def radius_mm(self) -> float:
        return self._radius_mm

    def set_radius_mm(self, radius: float) -> None:
        radius = min(max(float(radius), MIN_RADIUS_MM), MAX_RADIUS_MM)
        if radius != self._radius_mm:
            self._radius_mm = radius
            self.changed.emit()

    def grow(self, factor: float = 1.25) -> None:
        """Make the brush ``factor`` times larger (``[`` / ``]`` keys use 1/1.25 and 1.25)."""
        self.set_radius_mm(round(self._radius_mm * factor, 2))

    # -- paint over -----------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    @property
    def over_label(self) -> int:
        return self._over_label

    def set_mode(self, mode: str, over_label: Optional[int] = None) -> None:
        if mode not in PAINT_OVER_MODES:
            raise ValueError(f"paint-over mode must be one of {PAINT_OVER_MODES}")
        over = self._over_label if over_label is None else int(over_label)
        if (mode, over) != (self._mode, self._over_label):
            self._mode, self._over_label = mode, over
            self.changed.emit()

    # -- threshold brush ------------------------------------------------------
    @property
    def hu_range(self) -> tuple[float, float]:
        return self._hu_range

    def set_hu_range(self, lo: float, hi: float) -> None:
        rng = (float(min(lo, hi)), float(max(lo, hi)))
        if rng != self._hu_range:
            self._hu_range = rng
            self.changed.emit()

    def apply_preset(self, key: str) -> None:
        """HU range of a finding (:data:`engine.editing.THRESHOLD_PRESETS`)."""
        self.set_hu_range(*THRESHOLD_PRESETS[key])

    # -- islands --------------------------------------------------------------
    @property
    def island_ml(self) -> float:
        return self._island_ml

    def set_island_ml(self, ml: float) -> None:
        ml = max(float(ml), 0.0)
        if ml != self._island_ml:
            self._island_ml = ml
            self.changed.emit()
