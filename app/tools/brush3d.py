"""3D brush (Shift+B): paint a ball of the brush radius instead of a disk on the slice."""

from __future__ import annotations

from .brush import BrushTool


class Brush3DTool(BrushTool):
    """The brush with a sphere (one undo step per stroke)."""

    name, title, shortcut = "brush3d", "3D brush", "Shift+B"
    sphere = True
