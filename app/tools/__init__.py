"""Label editing tools of the slice views (one small class per tool, STYLE rule 8).

:class:`~app.tools.settings.ToolSettings`
    the editing options (label, brush size, paint-over mode, HU range, island size):
    a model with a ``changed`` signal that the options panel mirrors.
:class:`~app.tools.base.EditTool`
    base class: a :class:`app.views.tools.ViewTool` that reaches the
    :class:`engine.editing.LabelEditor` and the settings through its context (the
    editing controller of :mod:`app.editing`); it never touches the label array.
:mod:`~app.tools.brush` (brush, 3D brush, eraser, threshold brush: one class, four
configurations), :mod:`~app.tools.lasso`, :mod:`~app.tools.fill` (2D and 3D flood fill)
compute regions with :mod:`engine.editing.ops` and paint them through the editor.
:mod:`~app.tools.commands` holds the whole-volume commands (remove small islands, keep
the largest component, fill between slices); :mod:`~app.tools.options` the options panel;
:mod:`~app.tools.persistence` the crash-restore prompt, the unsaved-edit guard and export.
"""

from .base import EditContext, EditTool
from .brush import BRUSHES, BrushConfig, BrushTool
from .fill import FloodFillTool
from .lasso import LassoTool
from .settings import ToolSettings

__all__ = ["EditContext", "EditTool", "BRUSHES", "BrushConfig", "BrushTool", "FloodFillTool", "LassoTool",
           "ToolSettings"]
