"""What the predictor hands back: :class:`Slab` (one group of slices, as it is
finished) and :class:`Prediction` (the whole scan, only ever returned complete).

Memory
------
Probability maps are stored as ``uint8`` (``p = value / 255``, error <= 0.002) for
the three findings only (background is one minus their sum): a 512x512x300 scan needs
236 MB instead of 1.2 GB for four float32 maps.

Finding probabilities
---------------------
Per slice and per scan they come from :mod:`.presence` (the segmentation's own
evidence after the anatomy rules, calibrated offline). A slice's probability is above
0.5 exactly when the label map shows that finding on that slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..labels import FINDING_KEYS, FINDINGS
from ..types import Geometry


@dataclass(frozen=True)
class Slab:
    """Results of one group of slices, delivered as soon as they are ready.

    Attributes
    ----------
    z
        ``(n,)`` slice indices (in the order they were processed; not necessarily contiguous).
    labels
        ``(n, y, x)`` uint8 label slices.
    probabilities
        ``(n, 3, y, x)`` uint8 quantised probabilities of GGO, consolidation, effusion
        (``None`` when the predictor keeps no probabilities).
    slice_probabilities
        ``(n, 3)`` float32 probability that each finding is present on each slice.
    fraction
        Share of the scan's work done after this slab (0..1).
    """

    z: np.ndarray
    labels: np.ndarray
    probabilities: Optional[np.ndarray]
    slice_probabilities: np.ndarray
    fraction: float


@dataclass
class Prediction:
    """The AI reading of one scan.

    Attributes
    ----------
    labels
        ``(z, y, x)`` uint8 label map in the scan's geometry (0 bg, 1 GGO, 2 consolidation, 3 effusion).
    probabilities
        ``(z, 3, y, x)`` uint8, ``p = value / 255``, channel ``c`` is label ``c + 1``; or ``None``.
    slice_probabilities
        ``(z, 3)`` float32 probability that each finding is on each slice (0 on slices not segmented).
    scan_probabilities
        Finding key -> probability that the scan shows it (see the module docstring).
    covid_probability
        P(COVID-19) from the COVID classifier on central lung slices, or ``None``. The
        classifier was trained on CT images published in papers (UCSD COVID-CT): a
        research signal, not a diagnosis.
    segmented
        ``(z,)`` bool: slices that went through the segmentation model (the others
        lie outside the lungs and are background).
    geometry
        The scan's geometry (``labels`` has its shape).
    models
        Role -> ``{"name", "version", "architecture", ...}`` of the models used.
    timings
        Seconds per stage (``load_s``, ``first_slab_s``, ``roi_s``, ``segmentation_s``,
        ``covid_s``, ``total_s``) and counts.
    device
        ``"cpu"`` or ``"cuda:0"``...
    slice_probability_source
        ``"findings classifier"`` or ``"segmentation"`` (the largest pixel
        probability of the slice when no finding classifier is available).
    notes
        Caveats a user should read (binary model shown as GGO, probabilities not calibrated...).
    lungs
        The scan's :class:`~engine.anatomy.LungMasks` (found once; the kept GGO and
        consolidation filled back), or ``None`` when not found.
    rules_removed
        Anatomy rule name -> finding key -> voxels it removed (:mod:`.gate`, plus
        ``"low_evidence"``: slices whose probability was 0.5 or less).
    classifier_probabilities
        ``(z, 3)`` output of the finding classifier when one was run, else ``None``
        (research only; not the finding probability).
    presence_calibrated
        False when the probabilities come from default, not fitted, coefficients.
    nodules
        :class:`~.nodules.Nodule` s the ``solid_nodule`` rule took out of the consolidation
        (a notice each in :attr:`notes`): not pneumonia, not assessed, to review.
    not_assessed
        Reasons the reading was not made (empty when it was): the labels are empty and
        no probability or severity may be shown.
    """

    labels: np.ndarray
    probabilities: Optional[np.ndarray]
    slice_probabilities: np.ndarray
    scan_probabilities: dict[str, float]
    covid_probability: Optional[float]
    segmented: np.ndarray
    geometry: Geometry
    models: dict[str, Any]
    timings: dict[str, float]
    device: str
    slice_probability_source: str = "findings classifier"
    notes: list[str] = field(default_factory=list)
    #: ``(z, y, x)`` bool lung mask from the lung model (segmented slices only), or ``None``
    lung_mask: Optional[np.ndarray] = None
    lungs: Optional[Any] = None
    rules_removed: dict[str, dict[str, int]] = field(default_factory=dict)
    classifier_probabilities: Optional[np.ndarray] = None
    presence_calibrated: bool = True
    not_assessed: list[str] = field(default_factory=list)
    #: finding key -> :class:`.presence.Regions` scored after the anatomy rules, before the
    #: evidence threshold (what ``engine calibrate`` fits on)
    evidence: Optional[dict] = None
    nodules: list = field(default_factory=list)

    @property
    def assessed(self) -> bool:
        """True when the reading was made (:attr:`not_assessed` is empty)."""
        return not self.not_assessed

    def probability(self, label: int) -> np.ndarray:
        """Float32 ``(z, y, x)`` probability map of finding ``label`` (1, 2 or 3)."""
        if self.probabilities is None:
            raise ValueError("This prediction kept no probability maps.")
        c = FINDINGS.index(int(label))
        return self.probabilities[:, c].astype(np.float32) / 255.0

    def peak_slice(self, label: int) -> Optional[int]:
        """Slice with the most voxels of ``label`` (``None`` when there are none)."""
        counts = (self.labels == int(label)).sum(axis=(1, 2))
        return int(np.argmax(counts)) if counts.max() > 0 else None

    def slices_with(self, label: int) -> list[int]:
        """Slices where ``label`` is present in the label map."""
        return [int(z) for z in np.flatnonzero((self.labels == int(label)).any(axis=(1, 2)))]


def covid_slices(segmented: np.ndarray, count: int = 5) -> np.ndarray:
    """Up to ``count`` slices evenly spread over the central half of the segmented range."""
    zs = np.flatnonzero(segmented)
    if zs.size == 0:
        return zs
    lo, hi = zs[0], zs[-1]
    a = lo + 0.25 * (hi - lo)
    b = lo + 0.75 * (hi - lo)
    picks = np.unique(np.round(np.linspace(a, b, count)).astype(np.int64))
    return picks
