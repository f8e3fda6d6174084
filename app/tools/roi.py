"""Ellipse ROI (O): drag the box of an ellipse on a slice; its mean, SD and area show beside it.

Mean and SD are of the scan's own values of that slice (HU on CT, grey levels on 8-bit
images); the area is in mm² (pixels when the spacing is unknown). See
:class:`app.state.measurements.Measurements`.
"""

from __future__ import annotations

from .ruler import RulerTool


class EllipseRoiTool(RulerTool):
    """Press at one corner of the ellipse's box, release at the opposite one."""

    name, title, shortcut = "roi", "Ellipse ROI", "O"
    kind = "ellipse"
