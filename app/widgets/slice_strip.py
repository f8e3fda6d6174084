"""The slice strip: where each finding of the AI proposal lies along z (head at the top)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from engine.labels import DEFAULT_TABLE, FINDINGS

from ..state.proposal import ProposalModel
from ..state.session import Session


class SliceStrip(QWidget):
    """Where each finding lies along z: one column per finding, head at the top.

    Solid colour: the proposal labels that finding on the slice; faint colour: the finding
    classifier gives the slice more than 50 %; grey: slices analysed so far; the white
    line is the current slice. Clicking moves the cursor to the clicked slice.
    """

    def __init__(self, proposal: ProposalModel, session: Session, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.proposal = proposal
        self.session = session
        self.setMinimumWidth(36)
        self.setMinimumHeight(120)
        self.setToolTip("Where each finding is along the scan (head at the top): GGO, consolidation, "
                        "effusion. Click to go to a slice.")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        proposal.on_any_change(self.update)
        session.cursor_changed.connect(lambda _c: self.update())
        session.volume_changed.connect(lambda _v: self.update())

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(48, 400)

    def _nz(self) -> int:
        """Slices along the strip: the open scan's (before any Run AI the proposal has none)."""
        vol = self.session.volume
        return int(vol.shape[0]) if vol is not None else self.proposal.processed.size

    def image(self) -> np.ndarray:
        """The strip as an RGBA ``(z, 3, 4)`` array, row 0 = the most superior slice."""
        p = self.proposal
        nz = self._nz()
        img = np.zeros((nz, len(FINDINGS), 4), dtype=np.uint8)
        img[..., 3] = 255
        img[..., :3] = 40
        if nz == 0 or not p.active or p.processed.size != nz:
            return img[::-1]
        img[p.processed, :, :3] = 75
        for i, lab in enumerate(FINDINGS):
            color = np.array(DEFAULT_TABLE[lab].color, dtype=np.float32)
            if lab not in p.dropped_values:  # a dropped finding's probabilities describe nothing on the labels
                faint = p.processed & (p.slice_probabilities[:, i] > 0.5)
                img[faint, i, :3] = (0.35 * color + 0.65 * 75).astype(np.uint8)
            img[p.counts[:, i] > 0, i, :3] = color.astype(np.uint8)
        return img[::-1]

    def z_at(self, y: float) -> int:
        """Slice index at widget row ``y``."""
        nz = max(self._nz(), 1)
        frac = min(max(y / max(self.height(), 1), 0.0), 0.999999)
        return int(nz - 1 - int(frac * nz))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(25, 25, 25))
        img = np.ascontiguousarray(self.image())
        nz = img.shape[0]
        if nz:
            qimg = QImage(img.data, img.shape[1], nz, 4 * img.shape[1], QImage.Format.Format_RGBA8888)
            painter.drawImage(QRectF(self.rect()), qimg)
            vol = self.session.volume
            if vol is not None:
                z = self.session.cursor[0]
                y = (nz - 1 - z + 0.5) / nz * self.height()
                painter.setPen(QPen(QColor(255, 255, 255), 1))
                painter.drawLine(0, int(y), self.width(), int(y))
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        vol = self.session.volume
        if vol is None or event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        _, cy, cx = self.session.cursor
        self.session.set_cursor(self.z_at(event.position().y()), cy, cx)
        event.accept()
