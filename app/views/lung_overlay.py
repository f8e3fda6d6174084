"""Outline of the case's lung masks over each slice view (read-only; right and left lung in two shades)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject

from engine.display.overlay import outline
from engine.display.slicing import extract
from engine.labels import LUNG

from ..state.case import CaseState
from ..state.session import Session


class LungOverlay(QObject):
    """Outline of the lung masks over each slice view (read-only; the masks are not edited here)."""

    def __init__(self, views: Any, session: Session, case: CaseState, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.session = session
        self.case = case
        self.visible = False
        self.lut = np.zeros((256, 4), dtype=np.uint8)
        r, g, b = LUNG.color
        self.lut[1] = (r, g, b, 230)  # right lung
        self.lut[2] = (min(r + 90, 255), min(g + 60, 255), b, 230)  # left lung, lighter
        self.items: list[tuple[Any, pg.ImageItem]] = []
        for view in views:
            item = pg.ImageItem(axisOrder="row-major")
            item.setZValue(12)
            item.setVisible(False)
            view.add_item(item)
            self.items.append((view, item))
        session.cursor_changed.connect(lambda _zyx: self.refresh())
        session.volume_changed.connect(lambda _vol: self.refresh())
        case.lungs_changed.connect(self.refresh)

    def set_visible(self, visible: bool) -> None:
        self.visible = bool(visible)
        self.refresh()

    def refresh(self) -> None:
        lungs = self.case.lungs
        vol = self.session.volume
        for view, item in self.items:
            if (not self.visible or lungs is None or vol is None or view.index < 0
                    or lungs.shape != tuple(vol.shape)):
                item.setVisible(False)
                continue
            code = extract(lungs.right, view.plane, view.index).astype(np.uint8)
            code[extract(lungs.left, view.plane, view.index)] = 2
            if not code.any():
                item.setVisible(False)
                continue
            item.setTransform(view.label_item.transform())
            item.setImage(outline(code), autoLevels=False, levels=None, lut=self.lut)
            item.setVisible(True)
