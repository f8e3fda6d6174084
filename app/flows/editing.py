"""The editing flow: tools, undo/redo, whole-volume commands and the options panel.

The labels live in the label layer's :class:`engine.editing.LabelEditor`
(:class:`app.state.label_layer.LabelLayer`); this flow only offers the ways to change
them. Each tool of :data:`app.tools.EDIT_TOOLS` paints through the editor, undo/redo
call it, and the commands of :mod:`engine.editing.commands` run on it; the layer
announces every changed box, so the views repaint the touched slices only.

Fill between slices (Ctrl+Shift+F) interpolates the current label between the two slices
around the cursor where a person painted it (:func:`engine.editing.assist.plan_fill_between`),
shows the voxels it would add as a preview (:class:`app.views.preview_overlay.PreviewOverlay`)
and paints them on Enter (one undo step); Esc drops the preview; when there is nothing to
fill the status bar says why. The fill tools ask before a fill that looks like a leak.

Crash recovery and the unsaved-edits guard are :mod:`app.flows.recovery`; export is
:mod:`app.flows.export`.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QActionGroup, QKeySequence
from PySide6.QtWidgets import QMessageBox

from engine.display import slice_axis
from engine.editing import History, LabelEditor, commands, ops
from engine.editing.assist import describe_extent, fill_between_change, fill_preview
from engine.labels import DEFAULT_TABLE

from ..context import AppContext
from ..state.tasks import error_message
from ..state.tool_settings import ToolSettings
from ..tools import EDIT_TOOLS, BrushTool, EditContext, EditTool
from ..views.brush_outline import BrushOutline
from ..views.preview_overlay import PreviewOverlay
from ..views.view_set import ViewSet
from ..widgets.tool_options import OptionsPanel

log = logging.getLogger(__name__)


@dataclass
class PendingFill:
    """A fill between slices shown as a preview, waiting for Enter (apply) or Esc (drop)."""

    editor: LabelEditor
    region: ops.Region
    value: int
    mode: str
    over_label: int
    start: int
    stop: int
    voxels: int
    axis: int = 0  # the slices' array axis (0 axial, 1 coronal, 2 sagittal)


def _slices(axis: int) -> str:
    """How the status bar names slices along ``axis`` (plain "slices" for the axial ones, as the viewer does)."""
    return ("slices", "coronal slices", "sagittal slices")[axis]


class EditingFlow(QObject):
    """The editing actions of one main window.

    Parameters
    ----------
    ctx
        The window's context (the label layer holds the editor).
    views
        The slice views (the tools are set on them; the brush outline is drawn in them).

    Signals
    -------
    computed(str)
        a command computed on a worker (:meth:`off_thread`) was applied (its title).
    """

    computed = Signal(str)

    def __init__(self, ctx: AppContext, views: ViewSet) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.views = views
        self.settings = ToolSettings(self)
        self.options = OptionsPanel(self.settings)
        self.dock = ctx.actions.dock(self.options, "Editing")
        ctx.actions.menus["view"].addAction(self.dock.toggleViewAction())
        #: the command computed on a worker now (its title), one at a time
        self.computing: Optional[str] = None
        tool_context = EditContext(ctx.labels, self.settings, ctx.notices.error, self.confirm_leak, self.off_thread)
        self.tools: dict[str, EditTool] = {cls.name: cls(tool_context) for cls in EDIT_TOOLS}
        self._reported_journal: Optional[weakref.ref] = None
        self._reported_spill: Optional[tuple] = None
        self.pending_fill: Optional[PendingFill] = None
        self._escape_free = True
        self.preview = PreviewOverlay(views, ctx.session)
        self._build_actions()
        self.outline = BrushOutline(views, self.settings, lambda: isinstance(views.tool, BrushTool))
        ctx.labels.history_changed.connect(self._refresh)
        ctx.labels.editor_replaced.connect(self._refresh)
        ctx.labels.editor_replaced.connect(lambda: self.drop_fill_preview())
        ctx.labels.editor_replaced.connect(self._drop_held_stroke)
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
            a.tool_bar.addAction(action)
        a.menus["tools"].addSeparator()
        self.label_actions = [a.action(f"Paint {lab.name}", lambda v=lab.value: self.settings.set_label(v),
                                       str(lab.value), "tools") for lab in DEFAULT_TABLE]
        self.smaller_action = a.action("Smaller brush", lambda: self.settings.grow(1 / 1.25), ("-", "["), "tools")
        self.larger_action = a.action("Larger brush", lambda: self.settings.grow(1.25), ("+", "=", "]"), "tools")
        a.menus["tools"].addSeparator()
        self.islands_action = a.action("Remove small &islands", self.remove_islands, "Shift+I", "tools")
        self.largest_action = a.action("&Keep largest component", self.keep_largest, "Shift+K", "tools")
        self.between_action = a.action("Fill &between slices", self.fill_between, "Ctrl+Shift+F", "tools",
                                       tip="Interpolate the label between the two slices around this one where "
                                           "you painted it: a preview, then Enter applies it, Esc drops it")
        self.apply_fill_action = a.action("Apply fill between slices", self.apply_fill,
                                          (QKeySequence(Qt.Key.Key_Return), QKeySequence(Qt.Key.Key_Enter)), "tools")
        self.apply_fill_action.setEnabled(False)
        a.owner.addAction(self.apply_fill_action)
        self.settings.changed.connect(self._refresh)

    def set_escape_enabled(self, enabled: bool) -> None:
        """Esc cancels strokes unless another flow claims it (the AI proposal's reject).

        While it is claimed (an AI proposal waits for Enter / Esc) a fill preview is dropped,
        so that Enter and Esc each mean one thing.
        """
        self._escape_free = enabled
        if not enabled and self.drop_fill_preview():
            self.ctx.notices.status("Fill between slices dropped: accept or reject the AI proposal first.")
        self.cancel_action.setEnabled(enabled)

    def _drop_held_stroke(self) -> None:
        """Other labels (another scan) replaced the ones a held stroke paints: the stroke ends here, dropped and
        said (it went on painting the previous scan's hidden labels at the new scan's coordinates)."""
        tool = self.views.tool
        if isinstance(tool, EditTool) and tool.cancel():
            self.ctx.notices.warn("The stroke being drawn was dropped: other labels (another scan) opened while "
                                  "you drew. Draw it again on the scan now shown.")

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
            self.options.set_hand_edits(ed.person_changes_ml(), self.ctx.case.edited_by_person() is None)
            # once per editor (and reason); weak references: a replaced editor and its labels are freed
            if ed.journal_error and (self._reported_journal is None or self._reported_journal() is not ed):
                self._reported_journal = weakref.ref(ed)
                self.ctx.notices.error(ed.journal_error)
            spill = self._reported_spill
            if h is not None and h.spill_error and (spill is None or spill[0]() is not ed or spill[1] != h.spill_error):
                self._reported_spill = (weakref.ref(ed), h.spill_error)
                self.ctx.notices.error(h.spill_error)
        tool = self.views.tool
        self.options.set_tool(tool.title if isinstance(tool, EditTool) else "Navigate",
                              tool.options if isinstance(tool, EditTool) else None)

    def _on_labels_changed(self, _bbox: object) -> None:
        ed = self.editor
        if ed is not None and not ed.stroke_active:
            self.options.set_hand_edits(ed.person_changes_ml(), self.ctx.case.edited_by_person() is None)

    # -- tools ----------------------------------------------------------------
    def set_tool(self, name: Optional[str]) -> None:
        """Make tool ``name`` (a key of :attr:`tools`) the left-button tool; ``None`` for the crosshair."""
        current = self.views.tool
        if isinstance(current, EditTool):
            current.deactivate()
        self.views.set_tool(self.tools[name] if name else None)
        self.outline.hide()
        self.tool_actions.get(name or "", self.navigate_action).setChecked(True)
        if name and not self.dock.isHidden():  # the tool's options (size, paint-over, range) come forward,
            self.dock.raise_()                 # not behind the AI findings tab (QA pass); a closed dock stays closed
        self._refresh()

    def confirm_leak(self, question: str) -> bool:
        """Ask ``question`` (a fill that looks like a leak): True when the user chose "Fill anyway"."""
        box = QMessageBox(QMessageBox.Icon.Question, "LungLens", question, QMessageBox.StandardButton.NoButton,
                          self.ctx.actions.owner)
        fill = box.addButton("Fill anyway", QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.exec()
        ok = box.clickedButton() is fill
        if not ok:
            self.ctx.notices.status("Fill cancelled; nothing was painted.")
        return ok

    def cancel_stroke(self) -> bool:
        """Esc: drop the fill preview, or the stroke or outline being drawn."""
        if self.drop_fill_preview():
            self.ctx.notices.status("Fill between slices dropped; nothing was painted.")
            return True
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
        if self.cancel_stroke():  # mid-stroke (or over a fill preview) Ctrl+Z takes back only that
            return "the stroke being drawn"
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

    def off_thread(self, title: str, compute: Callable[[], Any], apply: Callable[[Any], None]) -> None:
        """Run ``compute()`` on a worker with a progress bar, then ``apply(result)`` here, on the GUI thread,
        unless the labels changed meanwhile (then nothing is changed, and said): a 3D fill of a lung or the
        islands of a large scan took 0.3-1.5 s on the GUI thread (QA pass: the window froze)."""
        ed = self.editor
        if ed is None:
            return
        if self.computing is not None:
            self.ctx.notices.status(f"{self.computing} is still being computed: wait for it, then try again.")
            return
        version, self.computing = ed.version, title

        def done(result: Any) -> None:
            self.computing = None
            if self.editor is not ed or ed.version != version or ed.stroke_active:
                self.ctx.notices.warn(f"{title}: the labels changed while it was computed, so nothing was changed. "
                                      "Do it again.")
                return
            apply(result)
            self.computed.emit(title)

        def ended(*_: Any) -> None:
            self.computing = None

        self.ctx.run(lambda progress=None, cancel=None: compute(), title=title, on_result=done,
                     on_cancel=ended, on_error=lambda exc: (ended(), self.ctx.notices.error(error_message(exc))))

    def remove_islands(self) -> None:
        """Shift+I: erase the small islands of the current label (computed on a worker)."""
        ed, value, name, ml = self.editor, self.settings.label, self.settings.label_name, self.settings.island_ml
        if ed is not None:
            self.off_thread("Removing small islands", lambda: commands.small_islands_region(ed, value, ml),
                            lambda region: self._erase(ed, region, value, f"Remove islands of {name}",
                                                       f"small islands of {name}"))

    def keep_largest(self) -> None:
        """Shift+K: erase every piece of the current label but the largest (computed on a worker)."""
        ed, value, name = self.editor, self.settings.label, self.settings.label_name
        if ed is not None:
            self.off_thread("Keeping the largest component", lambda: commands.outside_largest_region(ed, value),
                            lambda region: self._erase(ed, region, value, f"Keep largest {name}",
                                                       f"pieces outside the largest {name}"))

    def _erase(self, ed: LabelEditor, region: ops.Region, value: int, step: str, what: str) -> None:
        done = ed.paint(region, 0, name=step, mode="label", over_label=value)
        self.ctx.notices.status(f"Removed {0 if done is None else done.delta.count} voxels in {what}.")

    def fill_between(self) -> None:
        """Ctrl+Shift+F: preview the fill between the hand-painted slices around the cursor (planned on a worker:
        0.5 s on the GUI thread of a 300-slice scan, QA pass). Enter (:meth:`apply_fill`) paints it, Esc drops
        it; when there is nothing to fill the status bar says why."""
        ed = self.editor
        if ed is None:
            return
        self.drop_fill_preview()
        if not self._escape_free:
            self.ctx.notices.status("Accept (Enter) or reject (Esc) the AI proposal first, then fill between slices.")
            return
        s, cursor = self.settings, tuple(int(c) for c in self.ctx.session.cursor)
        label, name, mode, over = s.label, s.label_name, "background" if s.mode == "everything" else s.mode, \
            s.over_label  # "everything": other findings are kept
        # the orientation the strokes were painted in first (else the view in focus), then the others
        focused = next((v for v in self.views if v.hasFocus()), None)
        first = self.settings.painted_axis
        if first is None:
            first = slice_axis(focused.plane) if focused is not None else 0
        axes = (first,) + tuple(a for a in (0, 1, 2) if a != first)

        hidden = self.ctx.labels.hidden - {label}  # never changed while hidden, as by the other tools

        def plan() -> Any:
            return fill_between_change(ed.labels, ed.person_mask(), label, cursor, ed.spacing, name, mode, over,
                                       axes, hidden)

        self.off_thread("Planning the fill between slices", plan,
                        lambda planned: self._show_fill(ed, planned, label, name, mode, over))

    def _show_fill(self, ed: LabelEditor, planned: Any, label: int, name: str, mode: str,
                   over: Optional[int]) -> None:
        if isinstance(planned, str):
            self.ctx.notices.status(planned, 15000)
            return
        if not self._escape_free:  # an AI proposal arrived while it was planned: Enter and Esc are the proposal's
            self.ctx.notices.status("Accept (Enter) or reject (Esc) the AI proposal first, then fill between slices.")
            return
        plan, region = planned
        preview = fill_preview(ed.labels, region)  # 1 would be added, 3 another finding would change
        self.pending_fill = PendingFill(ed, region, label, mode, over, plan.start, plan.stop, region.count, plan.axis)
        self.preview.show(preview)
        self.apply_fill_action.setEnabled(True)
        size = describe_extent(region, ed.spacing if ed.geometry.spacing_known else None, plan.axis).describe()
        self.ctx.notices.status(f"Fill {name} between {_slices(plan.axis)} {plan.start + 1} and {plan.stop + 1}: "
                                f"{size} (cyan). Enter applies, Esc drops.", 60000)

    def apply_fill(self) -> int:
        """Enter: paint the previewed fill between slices as one undo step; returns the voxels painted."""
        pending = self.pending_fill
        if pending is None:
            return 0
        self.drop_fill_preview()
        ed = self.editor
        if ed is not pending.editor or ed.stroke_active:
            return 0
        step = ed.paint(pending.region, pending.value, name="Fill between slices", mode=pending.mode,
                        over_label=pending.over_label)
        n = 0 if step is None else step.delta.count
        name = DEFAULT_TABLE[pending.value].name
        self.ctx.notices.status(f"Filled {n:,} voxels of {name} between {_slices(pending.axis)} {pending.start + 1} "
                                f"and {pending.stop + 1} (Ctrl+Z undoes it).")
        return n

    def drop_fill_preview(self) -> bool:
        """Hide the fill preview without painting; True when there was one."""
        if self.pending_fill is None:
            return False
        self.pending_fill = None
        self.preview.hide()
        self.apply_fill_action.setEnabled(False)
        return True
