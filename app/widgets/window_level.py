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
        session.window_changed.connect(self._mirror)
        self._mirror(session.window)

    def _mirror(self, wl: WindowLevel) -> None:
        with QSignalBlocker(self.width_box), QSignalBlocker(self.level_box):
            self.width_box.setValue(wl.width)
            self.level_box.setValue(wl.level)

    def _edited(self, _value: float) -> None:
        self._session.set_window(WindowLevel(self.width_box.value(), self.level_box.value()))
