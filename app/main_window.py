"""The LungLens main window: it assembles, nothing more.

It builds one :class:`app.context.AppContext` (session, label layer, case, worker
runner, preferences, actions, notices), the views, and then each flow of
:mod:`app.flows` in plain code with the collaborators it needs; flows never reach the
window. Which optional flows a window has is the ``flows`` argument (tests and
benchmarks build lighter windows):

``"ai"``
    Run AI, the findings panel and the slice strip (:class:`~app.flows.ai.AIFlow`).
``"editing"``
    tools, undo/redo, crash recovery, the unsaved-edits guard and label export
    (:class:`~app.flows.editing.EditingFlow`, :class:`~app.flows.recovery.RecoveryFlow`,
    :class:`~app.flows.export.ExportFlow`).
``"numbers"``
    the Numbers panel, the lung outline and the report export
    (:class:`~app.flows.numbers.NumbersFlow`).

The open, PACS, window/level, view, probe and 3D flows are always there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from PySide6.QtCore import QSettings, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox, QToolBar, QWidget

from . import __version__
from .context import MENUS, Actions, AppContext
from .flows.ai import AIFlow
from .flows.editing import EditingFlow
from .flows.export import ExportFlow
from .flows.keys import KeysFlow, escape_steps
from .flows.numbers import NumbersFlow
from .flows.open_scan import OpenFlow
from .flows.pacs import PacsFlow
from .flows.probe import ProbeFlow
from .flows.reading import ReadingFlow
from .flows.recovery import RecoveryFlow
from .flows.view3d import View3DFlow
from .flows.view_actions import ViewActionsFlow
from .flows.window_level import WindowLevelFlow
from .state.case import CaseState
from .state.label_layer import LabelLayer
from .state.notices import Notices
from .state.preferences import Preferences, make_settings
from .state.session import Session
from .state.tasks import TaskRunner
from .tools import CrosshairTool
from .views.view_set import ViewSet
from .widgets.label_panel import LabelPanel
from .widgets.notices_panel import NoticesPanel
from .widgets.progress import ProgressPanel
from .widgets.shortcuts import ShortcutsDialog, shortcut_rows

#: the optional flows of a full window
ALL_FLOWS = ("ai", "editing", "numbers")


class MainWindow(QMainWindow):
    """The main window. See the module docstring.

    Signals
    -------
    shown()
        emitted once, the first time the window is shown.
    """

    shown = Signal()

    def __init__(self, settings: Optional[QSettings] = None, interactive_errors: bool = True,
                 flows: Iterable[str] = ALL_FLOWS) -> None:
        super().__init__()
        wanted = frozenset(flows)
        unknown = wanted - set(ALL_FLOWS)
        if unknown:
            raise ValueError(f"unknown flows {sorted(unknown)}; choose from {ALL_FLOWS}")
        self.setWindowTitle("LungLens")
        self.setAcceptDrops(True)
        self.interactive_errors = interactive_errors
        self._shown_once = False
        pool = QThreadPool.globalInstance()
        pool.setMaxThreadCount(max(pool.maxThreadCount(), 4))  # an open never waits behind 2 long tasks
        # -- the context ------------------------------------------------------
        self.settings = settings if settings is not None else make_settings()
        self.preferences = Preferences(self.settings, parent=self)
        self.notices = Notices(self)
        self.runner = TaskRunner(self)
        self.session = Session(self)
        self.labels = LabelLayer(self, history_factory=self.preferences.new_history)
        self.case = CaseState(self.session, self.labels, self.runner, active=bool(wanted & {"ai", "numbers"}),
                              parent=self)
        self.menus = {key: self.menuBar().addMenu(title) for key, title in MENUS}
        self.toolbar = QToolBar("Main", self)
        self.toolbar.setObjectName("main_toolbar")
        self.addToolBar(self.toolbar)
        # the pointer tools (measurements, editing) get a row of their own: on one row at 1400 px
        # Run AI and every editing tool folded into the overflow menu
        self.addToolBarBreak()
        self.tools_toolbar = QToolBar("Tools", self)
        self.tools_toolbar.setObjectName("tools_toolbar")
        self.addToolBar(self.tools_toolbar)
        quit_action = self._add_quit()
        self.ctx = AppContext(self.session, self.labels, self.case, self.runner, self.preferences, self.notices,
                              Actions(self, self.menus, self.toolbar, self.add_dock, quit_action,
                                      self.tools_toolbar))
        self.notices.error_shown.connect(self._show_error_box)
        self.notices.status_shown.connect(self._show_status)  # a bound slot: disconnected when the window goes
        self.runner.error.connect(self.notices.error)
        self.runner.status.connect(self.notices.status)
        # -- views and panels -------------------------------------------------
        self.views = ViewSet(self.session, self.labels, CrosshairTool(self.session))
        self.setCentralWidget(self.views)
        self.progress = ProgressPanel(self.runner)
        self.statusBar().addPermanentWidget(self.progress)
        self.notices_panel = NoticesPanel(self.notices, lambda: (self.notices_dock.show(), self.notices_dock.raise_(),
                                                                 self.resizeDocks([self.notices_dock], [150],
                                                                                  Qt.Orientation.Vertical)))
        self.notices_dock = self.add_dock(self.notices_panel, "Notices", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.notices_dock.hide()  # shown from the status bar's "N notices" button or View > Notices
        self.statusBar().addPermanentWidget(self.notices_panel.button)
        # -- flows ------------------------------------------------------------
        self.scan_io = OpenFlow(self.ctx, self.setWindowTitle)
        self.pacs = PacsFlow(self.ctx, self.scan_io)
        self.window_level = WindowLevelFlow(self.ctx)
        self.view_actions = ViewActionsFlow(self.ctx, self.views)
        self.probe = ProbeFlow(self.ctx, self.views)
        self.statusBar().addPermanentWidget(self.probe.label)
        self.reading = ReadingFlow(self.ctx, self.views)
        self.label_panel = LabelPanel(self.labels, self.session)
        self.label_dock = self.add_dock(self.label_panel, "Labels", Qt.DockWidgetArea.RightDockWidgetArea)
        self.menus["view"].addAction(self.label_dock.toggleViewAction())
        self.menus["view"].addAction(self.notices_dock.toggleViewAction())
        self.view3d = View3DFlow(self.ctx, self._place_3d_dock)
        self.ai: Optional[AIFlow] = AIFlow(self.ctx, self.views, self.shown) if "ai" in wanted else None
        self.editing: Optional[EditingFlow] = None
        self.export: Optional[ExportFlow] = None
        self.recovery: Optional[RecoveryFlow] = None
        if "editing" in wanted:
            self.editing = EditingFlow(self.ctx, self.views)
            self.export = ExportFlow(self.ctx)
            self.recovery = RecoveryFlow(self.ctx, self.export, self.scan_io.open_path, self.shown)
            self.scan_io.set_guard(self.recovery.confirm_unsaved)  # the before-open hook
            self.scan_io.volume_opened.connect(self.recovery.scan_opened)
            self.scan_io.open_failed.connect(self.recovery.open_failed)
            self.scan_io.labels_opened.connect(self.recovery.edits_replaced)
            self.scan_io.labels_opened.connect(self.export.forget_target)
            if self.ai is not None:
                self.ai.escape_claimed.connect(lambda claimed, e=self.editing: e.set_escape_enabled(not claimed))
        self.numbers: Optional[NumbersFlow] = NumbersFlow(self.ctx, self.views) if "numbers" in wanted else None
        if self.editing is not None:  # ruler and ROI are tools like the others: one checked at a time
            for action in self.reading.tool_actions.values():
                self.editing.tool_group.addAction(action)
        self.keys = KeysFlow(self.ctx, self.views, escape_steps(self.views, self.ai, self.editing, self.reading),
                             self.editing.settings.grow if self.editing is not None else None,
                             (self.toolbar, self.tools_toolbar, self.statusBar()))
        self.flows = tuple(sorted(wanted))
        self._add_help()
        self._tabify_flow_docks()
        for menu in self.menus.values():  # a flow left out of this build leaves no empty menu
            menu.menuAction().setVisible(not menu.isEmpty())

    # -- what tests and scripts read ------------------------------------------
    @property
    def errors(self) -> list[str]:
        """Every error shown so far (:attr:`app.state.notices.Notices.errors`)."""
        return self.notices.errors

    def show_error(self, message: str) -> None:
        """Tell the user something went wrong (see :class:`~app.state.notices.Notices`)."""
        self.notices.error(message)

    def status_message(self, message: str, msecs: int = 8000) -> None:
        self.notices.status(message, msecs)

    def add_dock(self, widget: QWidget, title: str,
                 area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Put ``widget`` in a new dock titled ``title`` and return the dock."""
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower().replace(" ", "_") + "_dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def all_actions(self) -> list[QAction]:
        """Every action of the menus (submenus included), in menu order."""
        out: list[QAction] = []

        def walk(menu: Any) -> None:
            for action in menu.actions():
                if action.menu() is not None:
                    walk(action.menu())
                elif not action.isSeparator():
                    out.append(action)

        for menu in self.menus.values():
            walk(menu)
        return out

    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(shortcut_rows(self.all_actions()), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    # -- assembly -------------------------------------------------------------
    def _show_status(self, text: str, ms: int) -> None:
        self.statusBar().showMessage(text, ms)

    def _show_error_box(self, message: str) -> None:
        if self.interactive_errors:
            box = QMessageBox(QMessageBox.Icon.Warning, "LungLens", message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.setModal(False)
            box.show()

    def _add_quit(self) -> QAction:
        self.menus["file"].addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(lambda _c=False: self.close())
        self.menus["file"].addAction(quit_action)
        return quit_action

    def _add_help(self) -> None:
        shortcuts = QAction("&Shortcuts", self)
        shortcuts.setShortcut(QKeySequence("F1"))
        shortcuts.triggered.connect(lambda _c=False: self.show_shortcuts())
        self.menus["help"].addAction(shortcuts)
        about = QAction("&About LungLens", self)
        about.triggered.connect(lambda _c=False: QMessageBox.about(
            self, "About LungLens", f"LungLens {__version__}\nChest CT reading for COVID-19 pneumonia."))
        self.menus["help"].addAction(about)

    def _place_3d_dock(self, dock: QDockWidget) -> None:
        self.resizeDocks([self.label_dock, dock], [150, 700], Qt.Orientation.Vertical)

    def _tabify_flow_docks(self) -> None:
        """Labels stay alone at the top right; the flows' right docks share one tab group."""
        right = [d for d in self.findChildren(QDockWidget)
                 if d is not self.label_dock and self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
        for dock in right[1:]:
            self.tabifyDockWidget(right[0], dock)
        if right:
            right[0].raise_()
            self.resizeDocks([self.label_dock, right[0]], [150, 800], Qt.Orientation.Vertical)

    # -- Qt events ------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self.shown.emit()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_dropped(paths)

    def open_dropped(self, paths: list[str]) -> None:
        """Open dropped paths: one scan, or its folder when several files of one folder came."""
        if len(paths) > 1 and len({str(Path(p).parent) for p in paths}) == 1:
            self.scan_io.open_path(str(Path(paths[0]).parent))
        else:
            self.scan_io.open_path(paths[0])

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.view3d.shutdown()
        self.runner.shutdown(0)  # cancel, never wait here: the GUI stays free (application.run waits briefly)
        super().closeEvent(event)
