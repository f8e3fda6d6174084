"""Eraser (E): set voxels under the brush to background (only the chosen label with "Only label…")."""

from __future__ import annotations

from .brush import BrushTool


class EraserTool(BrushTool):
    """The brush painting 0 (one undo step per stroke)."""

    name, title, shortcut = "eraser", "Eraser", "E"
    options = ("radius", "paint_over")
    erase = True
