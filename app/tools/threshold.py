"""Threshold brush (T): paint only voxels whose HU lie in the options' range (finding presets)."""

from __future__ import annotations

from .brush import BrushTool


class ThresholdBrushTool(BrushTool):
    """The brush restricted to an HU range (one undo step per stroke)."""

    name, title, shortcut = "threshold", "Threshold brush", "T"
    options = ("label", "radius", "paint_over", "threshold")
    threshold = True
