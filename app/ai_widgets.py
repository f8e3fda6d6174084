"""Widgets of the AI flow; each only mirrors the :class:`app.ai_state.ProposalModel`.

- :class:`FindingsPanel`: per finding a probability bar for the current slice and for
  the whole scan, the volume in mL and % of lung, and a button that jumps to the slice
  with most of it; the COVID likelihood with its caveat.
- :class:`SliceStrip`: a narrow strip beside the axial view showing along z (head at
  the top) where each finding is; a click jumps there.
- :class:`ProposalOverlay`: one extra image item per slice view that shows the
  proposal over the scan (and over the current labels) until it is accepted.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from engine.display import Plane, extract, label_lut
from engine.labels import DEFAULT_TABLE, FINDING_KEYS, FINDINGS

from .ai_state import ProposalModel
from .models import LabelLayerModel, Session

COVID_CAVEAT = ("From a classifier trained on CT images published in papers (UCSD COVID-CT); "
                "a research signal, not a diagnosis.")
COVID_TEXT = ("COVID-19 likelihood, from a classifier trained on published CT images (UCSD COVID-CT); "
              "not a diagnosis.")


def _bar(tooltip: str) -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, 100)
    bar.setTextVisible(True)
    bar.setToolTip(tooltip)
    bar.setFixedHeight(16)
    return bar


def _set_bar(bar: QProgressBar, p: Optional[float], suffix: str = "") -> None:
    if p is None:
        bar.setValue(0)
        bar.setFormat("–")
        return
    bar.setValue(int(round(100 * float(p))))
    bar.setFormat(f"{100 * float(p):.0f} %{suffix}")


class FindingsPanel(QWidget):
    """Probabilities, volumes and jump buttons per finding, and the COVID likelihood.

    Signals
    -------
    jump_requested(int)
        the jump button of finding index 0 (GGO), 1 (consolidation) or 2 (effusion).
    """

    jump_requested = Signal(int)

    def __init__(self, proposal: ProposalModel, session: Session, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.proposal = proposal
        self.session = session
        self.status = QLabel("Press Run AI (Ctrl+R) to segment the findings.")
        self.status.setWordWrap(True)
        grid = QGridLayout()
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setVerticalSpacing(2)
        grid.addWidget(QLabel("This slice"), 0, 0)
        grid.addWidget(QLabel("Whole scan"), 0, 1)
        self.slice_bars: list[QProgressBar] = []
        self.scan_bars: list[QProgressBar] = []
        self.volume_labels: list[QLabel] = []
        self.jump_buttons: list[QPushButton] = []
        for i, lab in enumerate(FINDINGS):
            entry = DEFAULT_TABLE[lab]
            r = 1 + 3 * i
            name = QLabel(f"<span style='color: rgb{entry.color}'>■</span> <b>{entry.name}</b>")
            sbar = _bar(f"Probability that this slice shows {entry.name.lower()}")
            wbar = _bar(f"Probability that the scan shows {entry.name.lower()}")
            vol = QLabel("")
            jump = QPushButton("Go to")
            jump.setToolTip(f"Go to the slice with most {entry.name.lower()}")
            jump.setEnabled(False)
            jump.clicked.connect(lambda _c=False, k=i: self.jump_requested.emit(k))
            grid.addWidget(name, r, 0, 1, 2)
            grid.addWidget(jump, r, 2)
            grid.addWidget(sbar, r + 1, 0)
            grid.addWidget(wbar, r + 1, 1)
            grid.addWidget(vol, r + 2, 0, 1, 3)
            self.slice_bars.append(sbar)
            self.scan_bars.append(wbar)
            self.volume_labels.append(vol)
            self.jump_buttons.append(jump)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        self.covid_title = QLabel(COVID_TEXT)
        self.covid_title.setWordWrap(True)
        self.covid_bar = _bar(COVID_CAVEAT)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addLayout(grid)
        lay.addWidget(line)
        lay.addWidget(self.covid_title)
        lay.addWidget(self.covid_bar)
        lay.addWidget(self.notes)
        lay.addStretch(1)
        self.voxel_ml: Optional[float] = None
        proposal.started.connect(self.refresh)
        proposal.slab_added.connect(lambda _z: self.refresh())
        proposal.finished.connect(self.refresh)
        proposal.accepted.connect(self.refresh)
        proposal.counts_changed.connect(self.refresh)
        proposal.cleared.connect(self.refresh)
        session.cursor_changed.connect(lambda _c: self._refresh_slice())
        self.refresh()

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def refresh(self) -> None:
        """Mirror the proposal: whole-scan bars, volumes, jump buttons, COVID bar."""
        p = self.proposal
        vol = self.session.volume
        self.voxel_ml = vol.geometry.voxel_volume_ml if vol is not None and vol.geometry.spacing_known else None
        pred = p.prediction
        q = p.quantification
        for i, lab in enumerate(FINDINGS):
            key = FINDING_KEYS[lab]
            if not p.active:
                _set_bar(self.scan_bars[i], None)
                self.volume_labels[i].setText("")
                self.jump_buttons[i].setEnabled(False)
                continue
            if pred is not None:
                _set_bar(self.scan_bars[i], pred.scan_probabilities[key])
            else:
                seen = p.slice_probabilities[p.processed, i]
                _set_bar(self.scan_bars[i], float(seen.max()) if seen.size else None, " so far")
            n = int(p.counts[:, i].sum())
            text = f"{n * self.voxel_ml:.1f} mL" if self.voxel_ml is not None else f"{n} vox"
            pct = q.findings[key].percent_of_lungs if q is not None else None
            if pct is not None:
                text += f" · {pct:.1f} % of lung"
            elif p.state == "running":
                text += " …"
            self.volume_labels[i].setText(text)
            peak = p.peak_slice(i)
            self.jump_buttons[i].setEnabled(peak is not None)
            self.jump_buttons[i].setText("Go to" if peak is None else f"Go to {peak + 1}")
        covid = pred.covid_probability if pred is not None else None
        _set_bar(self.covid_bar, covid)
        if pred is not None and covid is None:
            self.covid_bar.setFormat("no COVID classifier installed")
        self.notes.setText("\n".join(p.notes) if p.state in ("ready", "accepted") else "")
        self._refresh_slice()

    def _refresh_slice(self) -> None:
        p = self.proposal
        z = self.session.cursor[0]
        done = p.active and 0 <= z < p.processed.size and bool(p.processed[z])
        for i in range(3):
            _set_bar(self.slice_bars[i], float(p.slice_probabilities[z, i]) if done else None)


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
        proposal.started.connect(self.update)
        proposal.slab_added.connect(lambda _z: self.update())
        proposal.finished.connect(self.update)
        proposal.accepted.connect(self.update)
        proposal.counts_changed.connect(self.update)
        proposal.cleared.connect(self.update)
        session.cursor_changed.connect(lambda _c: self.update())
        session.volume_changed.connect(lambda _v: self.update())

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(48, 400)

    def image(self) -> np.ndarray:
        """The strip as an RGBA ``(z, 3, 4)`` array, row 0 = the most superior slice."""
        p = self.proposal
        nz = p.processed.size
        img = np.zeros((nz, 3, 4), dtype=np.uint8)
        img[..., 3] = 255
        img[..., :3] = 40
        if nz == 0 or not p.active:
            return img[::-1]
        img[p.processed, :, :3] = 75
        for i, lab in enumerate(FINDINGS):
            color = np.array(DEFAULT_TABLE[lab].color, dtype=np.float32)
            faint = p.processed & (p.slice_probabilities[:, i] > 0.5)
            img[faint, i, :3] = (0.35 * color + 0.65 * 75).astype(np.uint8)
            img[p.counts[:, i] > 0, i, :3] = color.astype(np.uint8)
        return img[::-1]

    def z_at(self, y: float) -> int:
        """Slice index at widget row ``y``."""
        nz = max(self.proposal.processed.size, 1)
        frac = min(max(y / max(self.height(), 1), 0.0), 0.999999)
        return int(nz - 1 - int(frac * nz))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(25, 25, 25))
        img = np.ascontiguousarray(self.image())
        nz = img.shape[0]
        if nz:
            qimg = QImage(img.data, 3, nz, 12, QImage.Format.Format_RGBA8888)
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


class ProposalOverlay:
    """Draws the proposal in every slice view (above the label layer) until it is cleared."""

    Z_VALUE = 15
    OPACITY = 0.6

    def __init__(self, proposal: ProposalModel, views: Any, labels: LabelLayerModel, session: Session) -> None:
        self.proposal = proposal
        self.views = list(views)
        self.labels = labels
        self.session = session
        self.items: dict[Plane, pg.ImageItem] = {}
        for view in self.views:
            item = pg.ImageItem(axisOrder="row-major")
            item.setZValue(self.Z_VALUE)
            item.setVisible(False)
            view.add_item(item)
            self.items[view.plane] = item
        self._pending: set[Plane] = set()
        self._timer = QTimer(proposal)  # dies with the window that owns the proposal
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)  # coronal/sagittal repaint at most ~7 times a second while slabs arrive
        self._timer.timeout.connect(self._flush)
        proposal.started.connect(self.refresh_all)
        proposal.slab_added.connect(self._on_slab)
        proposal.finished.connect(self.refresh_all)
        proposal.accepted.connect(self.hide)
        proposal.cleared.connect(self.hide)
        session.cursor_changed.connect(lambda _c: self.refresh_all())
        labels.appearance_changed.connect(self.refresh_all)

    def lut(self) -> np.ndarray:
        return label_lut(self.labels.table, self.OPACITY, self.labels.hidden)

    def hide(self) -> None:
        self._pending.clear()
        self._timer.stop()
        for item in self.items.values():
            item.setVisible(False)

    def refresh(self, view: Any) -> None:
        """Show the proposal slice that ``view`` displays."""
        item = self.items[view.plane]
        p = self.proposal
        if not p.showing_proposal or p.labels is None or view.index < 0 or self.session.volume is None \
                or p.labels.shape != tuple(self.session.volume.shape):
            item.setVisible(False)
            return
        lab = extract(p.labels, view.plane, view.index)
        if not lab.any():
            item.setVisible(False)
            return
        item.setTransform(view.label_item.transform())
        item.setImage(np.ascontiguousarray(lab), autoLevels=False, levels=None, lut=self.lut())
        item.setVisible(True)

    def refresh_all(self, *_: Any) -> None:
        for view in self.views:
            self.refresh(view)

    def _on_slab(self, z: np.ndarray) -> None:
        for view in self.views:
            if view.plane is Plane.AXIAL:
                if view.index in set(int(v) for v in z):
                    self.refresh(view)
            else:
                self._pending.add(view.plane)
        if self._pending and not self._timer.isActive():
            self._timer.start()

    def _flush(self) -> None:
        for view in self.views:
            if view.plane in self._pending:
                self.refresh(view)
        self._pending.clear()
