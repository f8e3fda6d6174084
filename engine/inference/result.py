"""What the predictor hands back: :class:`Slab` (one group of slices, as it is
finished) and :class:`Prediction` (the whole scan, only ever returned complete).

Memory
------
Probability maps are stored as ``uint8`` (``p = value / 255``, error <= 0.002) for
the three findings only (background is one minus their sum): a 512x512x300 scan needs
236 MB instead of 1.2 GB for four float32 maps.

Whole-scan finding probability
------------------------------
The finding classifier answers per slice. A scan has the finding when some slices
have it, but one noisy slice should not decide: per-slice probabilities are averaged
over a moving window of 3 slices (1 when slices are 5 mm or thicker), then the
maximum over the segmented (lung) slices is the scan's probability. Noisy-or was
rejected: over 200 lung slices it saturates to 1 for any small per-slice noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from scipy import ndimage

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
        Caveats a user should read (binary model shown as GGO, lungs not found, ...).
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


def smoothing_window(slice_mm: float) -> int:
    """Moving-average window (slices) for the whole-scan aggregation."""
    return 1 if slice_mm >= 5.0 else 3


def scan_probabilities(slice_probs: np.ndarray, segmented: np.ndarray, slice_mm: float) -> dict[str, float]:
    """Whole-scan probability per finding: max over segmented slices of the smoothed per-slice probability."""
    out: dict[str, float] = {}
    if not segmented.any():
        return {FINDING_KEYS[lab]: 0.0 for lab in FINDINGS}
    w = smoothing_window(slice_mm)
    for c, lab in enumerate(FINDINGS):
        p = slice_probs[:, c].astype(np.float64)
        if w > 1:
            # average only over segmented neighbours: unsegmented slices carry no evidence
            num = ndimage.uniform_filter1d(np.where(segmented, p, 0.0), w, mode="nearest")
            den = ndimage.uniform_filter1d(segmented.astype(np.float64), w, mode="nearest")
            p = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        out[FINDING_KEYS[lab]] = float(p[segmented].max())
    return out


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
