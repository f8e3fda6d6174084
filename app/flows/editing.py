"""The editing flow: tools, undo/redo, whole-volume commands and the options panel.

The labels live in the label layer's :class:`engine.editing.LabelEditor`
(:class:`app.state.label_layer.LabelLayer`); this flow only offers the ways to change
them. Each tool of :data:`app.tools.EDIT_TOOLS` paints through the editor, undo/redo
call it, and the commands of :mod:`engine.editing.commands` run on it; the layer
announces every changed box, so the views repaint the touched slices only.

Crash recovery and the unsaved-edits guard are :mod:`app.flows.recovery`; export is
:mod:`app.flows.export`.
"""

from __future__ import annotations

import logging
from typing import Optional

from PySide6.QtCore import QObject
from PySide6.QtGui import QActionGroup, QKeySequence

from engine.editing import History, LabelEditor, commands
from engine.errors import LungLensError
from engine.labels import DEFAULT_TABLE

from ..context import AppContext
from ..state.tasks import error_message
from ..state.tool_settings import ToolSettings
from ..tools import EDIT_TOOLS, BrushTool, EditContext, EditTool
from ..views.brush_outline import BrushOutline
from ..views.view_set import ViewSet
from ..widgets.tool_options import OptionsPanel

log = logging.getLogger(__name__)


class EditingFlow(QObject):
    """The editing actions of one main window.

    Parameters
    ----------
    ctx
        The window's context (the label layer holds the editor).
    views
        The slice views (the tools are set on them; the brush outline is drawn in them).
    """

    def __init__(self, ctx: AppContext, views: ViewSet) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.views = views
        self.settings = ToolSettings(self)
        self.options = OptionsPanel(self.settings)
        self.dock = ctx.actions.dock(self.options, "Editing")
        ctx.actions.menus["view"].addAction(self.dock.toggleViewAction())
        tool_context = EditContext(ctx.labels, self.settings, ctx.notices.error)
        self.tools: dict[str, EditTool] = {cls.name: cls(tool_context) for cls in EDIT_TOOLS}
        self._reported_journal: Optional[LabelEditor] = None
        self._build_actions()
        self.outline = BrushOutline(views, self.settings, lambda: isinstance(views.tool, BrushTool))
        ctx.labels.history_changed.connect(self._refresh)
        ctx.labels.editor_replaced.connect(self._refresh)
        ctx.labels.changed.connect(self._on_labels_changed)
        ctx.session.volume_changed.connect(lambda v: v is not None and self.options.set_units(
            v.geometry.spacing_known, v.is_hu, v.geometry.voxel_volume_ml))  # units follow the data
        self._refresh()

    # -- state ----------------------------------------------------------------
    @property
    def editor(self) -> Optional[LabelEditor]:
        """The editor of the open scan (the label layer's; None before a scan is open)."""
        return self.ctx.labels.editor

    def new_history(self) -> History:
        """An undo history with the budget of the preferences."""
        return self.ctx.preferences.new_history()

    # -- actions --------------------------------------------------------------
    def _build_actions(self) -> None:
        a = self.ctx.actions
        self.undo_action = a.action("&Undo", self.undo, QKeySequence.StandardKey.Undo, "edit")
        self.redo_action = a.action("&Redo", self.redo, ("Ctrl+Shift+Z", "Ctrl+Y"), "edit")
        self.cancel_action = a.action("Cancel stroke", self.cancel_stroke, None, "edit")  # Esc: app.flows.keys
        a.menus["edit"].addSeparator()
        self.tool_group = QActionGroup(self)
        self.navigate_action = a.action("&Navigate (crosshair)", lambda: self.set_tool(None), "N", "tools",
                                        checkable=True)
        self.tool_group.addAction(self.navigate_action)
        self.navigate_action.setChecked(True)
        self.tool_actions = {}
        for tool in self.tools.values():
            action = a.action(tool.title, lambda t=tool.name: self.set_tool(t), tool.shortcut, "tools",
                              checkable=True, tip=f"{tool.title} ({tool.shortcut})")
            self.tool_group.addAction(action)
            self.tool_actions[tool.name] = action
            a.toolbar.addAction(action)
        a.menus["tools"].addSeparator()
        self.label_actions = [a.action(f"Paint {lab.name}", lambda v=lab.value: self.settings.set_label(v),
                                       str(lab.value), "tools") for lab in DEFAULT_TABLE]
        self.smaller_action = a.action("Smaller brush", lambda: self.settings.grow(1 / 1.25), ("-", "["), "tools")
        self.larger_action = a.action("Larger brush", lambda: self.settings.grow(1.25), ("+", "=", "]"), "tools")
        a.menus["tools"].addSeparator()
        self.islands_action = a.action("Remove small &islands", self.remove_islands, "Shift+I", "tools")
        self.largest_action = a.action("&Keep largest component", self.keep_largest, "Shift+K", "tools")
        self.between_action = a.action("Fill &between slices", self.fill_between, "Ctrl+Shift+F", "tools")
        self.settings.changed.connect(self._refresh)

    def set_escape_enabled(self, enabled: bool) -> None:
        """Esc cancels strokes unless another flow claims it (the AI proposal's reject)."""
        self.cancel_action.setEnabled(enabled)

    def _refresh(self) -> None:
        ed = self.editor
        h = ed.history if ed is not None else None
        undo_name = h.undo_name if h is not None else None
        redo_name = h.redo_name if h is not None else None
        self.undo_action.setEnabled(undo_name is not None)
        self.redo_action.setEnabled(redo_name is not None)
        self.undo_action.setText(f"&Undo {undo_name}" if undo_name else "&Undo")
        self.redo_action.setText(f"&Redo {redo_name}" if redo_name else "&Redo")
        for action in (self.islands_action, self.largest_action, self.between_action):
            action.setEnabled(ed is not None)
        if ed is not None:
            self.options.set_hand_edits(ed.person_changes_ml())
            if ed.journal_error and ed is not self._reported_journal:
                self._reported_journal = ed  # once per editor
                self.ctx.notices.error(ed.journal_error)
        tool = self.views.tool
        self.options.set_tool(tool.title if isinstance(tool, EditTool) else "Navigate",
                              tool.options if isinstance(tool, EditTool) else None)

    def _on_labels_changed(self, _bbox: object) -> None:
        ed = self.editor
        if ed is not None and not ed.stroke_active:
            self.options.set_hand_edits(ed.person_changes_ml())

    # -- tools ----------------------------------------------------------------
    def set_tool(self, name: Optional[str]) -> None:
        """Make tool ``name`` (a key of :attr:`tools`) the left-button tool; ``None`` for the crosshair."""
        current = self.views.tool
        if isinstance(current, EditTool):
            current.deactivate()
        self.views.set_tool(self.tools[name] if name else None)
        self.outline.hide()
        self.tool_actions.get(name or "", self.navigate_action).setChecked(True)
        self._refresh()

    def cancel_stroke(self) -> bool:
        """Esc: drop the stroke or outline being drawn."""
        tool = self.views.tool
        cancelled = isinstance(tool, EditTool) and tool.cancel()
        ed = self.editor
        if ed is not None and ed.cancel_stroke():
            cancelled = True
        if cancelled:
            self.ctx.notices.status("Stroke cancelled.")
        return bool(cancelled)

    # -- undo / redo / commands -----------------------------------------------
    def undo(self) -> Optional[str]:
        ed = self.editor
        if ed is None:
            return None
        self.cancel_stroke()
        name = ed.undo()
        if name:
            self.ctx.notices.status(f"Undid {name}")
        return name

    def redo(self) -> Optional[str]:
        ed = self.editor
        if ed is None:
            return None
        name = ed.redo()
        if name:
            self.ctx.notices.status(f"Redid {name}")
        return name

    def remove_islands(self) -> int:
        ed = self.editor
        if ed is None:
            return 0
        n = commands.remove_small_islands(ed, self.settings.label, self.settings.island_ml)
        self.ctx.notices.status(f"Removed {n} voxels in small islands of {self.settings.label_name}.")
        return n

    def keep_largest(self) -> int:
        ed = self.editor
        if ed is None:
            return 0
        n = commands.keep_largest_component(ed, self.settings.label)
        self.ctx.notices.status(f"Removed {n} voxels outside the largest {self.settings.label_name}.")
        return n

    def fill_between(self) -> int:
        ed = self.editor
        if ed is None:
            return 0
        s = self.settings
        try:
            n = commands.fill_between_slices(ed, s.label, 0, mode="background" if s.mode == "everything" else s.mode,
                                             over_label=s.over_label, at=self.ctx.session.cursor[0])
        except LungLensError as exc:  # e.g. an end slice without the label
            self.ctx.notices.error(error_message(exc))
            return 0
        self.ctx.notices.status(f"Filled {n} voxels of {s.label_name} between slices.")
        return n
