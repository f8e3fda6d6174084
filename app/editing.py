"""Label editing in the main window: tools, undo/redo, crash recovery, unsaved-edit guard, export.

``install(window)`` (called by :class:`app.main_window.MainWindow` through ``EXTENSIONS``)
creates one :class:`EditingController` and keeps it as ``window.editing``.

Data flow: the controller owns one :class:`engine.editing.LabelEditor` per open scan.
Tools (:mod:`app.tools`) paint through the editor; the editor's ``changed`` callback
mirrors each changed box into ``window.labels`` (:class:`app.models.LabelLayerModel`)
with ``write``, so the views repaint only the touched slices. A label map put on the
layer by someone else (opened file, phantom) becomes the new starting point of a fresh
editor. **Other flows that change labels must go through the editor**: e.g. the AI
flow calls ``window.editing.editor.apply_ai_result(labels)`` (one undo step named
"AI segmentation"; hand-edit tracking restarts from it).

Each committed step is journaled to the user data folder (:mod:`engine.editing.journal`);
at start-up, and when a scan with unsaved edits from an earlier session opens, LungLens
asks (non-modally) whether to restore them; a journal that cannot be written is reported
once. Quitting or opening another scan with unsaved edits asks first
(:mod:`app.tools.persistence`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from engine.editing import DEFAULT_MAX_BYTES, DEFAULT_MIN_STEPS, History, Journal, LabelEditor
from engine.errors import LungLensError
from engine.labels import DEFAULT_TABLE
from engine.types import Volume

from .tools import BRUSHES, BrushTool, EditTool, FloodFillTool, LassoTool, ToolSettings
from .tools import commands
from .tools.options import OptionsPanel
from .tools.outline import BrushOutline
from .tools.persistence import PersistenceFlow, edited_mask_name  # noqa: F401 (re-exported)
from .worker import error_message

if TYPE_CHECKING:  # pragma: no cover
    from .main_window import MainWindow

log = logging.getLogger(__name__)

#: settings keys of the undo memory budget (MB) and of the steps always kept
UNDO_BUDGET_KEY, UNDO_MIN_STEPS_KEY = "editing/undo_budget_mb", "editing/undo_min_steps"


def install(window: "MainWindow") -> "EditingController":
    """Add label editing to ``window``; the controller is kept as ``window.editing``."""
    controller = EditingController(window)
    window.editing = controller  # type: ignore[attr-defined]
    return controller


class EditingController(QObject):
    """Owns the editor of the open scan and the editing actions of one main window.

    Signals
    -------
    editor_replaced()
        a new :class:`LabelEditor` (new scan, labels opened, edits restored).

    The crash-recovery, unsaved-edit and export flows live in ``self.persistence``
    (:class:`app.tools.persistence.PersistenceFlow`).
    """

    editor_replaced = Signal()

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.window = window
        self.settings = ToolSettings(self)
        self._editor: Optional[LabelEditor] = None
        self._mirroring = False
        self.tools: dict[str, EditTool] = {}
        self.options = OptionsPanel(self.settings)
        self.dock = window.add_dock(self.options, "Editing")
        window.menus["view"].addAction(self.dock.toggleViewAction())
        self.persistence = PersistenceFlow(self)
        self._build_actions()
        self.outline = BrushOutline(window.views, self.settings,
                                    lambda: isinstance(window.views.tool, BrushTool))
        window.labels.changed.connect(self._on_layer_changed)
        window.scan_io.volume_opened.connect(self._on_volume_opened)

    # -- EditContext ----------------------------------------------------------
    @property
    def editor(self) -> Optional[LabelEditor]:
        """The editor of the open scan (None before a scan is open)."""
        return self._editor

    def report_error(self, message: str) -> None:
        self.window.show_error(message)

    # -- actions --------------------------------------------------------------
    def _action(self, text: str, shortcut: Any, slot: Callable[[], Any], menu: str = "edit",
                checkable: bool = False) -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            if isinstance(shortcut, (list, tuple)):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.triggered.connect(lambda _checked=False: slot())
        if menu:
            self.window.menus[menu].addAction(action)
        return action

    def _build_actions(self) -> None:
        w = self.window
        edit = w.menus["edit"]
        self.undo_action = self._action("&Undo", QKeySequence.StandardKey.Undo, self.undo)
        self.redo_action = self._action("&Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), self.redo)
        self.cancel_action = self._action("Cancel stroke", "Esc", self.cancel_stroke)
        edit.addSeparator()
        # tools
        tools_menu = w.menus["tools"]
        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        self.navigate_action = self._action("&Navigate (crosshair)", "N", lambda: self.set_tool(None),
                                            menu="tools", checkable=True)
        self.tool_group.addAction(self.navigate_action)
        self.navigate_action.setChecked(True)
        tools: list[EditTool] = [BrushTool(self, cfg) for cfg in BRUSHES]
        tools += [LassoTool(self), FloodFillTool(self, three_d=False), FloodFillTool(self, three_d=True)]
        for tool in tools:
            self.tools[tool.name] = tool
            action = self._action(tool.title, tool.shortcut, lambda t=tool.name: self.set_tool(t),
                                  menu="tools", checkable=True)
            action.setToolTip(f"{tool.title} ({tool.shortcut})")
            self.tool_group.addAction(action)
            self.tool_actions[tool.name] = action
            w.toolbar.addAction(action)
        tools_menu.addSeparator()
        self.label_actions = []
        for lab in DEFAULT_TABLE:
            self.label_actions.append(self._action(f"Paint {lab.name}", str(lab.value),
                                                   lambda v=lab.value: self.settings.set_label(v), menu="tools"))
        self.smaller_action = self._action("Smaller brush", "[", lambda: self.settings.grow(1 / 1.25), menu="tools")
        self.larger_action = self._action("Larger brush", "]", lambda: self.settings.grow(1.25), menu="tools")
        tools_menu.addSeparator()
        self.islands_action = self._action("Remove small &islands", "Shift+I", self.remove_islands, menu="tools")
        self.largest_action = self._action("&Keep largest component", "Shift+K", self.keep_largest, menu="tools")
        self.between_action = self._action("Fill &between slices", "Ctrl+Shift+F", self.fill_between,
                                           menu="tools")
        self.settings.changed.connect(self._refresh)
        self._refresh()

    def _refresh(self) -> None:
        ed = self._editor
        h = ed.history if ed is not None else None
        undo_name = h.undo_name if h is not None else None
        redo_name = h.redo_name if h is not None else None
        self.undo_action.setEnabled(undo_name is not None)
        self.redo_action.setEnabled(redo_name is not None)
        self.undo_action.setText(f"&Undo {undo_name}" if undo_name else "&Undo")
        self.redo_action.setText(f"&Redo {redo_name}" if redo_name else "&Redo")
        has = ed is not None
        for a in (self.persistence.export_action, self.islands_action, self.largest_action, self.between_action):
            a.setEnabled(has)
        if ed is not None:
            self.options.set_hand_edits(ed.person_changes_ml())
            if ed.journal_error and not getattr(ed, "_journal_error_shown", False):
                ed._journal_error_shown = True  # type: ignore[attr-defined]
                self.window.show_error(ed.journal_error)
        tool = self.window.views.tool
        self.options.set_tool_title(getattr(tool, "title", "Navigate"))

    # -- tools ----------------------------------------------------------------
    def set_tool(self, name: Optional[str]) -> None:
        """Make tool ``name`` (``"brush"``, ``"brush3d"``, ``"eraser"``, ``"threshold"``, ``"lasso"``,
        ``"fill"``, ``"fill3d"``) the left-button tool; ``None`` for the crosshair."""
        current = self.window.views.tool
        if isinstance(current, EditTool):
            current.deactivate()
        tool = self.tools[name] if name else None
        self.window.views.set_tool(tool)
        self.outline.hide()
        action = self.tool_actions.get(name or "", self.navigate_action)
        action.setChecked(True)
        self._refresh()

    def cancel_stroke(self) -> bool:
        """Esc: drop the stroke or outline being drawn."""
        tool = self.window.views.tool
        cancelled = isinstance(tool, EditTool) and tool.cancel()
        if self._editor is not None and self._editor.cancel_stroke():
            cancelled = True
        if cancelled:
            self.window.status_message("Stroke cancelled.")
        return bool(cancelled)

    # -- undo / redo / commands -----------------------------------------------
    def undo(self) -> Optional[str]:
        if self._editor is None:
            return None
        self.cancel_stroke()
        name = self._editor.undo()
        if name:
            self.window.status_message(f"Undid {name}")
        return name

    def redo(self) -> Optional[str]:
        if self._editor is None:
            return None
        name = self._editor.redo()
        if name:
            self.window.status_message(f"Redid {name}")
        return name

    def remove_islands(self) -> int:
        if self._editor is None:
            return 0
        n = commands.remove_small_islands(self._editor, self.settings.label, self.settings.island_ml)
        self.window.status_message(f"Removed {n} voxels in small islands of {self.settings.label_name}.")
        return n

    def keep_largest(self) -> int:
        if self._editor is None:
            return 0
        n = commands.keep_largest_component(self._editor, self.settings.label)
        self.window.status_message(f"Removed {n} voxels outside the largest {self.settings.label_name}.")
        return n

    def fill_between(self) -> int:
        if self._editor is None:
            return 0
        s = self.settings
        try:
            n = commands.fill_between_slices(self._editor, s.label, 0, mode="background" if s.mode ==
                                             "everything" else s.mode, over_label=s.over_label,
                                             at=self.window.session.cursor[0])
        except LungLensError as exc:  # e.g. an end slice without the label
            self.window.show_error(error_message(exc))
            return 0
        self.window.status_message(f"Filled {n} voxels of {s.label_name} between slices.")
        return n

    # -- editor lifecycle -----------------------------------------------------
    def _new_editor(self, labels: np.ndarray) -> LabelEditor:
        vol = self.window.session.volume
        assert vol is not None
        old = self._editor
        if old is not None and old.journal is not None and not old.dirty:
            old.journal.discard()  # saved or untouched: nothing to recover
        elif old is not None and old.journal is not None:
            old.journal.close()    # unsaved edits stay on disk and will be offered next time
        ed = LabelEditor(labels, vol.geometry, intensities=vol.array, source=vol.source,
                         journal=Journal.for_scan(vol.source, vol.geometry), history=self.new_history())
        self._adopt(ed)
        return ed

    def new_history(self) -> History:
        """An undo history with the budget of the settings (``editing/undo_budget_mb``, default 512,
        and ``editing/undo_min_steps``, default 10)."""
        st = self.window.settings
        mb = float(st.value(UNDO_BUDGET_KEY, DEFAULT_MAX_BYTES / 2 ** 20))
        steps = int(st.value(UNDO_MIN_STEPS_KEY, DEFAULT_MIN_STEPS))
        return History(max_bytes=int(mb * 2 ** 20), min_steps=steps)

    def _adopt(self, ed: LabelEditor) -> None:
        self._editor = ed
        ed.changed.append(self._mirror)
        ed.history_changed.append(self._refresh)
        self.editor_replaced.emit()
        self._refresh()

    def _mirror(self, box: tuple[slice, slice, slice]) -> None:
        """Editor -> layer: copy the changed box so the views repaint the touched slices only."""
        ed = self._editor
        if ed is None:
            return
        bbox = tuple(v for s in box for v in (s.start, s.stop))
        self._mirroring = True
        try:
            self.window.labels.write(bbox, ed.labels[box])
        finally:
            self._mirroring = False
        if not ed.stroke_active:
            self.options.set_hand_edits(ed.person_changes_ml())

    def _on_layer_changed(self, bbox: Any) -> None:
        """Layer -> editor, for changes that did not come from the editor."""
        if self._mirroring or self.window.session.volume is None:
            return
        layer = self.window.labels
        if layer.shape != self.window.session.volume.shape:
            return
        if bbox is None or self._editor is None or self._editor.shape != layer.shape:
            self._new_editor(layer.array.copy())  # new scan or a label map opened: a fresh start
        else:  # a block written by another flow: one undo step, so nothing escapes undo/journal
            z0, z1, y0, y1, x0, x1 = bbox
            box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
            self._mirroring = True
            try:
                self._editor.apply_box(box, layer.array[box].copy(), "External edit")
            finally:
                self._mirroring = False

    def _on_volume_opened(self, volume: Volume) -> None:
        self.persistence.reset()
        self._new_editor(self.window.labels.array.copy())
        self.persistence.offer_restore(volume)

    def adopt_restored(self, ed: LabelEditor) -> None:
        """Make the editor rebuilt from a journal current and show its labels."""
        old = self._editor
        if old is not None and old.journal is not None:
            old.journal.discard()
        self._adopt(ed)
        self._mirroring = True
        try:
            self.window.labels.set_array(ed.labels.copy(), "restored edits")
        finally:
            self._mirroring = False

    @property
    def has_unsaved_edits(self) -> bool:
        return self.persistence.has_unsaved_edits
