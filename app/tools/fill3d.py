"""3D fill (Shift+F): the whole connected 3D region of the clicked voxel gets the current label."""

from __future__ import annotations

from .fill import FloodFillTool


class Fill3DTool(FloodFillTool):
    """3D flood fill (at most a quarter of the volume); one undo step."""

    name, title, shortcut = "fill3d", "3D fill", "Shift+F"
    three_d = True
