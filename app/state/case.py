"""The case: what we know about the open scan besides its voxels and labels.

One owner for each fact:

- the **lungs** (:class:`engine.quantification.LungMasks`): found once when the scan
  opens (on a worker), handed to Run AI (the reading pipeline uses them for its numbers),
  to the numbers panel and to the report; a reading that refines them (a lung model)
  fills the same slot through :meth:`CaseState.accept_reading`;
- the **accepted models** (names and versions, for the report);
- **one quantifier** (:class:`engine.quantification.IncrementalQuantifier`) that follows
  the label layer box by box (a brush stroke recounts only its box); every number panel
  mirrors :attr:`CaseState.result`.

A new label map (``changed(None)``) or new lungs start a full count of a snapshot on a
worker; edits made meanwhile are replayed on the count when it lands.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.errors import DataError
from engine.quantification import IncrementalQuantifier, LungMasks, Quantification, lung_masks
from engine.types import Volume

from .label_layer import LabelLayer
from .session import Session
from .tasks import Task, TaskRunner, error_message

log = logging.getLogger(__name__)


def find_lungs(volume: Volume, progress: Any = None, cancel: Any = None) -> Optional[LungMasks]:
    """Lung masks of ``volume``, or ``None`` when no lungs are found (volumes only then)."""
    try:
        return lung_masks(volume, progress=progress, cancel=cancel)
    except DataError as exc:
        log.info("no lungs: %s", exc)
        return None


def find_lungs_for_reading(volume: Volume, progress: Any = None, cancel: Any = None
                           ) -> Iterator[Optional[LungMasks]]:
    """Worker: the lungs of ``volume`` (yielded as soon as found: the numbers need them), then
    the AI gate's part that depends on the lungs alone (:func:`engine.inference.gate.prepare_gate`,
    kept with them), so that Run AI does not compute it (about 0.5 s of a 300-slice reading)."""
    lungs = find_lungs(volume, progress=progress, cancel=cancel)
    yield lungs
    if lungs is not None and not (cancel is not None and cancel.is_set()):
        from engine.inference.gate import prepare_gate  # scipy only, no torch
        try:
            prepare_gate(volume, lungs)
        except Exception:  # noqa: BLE001 - only a head start: Run AI's gate makes it itself
            log.exception("preparing the lung gate failed")


def count_labels(snapshot: np.ndarray, volume: Volume, lungs: Optional[LungMasks], progress: Any = None,
                 cancel: Any = None) -> IncrementalQuantifier:
    """Worker: the initial tally of a label snapshot (see :meth:`IncrementalQuantifier.counted`)."""
    return IncrementalQuantifier.counted(snapshot, volume.geometry, lungs, volume.array if volume.is_hu else None,
                                        progress=progress, cancel=cancel)


class CaseState(QObject):
    """Lungs, accepted models and the live numbers of the open scan.

    Parameters
    ----------
    active
        Find the lungs and keep the numbers (a window without AI or numbers leaves it off).

    Signals
    -------
    lungs_changed()
        :attr:`lungs` was set (found, refined, or cleared for a new scan).
    numbers_changed(object)
        the current :class:`Quantification` (``None`` when no scan is open).
    """

    lungs_changed = Signal()
    numbers_changed = Signal(object)

    def __init__(self, session: Session, labels: LabelLayer, runner: TaskRunner, active: bool = True,
                 parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.session = session
        self.labels = labels
        self.runner = runner
        self.active = active
        self.volume: Optional[Volume] = None
        self.lungs: Optional[LungMasks] = None
        #: accepted AI readings: (ids of the editor steps that put each on the labels, its models)
        self._readings: list[tuple[set[int], dict[str, Any]]] = []
        #: the last AI reading's verdict on the scan: ``{"assessed": bool, "reasons": [...]}`` or None
        self.assessment: Optional[dict[str, Any]] = None
        #: what the last AI reading says about the scan for a person to review (a solid nodule set
        #: aside, ...): it holds whatever the labels become, and goes into the report
        self.review_notes: list[str] = []
        self.quantifier: Optional[IncrementalQuantifier] = None
        self.lungs_pending = False
        self._lung_task: Optional[Task] = None
        self._waiting: list[Any] = []  # engine.inference.background.Pending handed to Run AI
        self._generation = 0  # bumps whenever a running count becomes stale
        self._pending: Optional[list[Any]] = None  # boxes edited while a count runs
        session.volume_changed.connect(self._on_volume)
        labels.changed.connect(self._on_labels)

    # -- queries --------------------------------------------------------------
    @property
    def result(self) -> Optional[Quantification]:
        """The numbers of the label layer (``None`` before the first count); while a full count runs
        (:attr:`counting`) they are the previous count's."""
        return self.quantifier.result() if self.quantifier is not None else None

    @property
    def counting(self) -> bool:
        """True while a full count runs on a worker."""
        return self._pending is not None

    @property
    def models(self) -> dict[str, Any]:
        """Models of the accepted AI reading the labels hold (``{"segmentation": {"name": ..., ...}, ...}``):
        the latest one with an accept step still in effect; none after its accept was undone, or once other
        labels were opened."""
        editor = self.labels.editor
        for steps, models in reversed(self._readings):
            if editor is not None and any(editor.history.is_done(s) for s in steps):
                return dict(models)
        if editor is not None and any(s.kind == "ai" for s in editor.history.undo_steps):
            # an accept this session did not record: labels restored from an edit journal after a crash
            return {"segmentation": {"name": "an AI model, not recorded (labels restored from the edit journal)"}}
        return {}

    def report_args(self) -> dict[str, Any]:
        """What a report of the labels now takes from the case (File > Export report, Send to PACS): lungs, the
        credited models, provenance, numbers (none while a full count runs: the report counts itself), the AI's
        verdict and the notes it asks a person to read."""
        from engine.inference.summary import SCAN_PROBABILITIES_VALIDATED, SCAN_PROBABILITY_NOTE

        notes = list(self.review_notes)
        if self.models and (self.assessment or {}).get("assessed", True) and not SCAN_PROBABILITIES_VALIDATED:
            notes.append(SCAN_PROBABILITY_NOTE)  # the panel shows them "not validated": the report says why
        return dict(lungs=self.lungs, models=self.models, edited_by_person=self.edited_by_person(),
                    labels_source=self.labels.name or None, quant=None if self.counting else self.result,
                    assessment=self.assessment, review_notes=notes)

    def edited_by_person(self) -> Optional[bool]:
        """True when a person changed the labels since they were opened or the last AI result; ``None`` (unknown)
        for labels opened from a file that does not record it (NIfTI, NRRD, ...) and not edited since."""
        editor = self.labels.editor
        if editor is None:
            return False
        if editor.person_changes():
            return True
        return None if self.labels.provenance_unknown and not self.models else False

    # -- changes --------------------------------------------------------------
    def set_lungs(self, lungs: Optional[LungMasks]) -> None:
        """New lungs for the open scan: announced, then the numbers are recounted with them."""
        self.lungs = lungs
        self.lungs_pending = False
        self._hand_over(lungs)
        self.lungs_changed.emit()
        self._rebuild()

    def pending_lungs(self) -> Optional[Any]:
        """While the lungs of the open scan are being found: a
        :class:`engine.inference.background.Pending` that gets them when they are, so that a Run AI
        pressed meanwhile waits for them instead of searching a second time. ``None`` otherwise."""
        if self.lungs is not None or not self.lungs_pending:
            return None
        from engine.inference.background import Pending
        waiting: Any = Pending()
        self._waiting.append(waiting)
        return waiting

    def _hand_over(self, lungs: Optional[LungMasks], cancel: bool = False) -> None:
        waiting, self._waiting = self._waiting, []
        for w in waiting:
            if cancel:
                w.cancel()
            else:
                w.set(lungs)

    def _lung_search_failed(self, exc: BaseException) -> None:
        """The lung search raised (not 'no lungs': that is a result): shown, and a waiting Run AI
        goes on without lungs (it reads 'not assessed')."""
        self.lungs_pending = False
        self._hand_over(None)
        self.runner.error.emit(error_message(exc))

    def accept_reading(self, models: dict[str, Any], lungs: Optional[LungMasks], steps: Sequence[int] = ()) -> None:
        """An AI reading was accepted by the editor steps ``steps``: its models are credited while one of them is
        in effect (:attr:`models`); lungs it refined replace the case's."""
        self._readings.append((set(steps), dict(models or {})))
        if lungs is not None and lungs is not self.lungs:
            self.set_lungs(lungs)

    def set_assessment(self, assessed: bool, reasons: list[str], review: Optional[list[str]] = None) -> None:
        """Record whether the AI could read this scan (the report says so when it could not) and
        what the reading asks a person to review."""
        self.assessment = {"assessed": bool(assessed), "reasons": list(reasons)}
        self.review_notes = list(review or [])
        if not assessed and self.quantifier is not None:  # the Numbers panel withholds the severity, as the report
            self.numbers_changed.emit(self.result)

    @property
    def not_assessed_reason(self) -> Optional[str]:
        """Why the AI did not read this scan (its first reason), or ``None`` when it did or has not run."""
        a = self.assessment
        return None if a is None or a["assessed"] else ((a["reasons"] or ["no reason given"])[0]).rstrip(".")

    def _on_volume(self, volume: Optional[Volume]) -> None:
        if self._lung_task is not None:  # the old scan's lungs are of no use any more
            self._lung_task.cancel()
            self._lung_task = None
        self._hand_over(None, cancel=True)  # a Run AI of the old scan waiting for them is being cancelled
        self.volume = volume
        self.lungs = None
        self._readings = []
        self.assessment = None
        self.review_notes = []
        self.quantifier = None
        self._generation += 1
        self._pending = None
        self.lungs_changed.emit()
        if volume is None or not self.active:
            self.lungs_pending = False
            self.numbers_changed.emit(None)
            return
        self.lungs_pending = True
        self._lung_task = self.runner.run(find_lungs_for_reading, volume, title="Finding the lungs",
                                          on_yield=lambda lungs, v=volume: self._lungs_found(v, lungs),
                                          on_cancel=lambda: None,  # a newer scan replaced it: nothing to say
                                          on_error=self._lung_search_failed)

    def _lungs_found(self, volume: Volume, lungs: Optional[LungMasks]) -> None:
        if volume is self.volume:  # else another scan was opened meanwhile
            self.set_lungs(lungs)

    def _rebuild(self) -> None:
        """Count a snapshot of the labels on a worker; edits meanwhile are replayed after."""
        volume = self.volume
        self._generation += 1
        if volume is None or not self.active or self.labels.shape != tuple(volume.shape):
            self._pending = None
            return
        gen = self._generation
        self._pending = []
        live = self.labels.array
        self.runner.run(count_labels, live.copy(), volume, self.lungs, title="Counting the findings",
                        on_result=lambda q: self._counted(gen, live, q))

    def _counted(self, gen: int, live: np.ndarray, q: IncrementalQuantifier) -> None:
        if gen != self._generation or self.labels.array is not live:
            return  # stale: a newer count is running
        q.follow(live)
        for bbox in self._pending or []:
            q.update_region(*bbox)
        self._pending = None
        self.quantifier = q
        self.numbers_changed.emit(q.result())

    def _on_labels(self, bbox: Any) -> None:
        if self.lungs_pending or not self.active:
            return  # the count starts when the lungs are found
        if self._pending is not None:  # a count is running
            if bbox is None:
                self._rebuild()
            else:
                self._pending.append(tuple(bbox))
            return
        q = self.quantifier
        if q is None:
            return
        layer = self.labels
        if bbox is None:
            if q.labels is not layer.array:
                self.quantifier = None
                self._rebuild()
                return
            q.update_region(0, layer.shape[0], 0, layer.shape[1], 0, layer.shape[2])
        else:
            q.update_region(*bbox)
        self.numbers_changed.emit(q.result())
