"""Compatibility alias: the lungs now live in :mod:`engine.anatomy.lungs`.

Kept so that ``engine.quantification.lung_masks`` and older imports keep working; new
code imports from :mod:`engine.anatomy`.
"""

from ..anatomy.lungs import ZONES, LungMasks, lung_masks, unite_findings  # noqa: F401

__all__ = ["ZONES", "LungMasks", "lung_masks", "unite_findings"]
