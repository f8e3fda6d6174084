"""The AI proposal drawn over every slice view (above the label layer) until it is accepted or dropped."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer

from engine.display import Plane, extract, label_lut

from ..state.label_layer import LabelLayer
from ..state.proposal import ProposalModel
from ..state.session import Session


class ProposalOverlay:
    """Draws the proposal in every slice view (above the label layer) until it is cleared."""

    Z_VALUE = 15
    OPACITY = 0.6

    def __init__(self, proposal: ProposalModel, views: Any, labels: LabelLayer, session: Session) -> None:
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
