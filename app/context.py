"""The typed context every flow is built with.

:class:`AppContext` holds the state of one main window (session, label layer, case,
worker runner, preferences, notices) and :class:`Actions`, the places a flow puts its
commands (menus, toolbar, docks). :class:`app.main_window.MainWindow` builds one context,
then each flow of :mod:`app.flows` in plain code, passing the context and the
collaborators that flow needs (views, another flow's hook); flows never see the window.
A test builds one flow against a context the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Union

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMenu, QToolBar, QWidget

from .state.case import CaseState
from .state.label_layer import LabelLayer
from .state.notices import Notices
from .state.preferences import Preferences
from .state.session import Session
from .state.tasks import Task, TaskRunner

#: the menus of the window, in menu-bar order: key -> title
MENUS = (("file", "&File"), ("edit", "&Edit"), ("view", "&View"), ("tools", "&Tools"), ("ai", "&AI"),
         ("help", "&Help"))

Shortcut = Union[None, str, QKeySequence, QKeySequence.StandardKey, Iterable[Any]]


@dataclass
class Actions:
    """Where flows put their commands.

    Attributes
    ----------
    owner
        The widget that owns actions and their window-wide shortcuts (the main window).
    menus
        ``"file"``, ``"edit"``, ``"view"``, ``"tools"``, ``"ai"``, ``"help"``.
    toolbar
        The main toolbar (files, reading, AI).
    add_dock
        ``add_dock(widget, title, area)`` puts ``widget`` in a new dock and returns it.
    file_tail
        The File menu entry that file actions are inserted before (Quit).
    """

    owner: QWidget
    menus: dict[str, QMenu]
    toolbar: QToolBar
    add_dock: Callable[..., QDockWidget]
    file_tail: Optional[QAction] = None
    #: the toolbar of the pointer tools (measurements, editing), on a row of its own; the main
    #: toolbar when ``None``
    tools_toolbar: Optional[QToolBar] = None

    @property
    def tool_bar(self) -> QToolBar:
        """Where a pointer tool's action goes (measurement and editing tools)."""
        return self.tools_toolbar if self.tools_toolbar is not None else self.toolbar

    def action(self, text: str, slot: Callable[[], Any], shortcut: Shortcut = None, menu: Optional[str] = None,
               checkable: bool = False, tip: str = "") -> QAction:
        """A new action running ``slot()``; added to ``menu`` (the File menu: before Quit) when given."""
        action = QAction(text, self.owner)
        if isinstance(shortcut, (list, tuple)):
            action.setShortcuts([QKeySequence(s) for s in shortcut])
        elif shortcut is not None and shortcut != "":
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        if tip:
            action.setToolTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        if menu is not None:
            self.add_to_menu(menu, action)
        return action

    def add_to_menu(self, menu: str, action: QAction) -> None:
        """Add ``action`` to ``menu`` (in the File menu, before Quit)."""
        if menu == "file" and self.file_tail is not None:
            self.menus["file"].insertAction(self.file_tail, action)
        else:
            self.menus[menu].addAction(action)

    def dock(self, widget: QWidget, title: str,
             area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        return self.add_dock(widget, title, area)


@dataclass
class AppContext:
    """The state of one main window, shared by its flows (GUI thread only)."""

    session: Session
    labels: LabelLayer
    case: CaseState
    runner: TaskRunner
    preferences: Preferences
    notices: Notices
    actions: Actions

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        """Run ``fn`` on a worker with a progress bar (see :meth:`app.state.tasks.TaskRunner.run`)."""
        return self.runner.run(fn, *args, **kwargs)
