"""Keys that cut across flows: one Esc, Shift+wheel brush size, and keyboard focus kept on the views.

- **Esc** is bound once (Edit > Cancel / back to Navigate). It runs the steps it is given,
  in order, and stops at the first that did something. The window gives: reject a
  waiting AI proposal; cancel a stroke, outline or measurement being drawn; put the tool
  back to the crosshair.
- **Shift+wheel** over a view changes the brush size (up: larger), as in Slicer; the
  plain wheel scrolls slices.
- **Focus**: tool keys (``1``-``3``, ``B``, ``E``...) are window shortcuts, which a focused
  text or spin box swallows. So the toolbar's spin boxes take focus only when clicked and
  hand it back to the last slice view when their value is entered; and whenever focus
  moves into or out of the toolbar or status bar without a click (a Cancel button that
  is disabled hands focus to the next widget of the chain) or to nowhere (a closed
  dialog), it goes back to that view.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence

import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QWidget

from ..context import AppContext
from ..tools import CrosshairTool


def escape_steps(views: Any, ai: Any = None, editing: Any = None, reading: Any = None) -> list[Callable[[], bool]]:
    """The window's Esc, in order: reject a waiting AI proposal (``ai``: the AI flow); cancel the
    stroke (``editing``) or measurement (``reading``) being drawn; put the tool back to Navigate."""
    steps: list[Callable[[], bool]] = []
    if ai is not None:
        steps.append(lambda: ai.proposal.state == "ready" and (ai.reject() or True))
    if editing is not None:
        steps.append(editing.cancel_stroke)
    if reading is not None:
        steps.append(reading.cancel)

    def navigate() -> bool:
        if isinstance(views.tool, CrosshairTool):
            return False
        if reading is not None:
            reading.set_tool(None)
        if editing is not None:
            editing.set_tool(None)
        else:
            views.set_tool(None)
        return True
    return steps + [navigate]


class KeysFlow(QObject):
    """Esc with a clear precedence, Shift+wheel brush size and the focus guard.

    Parameters
    ----------
    ctx
        The window's context (actions, notices).
    views
        The slice views (their ``brush_wheel`` signal; focus goes back to them).
    escape_steps
        Callables run in order by Esc until one returns True.
    grow_brush
        ``grow_brush(factor)`` scales the brush (``None`` without the editing flow).
    guarded
        Widgets (toolbar, status bar) that must not take focus, nor pass it on, other than by a click.
    """

    def __init__(self, ctx: AppContext, views: Any, escape_steps: Sequence[Callable[[], bool]],
                 grow_brush: Optional[Callable[[float], None]] = None, guarded: Iterable[QWidget] = ()) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.views = views
        self.escape_steps = list(escape_steps)
        self.guarded = list(guarded)
        self._last_view: Any = views.axial
        self.escape_action = ctx.actions.action(
            "Cancel / back to Navigate", self.escape, "Esc", "edit",
            tip="Esc: reject a waiting AI proposal, else cancel what is being drawn, else back to Navigate")
        ctx.actions.owner.addAction(self.escape_action)
        if grow_brush is not None:
            for view in views:
                view.brush_wheel.connect(lambda steps, g=grow_brush: g(1.25 ** steps))
        for widget in self.guarded:
            for box in widget.findChildren(QAbstractSpinBox):
                self.keep_off(box)
        app = QApplication.instance()
        app.focusChanged.connect(self._on_focus)

    def escape(self) -> bool:
        """Run the Esc steps until one acts; True when one did."""
        return any(step() for step in self.escape_steps)

    def keep_off(self, box: QAbstractSpinBox) -> None:
        """A spin box that takes focus by click only and returns it to the views when its value is entered."""
        box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        # Enter gives the keyboard back; leaving by a click on another box keeps that box's focus
        box.editingFinished.connect(lambda b=box: b.hasFocus() and self.focus_view())

    def focus_view(self) -> None:
        """Give the keyboard back to the slice view used last."""
        view = self._last_view if self._last_view.isVisible() else next((v for v in self.views if v.isVisible()),
                                                                          None)
        if view is not None:
            view.setFocus(Qt.FocusReason.OtherFocusReason)

    def _on_focus(self, old: Optional[QWidget], new: Optional[QWidget]) -> None:
        owner = self.ctx.actions.owner
        if not shiboken6.isValid(owner):  # the window is gone (application exit): nothing to guard
            return
        if new is not None and any(new is v for v in self.views):
            self._last_view = new
            return
        if not owner.isActiveWindow() or QApplication.activeModalWidget() is not None:
            return
        clicked = QApplication.mouseButtons() != Qt.MouseButton.NoButton
        inside = lambda w: w is not None and any(g.isAncestorOf(w) for g in self.guarded)  # noqa: E731
        # focus lost, or moved into / out of the toolbar or status bar without a click (a button that
        # was disabled or hidden hands focus to the next widget of the chain, anywhere in the window)
        stray = new is None or (not clicked and (inside(new) or inside(old)))
        if stray:
            QTimer.singleShot(0, self._refocus)

    def _refocus(self) -> None:
        focus = QApplication.focusWidget()
        owner = self.ctx.actions.owner
        if not shiboken6.isValid(owner):
            return
        if owner.isActiveWindow() and not any(focus is v for v in self.views) and (
                focus is None or QApplication.mouseButtons() == Qt.MouseButton.NoButton):
            self.focus_view()
