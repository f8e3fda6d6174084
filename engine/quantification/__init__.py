"""Numbers from masks: lungs, volumes, % involvement, severity score, reports.

Data flow
---------
scan (:class:`~engine.types.Volume`) -> :func:`lung_masks` (:mod:`.lungs`: left/right lung
masks and upper/middle/lower zones, from HU or intensity rules, optionally united with a
model's mask) -> :func:`quantify` or :class:`IncrementalQuantifier` (:mod:`.numbers`:
per-finding mL, % of each lung and both, per zone, HU statistics, severity scores of
:mod:`.severity`) -> :mod:`.report` (JSON, CSV, PDF with key images from :mod:`.images`).

The quantifier keeps voxel counts per (zone, label) and an HU histogram per label, so
an edit updates the numbers by recounting only the edited box.
"""

from ..anatomy.lungs import ZONES, LungMasks, lung_masks, unite_findings
from .numbers import FindingStats, IncrementalQuantifier, Quantification, quantify
from .severity import SeverityScore, severity_scores

__all__ = ["ZONES", "LungMasks", "lung_masks", "unite_findings", "FindingStats", "Quantification",
           "IncrementalQuantifier", "quantify", "SeverityScore", "severity_scores"]
