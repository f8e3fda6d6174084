"""Spin boxes for typed window width and level, mirroring the session (STYLE rule 2)."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from engine.display import WindowLevel

from ..state.session import Session


class WindowLevelWidget(QWidget):
    """``W [ ] L [ ]``: typed values go to :meth:`Session.set_window`; session changes come back."""

    def __init__(self, session: Session, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._session = session
        self.width_box = QDoubleSpinBox()
        self.level_box = QDoubleSpinBox()
        for box, lo, hi, tip in ((self.width_box, 1, 10000, "Window width"),
                                 (self.level_box, -5000, 5000, "Window level (centre)")):
            box.setRange(lo, hi)
            box.setDecimals(0)
            box.setSingleStep(10)
            box.setKeyboardTracking(False)
            box.setToolTip(tip)
            box.setFixedWidth(80)
            box.valueChanged.connect(self._edited)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(QLabel("W"))
        lay.addWidget(self.width_box)
        lay.addWidget(QLabel("L"))
        lay.addWidget(self.level_box)
        session.volume_changed.connect(self._fit)
        session.window_changed.connect(self._mirror)
        self._mirror(session.window)

    def _fit(self, volume: object) -> None:
        """Ranges and decimals that hold the open scan's windows: a scan of values up to 60 000 opened with
        W 59406 while the boxes stopped at 10 000 (and the next step applied that); 8-bit data's level 127.5 read
        128, and a typed width then applied L 128."""
        d = max(self._session.value_decimals, 1 if volume is not None and not getattr(volume, "is_hu", True) else 0)
        wl = self._session.window
        span = max(10000.0, 4 * wl.width, 2 * abs(wl.level) + wl.width)
        with QSignalBlocker(self.width_box), QSignalBlocker(self.level_box):
            for box, lo, hi in ((self.width_box, 10.0 ** -d, span), (self.level_box, -span, span)):
                box.setDecimals(d)
                box.setRange(lo, hi)
                box.setSingleStep(10 if d == 0 else 10.0 ** (1 - d) if d > 1 else 1)
        self._mirror(wl)

    def _mirror(self, wl: WindowLevel) -> None:
        with QSignalBlocker(self.width_box), QSignalBlocker(self.level_box):
            self.width_box.setValue(wl.width)
            self.level_box.setValue(wl.level)

    def _edited(self, _value: float) -> None:
        self._session.set_window(WindowLevel(self.width_box.value(), self.level_box.value()))
