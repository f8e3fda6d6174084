"""The AI proposal: what Run AI has produced so far, before the user accepts it.

:class:`ProposalModel` lives on the GUI thread. The AI flow (:mod:`app.flows.ai`) feeds it
slab by slab as the worker thread delivers them, then the finished
:class:`engine.inference.Prediction`; overlays, the findings panel and the slice strip
mirror it through its signals. The label layer is not touched until the user accepts.

States: ``"idle"`` (nothing to show), ``"running"`` (slabs arriving), ``"ready"``
(complete, waiting for Enter / Esc), ``"accepted"`` (the labels are on the label layer;
the probabilities stay on show and the per-slice finding counts follow the layer's edits).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.inference.pipeline import finding_counts
from engine.labels import FINDINGS

N_FINDINGS = len(FINDINGS)


class ProposalModel(QObject):
    """Labels, per-slice probabilities and per-slice finding voxel counts of one AI run.

    Signals
    -------
    started()
        a run began: arrays are allocated, all background.
    slab_added(object)
        slices (a numpy array of z indices) received results.
    finished()
        the run completed: :attr:`prediction` and the whole-scan numbers are set.
    accepted()
        the proposal went onto the label layer (the overlay hides, the numbers stay).
    counts_changed()
        per-slice finding counts or the numbers changed (edits of the accepted labels).
    cleared()
        the proposal was rejected or cancelled, or a new scan opened: nothing to show.
    """

    started = Signal()
    slab_added = Signal(object)
    finished = Signal()
    accepted = Signal()
    counts_changed = Signal()
    cleared = Signal()

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.state = "idle"
        self.run_id = 0
        self.labels: Optional[np.ndarray] = None
        self.slice_probabilities = np.zeros((0, N_FINDINGS), dtype=np.float32)
        self.counts = np.zeros((0, N_FINDINGS), dtype=np.int64)
        self.processed = np.zeros(0, dtype=bool)
        self.prediction: Any = None
        self.quantification: Any = None
        self.rsna: Any = None
        #: the label layer was edited after the proposal was accepted: the reading's RSNA category is the AI's
        self.edited_since_accept = False
        #: per-slice finding counts when the proposal was accepted (what its probabilities describe)
        self.accepted_counts: Optional[np.ndarray] = None
        self.notes: list[str] = []
        self.model_title = ""
        #: label values already accepted one by one (per-finding accept) while the rest waits
        self.accepted_values: set[int] = set()
        #: ids of the editor steps that put this proposal on the labels (the case credits its models while one is
        #: in effect: an undone accept does not)
        self.accepted_steps: list[int] = []
        #: per-finding accepts while the rest waits: (editor step id or None when nothing changed, values); an
        #: undone one gives its findings back to the proposal (:meth:`follow_history`)
        self.accepted_parts: list[tuple[Optional[int], set[int]]] = []
        #: findings of the proposal dropped (Esc) after others were accepted one by one
        self.dropped_values: set[int] = set()

    # -- lifecycle ------------------------------------------------------------
    def start(self, shape: tuple[int, int, int], model_title: str = "") -> int:
        """Begin a new run over a scan of ``shape``; returns its id (slabs of other runs are ignored)."""
        self.run_id += 1
        self.state = "running"
        self.labels = np.zeros(tuple(int(s) for s in shape), dtype=np.uint8)
        nz = int(shape[0])
        self.slice_probabilities = np.zeros((nz, N_FINDINGS), dtype=np.float32)
        self.counts = np.zeros((nz, N_FINDINGS), dtype=np.int64)
        self.processed = np.zeros(nz, dtype=bool)
        self.prediction = None
        self.quantification = None
        self.rsna = None
        self.edited_since_accept = False
        self.accepted_counts = None
        self.notes = []
        self.model_title = model_title
        self.accepted_values = set()
        self.accepted_steps = []
        self.accepted_parts = []
        self.dropped_values = set()
        self.started.emit()
        return self.run_id

    def add_slab(self, run_id: int, z: np.ndarray, labels: np.ndarray, slice_probabilities: np.ndarray,
                 counts: Optional[np.ndarray] = None) -> bool:
        """Store one slab's results; returns False (and ignores it) for a stale run.

        ``counts`` (n, findings) are the slab's voxels per finding (computed here when not
        given; the reading pipeline computes them on the worker thread).
        """
        if run_id != self.run_id or self.state != "running" or self.labels is None:
            return False
        z = np.asarray(z, dtype=np.int64)
        self.labels[z] = labels
        self.slice_probabilities[z] = slice_probabilities
        self.counts[z] = finding_counts(labels) if counts is None else counts
        self.processed[z] = True
        self.slab_added.emit(z)
        return True

    def finish(self, run_id: int, prediction: Any, quantification: Any = None, notes: Optional[list[str]] = None,
               rsna: Any = None) -> bool:
        """The run completed; ``prediction`` is the complete :class:`engine.inference.Prediction`.

        ``rsna`` is the reading's RSNA category (:class:`engine.quantification.rsna.RsnaCategory`).
        """
        if run_id != self.run_id or self.state != "running":
            return False
        # recount: slabs may have been missed, and the lung gate edits the final labels
        self.counts = finding_counts(prediction.labels)
        self.labels = prediction.labels
        self.slice_probabilities = prediction.slice_probabilities.copy()
        self.processed = prediction.segmented.copy()
        self.prediction = prediction
        self.quantification = quantification
        self.rsna = rsna
        self.notes = list(prediction.notes) + list(notes or [])
        self.state = "ready"
        self.finished.emit()
        return True

    def on_any_change(self, slot) -> None:
        """Call ``slot()`` whenever what a mirror of the proposal shows may change (panels, strips)."""
        self.started.connect(slot)
        self.slab_added.connect(lambda _z: slot())
        self.finished.connect(slot)
        self.accepted.connect(slot)
        self.counts_changed.connect(slot)
        self.cleared.connect(slot)

    def note_accepted(self, values: set[int], step: Optional[int] = None) -> None:
        """Findings ``values`` were accepted on their own (by editor step ``step``); the rest still waits."""
        self.accepted_parts.append((step, set(int(v) for v in values)))
        self.accepted_values |= set(int(v) for v in values)
        self.counts_changed.emit()

    def follow_history(self, is_done: Callable[[int], bool]) -> bool:
        """After an undo or redo while the rest of the proposal waits: the findings whose accept step is no longer
        in effect wait again (QA pass: accept GGO, Ctrl+Z, Enter applied the rest only, GGO was lost).
        Returns whether that changed."""
        if self.state != "ready" or not self.accepted_parts:
            return False
        values = set().union(*(v for step, v in self.accepted_parts if step is None or is_done(step)))
        if values == self.accepted_values:
            return False
        self.accepted_values = values
        self.counts_changed.emit()
        return True

    def mark_accepted(self, layer: Optional[np.ndarray] = None, quantification: Any = None) -> bool:
        """The proposal is now the label layer: stop drawing it, keep its probabilities. ``layer`` (the label
        layer's array) recounts the panel's volumes and slice bars from what the labels now hold, and
        ``quantification`` gives the live numbers (``None``: they follow when counted): a person's kept voxels,
        findings accepted one by one or dropped, labels that were there before, made the proposal's counts
        wrong (QA pass: a dropped GGO still showed 0.2 mL)."""
        if self.state != "ready":
            return False
        self.run_id += 1
        self.state = "accepted"
        self.labels = None
        if layer is not None and layer.shape[0] == self.counts.shape[0]:
            self.counts = finding_counts(layer)
            self.quantification = quantification
        self.accepted_counts = self.counts.copy()  # per slice: what the labels held when accepted
        self.accepted.emit()
        return True

    def slice_edited(self, z: int, finding: Optional[int] = None) -> bool:
        """After acceptance: whether slice ``z``'s findings (finding index ``finding`` only, when given) differ from
        the accepted reading's (a person edited them), so the AI's per-slice probability no longer describes what is
        drawn there."""
        ref = self.accepted_counts
        if not (self.state == "accepted" and ref is not None and 0 <= z < ref.shape[0]
                and ref.shape == self.counts.shape):
            return False
        cols = slice(None) if finding is None else slice(finding, finding + 1)
        return bool((ref[z, cols] != self.counts[z, cols]).any())

    def update_counts(self, layer: np.ndarray, z0: int = 0, z1: Optional[int] = None,
                      quantification: Any = None, edited: bool = False) -> None:
        """After acceptance: recount slices ``z0:z1`` of the edited label ``layer`` (``edited``: an edit of the
        labels, not only new numbers)."""
        if self.state != "accepted" or layer.shape[0] != self.counts.shape[0]:
            return
        self.edited_since_accept |= bool(edited)
        z1 = layer.shape[0] if z1 is None else z1
        if z1 > z0:
            self.counts[z0:z1] = finding_counts(layer[z0:z1])
        if quantification is not None:
            self.quantification = quantification
        self.counts_changed.emit()

    def clear(self) -> None:
        """Drop the proposal and its numbers (rejected, cancelled, new scan)."""
        self.run_id += 1
        self.state = "idle"
        self.labels = None
        self.prediction = None
        self.quantification = None
        self.rsna = None
        self.edited_since_accept = False
        self.accepted_values, self.accepted_parts, self.dropped_values = set(), [], set()
        self.cleared.emit()

    # -- queries --------------------------------------------------------------
    @property
    def showing_proposal(self) -> bool:
        """True while the proposal is drawn over the scan (running or ready)."""
        return self.state in ("running", "ready")

    @property
    def active(self) -> bool:
        """True while there are results to show (running, ready or accepted)."""
        return self.state in ("running", "ready", "accepted")

    def peak_slice(self, finding_index: int) -> Optional[int]:
        """Slice with most voxels of finding ``finding_index`` (0 GGO, 1 consolidation, 2 effusion)."""
        if self.counts.size == 0 or self.counts[:, finding_index].max() == 0:
            return None
        return int(np.argmax(self.counts[:, finding_index]))

    def centroid(self, z: int, label: int) -> Optional[tuple[float, float]]:
        """(y, x) centre of ``label``'s pixels on slice ``z`` of the proposal."""
        if self.labels is None:
            return None
        ys, xs = np.nonzero(self.labels[z] == label)
        if ys.size == 0:
            return None
        return float(ys.mean()), float(xs.mean())
