"""The reading pipeline: one call from a scan to everything Run AI shows.

Used by the app's Run AI (on a worker thread, slab by slab) and by
``python -m engine predict`` alike::

    reading = read(volume, predictor, lungs=lungs)            # all at once
    gen = iter_read(volume, predictor, visible_slice=z)      # progressive
    for part in gen: show(part.slab, part.counts)            # each finished slab
    reading = <the generator's return value>

Objects and data flow
---------------------
- :class:`SlicePredictor` is the small protocol a predictor follows: ``iter_predict``
  yields :class:`~.result.Slab` objects and returns the complete
  :class:`~.result.Prediction`. :class:`~.predictor.Predictor` (local torch models) is
  one; a remote or batch predictor is another class with the same method.
- :func:`iter_read` drains it, yields a :class:`SlabReading` per slab (the slab and its
  voxels per finding and slice, counted here, off the GUI thread), then finds the lungs
  once (or reuses those the caller already has: the app's case) and quantifies.
- :class:`Reading` is the result: prediction, quantification (mL, % of lung, severity),
  notes for the reader, and the lungs the numbers were computed with (the app's case
  keeps them, so the report and the numbers panel use the same lungs).
"""

from __future__ import annotations

import inspect

from dataclasses import dataclass, field
from typing import Any, Generator, Optional, Protocol

import numpy as np

from ..errors import DataError
from ..labels import FINDINGS
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Volume
from .result import Prediction, Slab

__all__ = ["Reading", "SlabReading", "SlicePredictor", "finding_counts", "iter_read", "read", "reading_lungs"]


class SlicePredictor(Protocol):
    """What the pipeline needs of a predictor (the local :class:`~.predictor.Predictor` or a remote one)."""

    def iter_predict(self, volume: Volume, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelLike] = None, order: Any = None,
                     visible_slice: Optional[int] = None) -> Generator[Slab, None, Prediction]:
        """Yield each finished :class:`Slab`; return the complete :class:`Prediction`."""
        ...


@dataclass(frozen=True)
class SlabReading:
    """One finished slab and its voxels per finding on each of its slices ``(n, len(FINDINGS))``."""

    slab: Slab
    counts: np.ndarray


@dataclass
class Reading:
    """Everything one reading produced.

    Attributes
    ----------
    prediction
        Labels, probabilities, per-slice and whole-scan finding probabilities, COVID likelihood.
    quantification
        :class:`engine.quantification.Quantification` of the predicted labels, or ``None``.
    notes
        Sentences about the lungs and the numbers (the predictor's own are in
        ``prediction.notes``; :attr:`all_notes` joins both).
    lungs
        The :class:`engine.quantification.LungMasks` used (``None`` when no lung was found).
    rsna
        The RSNA expert-consensus category of the findings
        (:class:`engine.quantification.rsna.RsnaCategory`), ``None`` when not assessed.
    """

    prediction: Prediction
    quantification: Optional[Any] = None
    notes: list[str] = field(default_factory=list)
    lungs: Optional[Any] = None
    rsna: Optional[Any] = None

    @property
    def all_notes(self) -> list[str]:
        """The prediction's notes, then the lungs' and numbers'."""
        return list(self.prediction.notes) + list(self.notes)


def finding_counts(labels: np.ndarray) -> np.ndarray:
    """Voxels of each finding of :data:`engine.labels.FINDINGS` per slice: ``(n, y, x)`` -> ``(n, k)``."""
    flat = labels.reshape(labels.shape[0], -1)
    out = np.zeros((flat.shape[0], len(FINDINGS)), np.int64)
    # slice by slice: count_nonzero of a whole slice is a fast scan, while count_nonzero(..., axis=1)
    # sums booleans as integers (5x slower: 0.11 s on GUI thread for 300 slices, at every edit)
    for z, row in enumerate(flat):
        if row.any():
            out[z] = [np.count_nonzero(row == lab) for lab in FINDINGS]
    return out


def reading_lungs(volume: Volume, prediction: Prediction, lungs: Optional[Any] = None,
                  cancel: Optional[CancelLike] = None) -> tuple[Optional[Any], list[str]]:
    """The lungs of a reading and their notes.

    ``lungs`` found earlier for this scan are reused unless the prediction carries a
    lung-model mask, which refines them (:func:`engine.quantification.lung_masks`
    ``model_mask``). Returns ``(None, [note])`` when no lung is found.
    """
    from ..quantification import lung_masks

    if lungs is not None and prediction.lung_mask is None:
        return lungs, list(lungs.warnings)
    try:
        found = lung_masks(volume, cancel=cancel, model_mask=prediction.lung_mask, labels=prediction.labels)
    except DataError as exc:
        if lungs is not None:
            return lungs, list(lungs.warnings)
        return None, [f"No lung mask: {exc} % of lung is not reported."]
    return found, list(found.warnings)


def iter_read(volume: Volume, predictor: SlicePredictor, *, lungs: Optional[Any] = None,
              visible_slice: Optional[int] = None, order: Any = "center_out",
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelLike] = None) -> Generator[SlabReading, None, Reading]:
    """Read ``volume`` slab by slab (the visible slice first); return the :class:`Reading`.

    Raises
    ------
    CancelledError
        ``cancel`` was set.
    ModelError
        A model is missing or failed.
    """
    from ..quantification import quantify

    report = as_progress(progress)
    report(0.0, "Loading the model")
    extra = {"lungs": lungs} if lungs is not None and _takes_lungs(predictor) else {}
    gen = predictor.iter_predict(volume, progress=report.sub(0.0, 0.95), cancel=cancel, order=order,
                                 visible_slice=visible_slice, **extra)
    while True:
        try:
            slab = next(gen)
        except StopIteration as stop:
            prediction: Prediction = stop.value
            break
        yield SlabReading(slab, finding_counts(slab.labels))
    check_cancel(cancel)
    from .background import Pending  # scipy and cc3d: not at the app's start-up

    if isinstance(lungs, Pending):  # the caller's search (the app's, since the open): ended by now, or soon
        lungs = lungs.watch(cancel).result()
    report(0.96, "Measuring the findings")
    if not getattr(prediction, "assessed", True):
        # "not assessed" (no lung, unknown intensity scale, ...): no numbers at all
        report(1.0, "Not assessed")
        return Reading(prediction, None, [], getattr(prediction, "lungs", None) or lungs)
    own = getattr(prediction, "lungs", None)  # found once by the predictor (engine.anatomy)
    if own is not None and (lungs is None or extra):  # its own lungs, or its refinement of ours
        found, notes = own, list(getattr(own, "warnings", []))
    else:
        found, notes = reading_lungs(volume, prediction, lungs, cancel)
    quantification = quantify(prediction.labels, volume.geometry, found, hu=volume.array if volume.is_hu else None,
                              cancel=cancel)
    from ..quantification.rsna import rsna_or_none

    rsna = rsna_or_none(prediction.labels, found, volume.geometry)  # None: no zones (no lungs, a single slice)
    report(1.0, "Done")
    return Reading(prediction, quantification, notes, found, rsna)


def _takes_lungs(predictor: Any) -> bool:
    """Whether ``predictor.iter_predict`` accepts the scan's lungs found earlier (``lungs=``)."""
    try:
        return "lungs" in inspect.signature(predictor.iter_predict).parameters
    except (TypeError, ValueError):
        return False


def read(volume: Volume, predictor: SlicePredictor, *, lungs: Optional[Any] = None,
         visible_slice: Optional[int] = None, order: Any = None, progress: Optional[ProgressCallback] = None,
         cancel: Optional[CancelLike] = None) -> Reading:
    """:func:`iter_read` drained: the whole :class:`Reading` at once (the command line)."""
    gen = iter_read(volume, predictor, lungs=lungs, visible_slice=visible_slice, order=order, progress=progress,
                    cancel=cancel)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
