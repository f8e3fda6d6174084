"""Interaction tools of the slice views: one file per tool (STYLE rule 8).

Each tool is a small class that declares its ``name``, ``title``, ``shortcut`` and the
``options`` rows it uses (see :class:`app.state.interaction.ViewTool`), and calls only
model APIs: the crosshair moves the session's cursor; the ruler and
ellipse ROI write :class:`app.state.measurements.Measurements`; the editing tools compute regions
with :mod:`engine.editing.ops` and paint them through the label layer's
:class:`engine.editing.LabelEditor` (:class:`~app.tools.base.EditContext`), never into
the array. Adding a tool is one file here plus its entry in :data:`EDIT_TOOLS`.
"""

from .base import EditContext, EditTool
from .brush import BrushTool
from .brush3d import Brush3DTool
from .crosshair import CrosshairTool
from .eraser import EraserTool
from .fill import FloodFillTool
from .fill3d import Fill3DTool
from .freehand import FreehandRoiTool
from .lasso import LassoTool
from .roi import EllipseRoiTool
from .ruler import RulerTool
from .threshold import ThresholdBrushTool

#: the editing tools in menu and toolbar order
EDIT_TOOLS: tuple[type[EditTool], ...] = (BrushTool, Brush3DTool, EraserTool, ThresholdBrushTool, LassoTool,
                                          FloodFillTool, Fill3DTool)

__all__ = ["EDIT_TOOLS", "Brush3DTool", "BrushTool", "CrosshairTool", "EditContext", "EditTool", "EllipseRoiTool",
           "EraserTool", "FreehandRoiTool", "RulerTool",
           "Fill3DTool", "FloodFillTool", "LassoTool", "ThresholdBrushTool"]
