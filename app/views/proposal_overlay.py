"""The AI proposal drawn over every slice view (above the label layer) until it is accepted or dropped.

It is drawn as the difference accepting it would make to the labels now (the colours of
:data:`app.views.preview_overlay.DIFF_COLORS`: cyan adds, magenta removes, blue changes a
finding), never in the finding colours over the labels: voxels a person painted or erased
are kept on accept (:func:`engine.editing.assist.merge_proposal`), so they show no change,
and slices the model has not reached yet show nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QTimer

from engine.display import Plane, extract
from engine.editing.assist import difference_mask, merge_proposal

from ..state.label_layer import LabelLayer
from ..state.proposal import ProposalModel
from ..state.session import Session
from .preview_overlay import diff_lut, overlay_items


class ProposalOverlay:
    """Draws the proposal in every slice view (above the label layer) until it is cleared."""

    Z_VALUE = 15
    OPACITY = 0.6

    def __init__(self, proposal: ProposalModel, views: Any, labels: LabelLayer, session: Session) -> None:
        self.proposal = proposal
        self.views = list(views)
        self.labels = labels
        self.session = session
        self.items = overlay_items(self.views, self.Z_VALUE)
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
        labels.changed.connect(self._on_labels_changed)
        self._lut = diff_lut(self.OPACITY)

    def lut(self) -> np.ndarray:
        return self._lut

    def _on_labels_changed(self, _bbox: Any) -> None:
        if self.proposal.showing_proposal:
            self.refresh_all()

    def difference(self, plane: Plane, index: int) -> np.ndarray:
        """The :func:`~engine.editing.assist.difference_mask` of accepting the proposal, on one slice."""
        p = self.proposal
        prop = extract(p.labels, plane, index)
        cur = extract(self.labels.array, plane, index)
        ed = self.labels.editor
        if ed is None or ed.shape != p.labels.shape:
            person = np.zeros(prop.shape, bool)
        else:
            box: list[Any] = [slice(None)] * 3
            box[{Plane.AXIAL: 0, Plane.CORONAL: 1, Plane.SAGITTAL: 2}[plane]] = index
            person = ed.person_mask(tuple(box))
            if plane is not Plane.AXIAL:
                person = person[::-1]
        diff = difference_mask(cur, merge_proposal(cur, prop, person))
        if p.state != "running":  # complete: accepting writes every slice
            return diff
        if plane is Plane.AXIAL:
            return diff if p.processed[index] else np.zeros_like(diff)
        diff[~p.processed[::-1]] = 0  # rows of slices the model has not reached yet
        return diff
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
        lab = self.difference(view.plane, view.index)
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
