"""The LungLens main window: it assembles models, views and controllers, nothing more.

Access points for extensions
----------------------------
Each module named in :data:`EXTENSIONS` that exists is imported and its
``install(window)`` called once the window is built. An extension may use:

``window.session``
    :class:`app.models.Session`: open volume, cursor ``(z, y, x)``, window/level, layout.
``window.labels``
    :class:`app.models.LabelLayerModel`: the label array; change it only through
    ``set_array``, ``write`` and ``reset``.
``window.views``
    :class:`app.views.view_set.ViewSet`: ``views.axial/.coronal/.sagittal`` (each a
    :class:`app.views.slice_view.SliceView` with ``view_box``, ``ct_item``,
    ``label_item``, ``mouse_event`` signal of voxel-space events, ``add_item``) and
    ``views.set_tool(tool)`` for the left mouse button (:mod:`app.views.tools`).
``window.menus``
    dict of ``QMenu``: ``"file"``, ``"edit"``, ``"view"``, ``"tools"``, ``"ai"``, ``"help"``.
    Menus still empty after every ``install`` are hidden; one filled later must be shown
    again with ``menu.menuAction().setVisible(True)``.
``window.toolbar``
    the main ``QToolBar``.
``window.add_dock(widget, title, area)``
    add a dock (area a ``Qt.DockWidgetArea``, default right); returns the ``QDockWidget``.
``window.run_worker(fn, *args, title=..., on_result=..., on_error=..., on_cancel=...)``
    run ``fn(*args, progress=..., cancel=...)`` on a worker thread with a progress bar
    and Cancel; errors are shown with :meth:`show_error` unless ``on_error`` is given.
``window.show_error(msg)``, ``window.status_message(msg)``
    tell the user something went wrong (non-modal box) / a short status line.
``window.scan_io``
    the open flows (:class:`app.controllers.scan_io.ScanIOController`): ``open_path``,
    ``open_labels``, ``open_phantom`` and signals ``volume_opened``, ``labels_opened``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Callable, Optional

from PySide6.QtCore import QSettings, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox, QToolBar, QWidget

from . import __version__
from .controllers.probe import ProbeController
from .controllers.scan_io import ScanIOController
from .controllers.view3d import View3DController
from .controllers.view_actions import ViewActionsController
from .controllers.window_level import WindowLevelController
from .models import LabelLayerModel, Session
from .settings import RecentFiles, make_settings
from .views.view_set import ViewSet
from .widgets.label_panel import LabelPanel
from .widgets.progress import ProgressPanel
from .widgets.shortcuts import ShortcutsDialog, shortcut_rows
from .worker import Task, TaskRunner, error_message

log = logging.getLogger(__name__)

#: optional modules added by other flows; each defines ``install(window)``
EXTENSIONS = ("app.ai", "app.editing", "app.reporting")


class MainWindow(QMainWindow):
    """The main window. See the module docstring for what extensions may use.

    Signals
    -------
    shown()
        emitted once, the first time the window is shown.
    error_shown(str)
        a message was shown with :meth:`show_error`.
    """

    shown = Signal()
    error_shown = Signal(str)

    def __init__(self, settings: Optional[QSettings] = None, interactive_errors: bool = True,
                 extensions: tuple[str, ...] = EXTENSIONS) -> None:
        super().__init__()
        self.setWindowTitle("LungLens")
        self.setAcceptDrops(True)
        self.interactive_errors = interactive_errors
        self.errors: list[str] = []
        self._shown_once = False
        self.settings = settings if settings is not None else make_settings()
        self.session = Session(self)
        self.labels = LabelLayerModel(self)
        pool = QThreadPool.globalInstance()
        pool.setMaxThreadCount(max(pool.maxThreadCount(), 4))  # an open never waits behind 2 long tasks
        self.runner = TaskRunner(self)
        self.views = ViewSet(self.session, self.labels)
        self.setCentralWidget(self.views)
        self.menus = {key: self.menuBar().addMenu(title) for key, title in (
            ("file", "&File"), ("edit", "&Edit"), ("view", "&View"), ("tools", "&Tools"), ("ai", "&AI"),
            ("help", "&Help"))}
        self.toolbar = QToolBar("Main", self)
        self.toolbar.setObjectName("main_toolbar")
        self.addToolBar(self.toolbar)
        self.progress = ProgressPanel(self.runner)
        self.statusBar().addPermanentWidget(self.progress)
        self.scan_io = ScanIOController(self, RecentFiles(self.settings, parent=self))
        self._add_quit()
        self.window_level = WindowLevelController(self)
        self.view_actions = ViewActionsController(self)
        self.probe = ProbeController(self)
        self.label_panel = LabelPanel(self.labels, self.session)
        self.label_dock = self.add_dock(self.label_panel, "Labels", Qt.DockWidgetArea.RightDockWidgetArea)
        self.menus["view"].addAction(self.label_dock.toggleViewAction())
        self.view3d = View3DController(self)
        self._add_help()
        self.extensions = self._install_extensions(extensions)
        self._tabify_extension_docks()
        for menu in self.menus.values():  # a flow left out of this build leaves no empty menu
            menu.menuAction().setVisible(not menu.isEmpty())

    # -- extension API --------------------------------------------------------
    def add_dock(self, widget: QWidget, title: str,
                 area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Put ``widget`` in a new dock titled ``title`` and return the dock."""
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower().replace(" ", "_") + "_dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def run_worker(self, fn: Callable[..., Any], *args: Any, title: str = "Working",
                   on_result: Optional[Callable[[Any], None]] = None,
                   on_error: Optional[Callable[[BaseException], None]] = None,
                   on_cancel: Optional[Callable[[], None]] = None, **kwargs: Any) -> Task:
        """Run ``fn(*args, progress=..., cancel=..., **kwargs)`` on a worker thread."""
        if on_error is None:
            on_error = lambda exc: self.show_error(error_message(exc))  # noqa: E731
        if on_cancel is None:
            on_cancel = lambda: self.status_message(f"{title}: cancelled")  # noqa: E731
        task = Task(fn, *args, title=title, **kwargs)
        return self.runner.start(task, on_result=on_result, on_error=on_error, on_cancel=on_cancel)

    def show_error(self, message: str) -> None:
        """Show ``message`` in a non-modal message box (logged only when not interactive)."""
        self.errors.append(message)
        log.warning("%s", message)
        self.status_message(message.splitlines()[0] if message else "")
        if self.interactive_errors:
            box = QMessageBox(QMessageBox.Icon.Warning, "LungLens", message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.setModal(False)
            box.show()
        self.error_shown.emit(message)

    def status_message(self, message: str, msecs: int = 8000) -> None:
        """Show ``message`` in the status bar for ``msecs`` milliseconds."""
        self.statusBar().showMessage(message, msecs)

    # -- assembly -------------------------------------------------------------
    def _add_quit(self) -> None:
        self.menus["file"].addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(lambda _c=False: self.close())
        self.menus["file"].addAction(quit_action)

    def _add_help(self) -> None:
        shortcuts = QAction("&Shortcuts", self)
        shortcuts.setShortcut(QKeySequence("F1"))
        shortcuts.triggered.connect(lambda _c=False: self.show_shortcuts())
        self.menus["help"].addAction(shortcuts)
        about = QAction("&About LungLens", self)
        about.triggered.connect(lambda _c=False: QMessageBox.about(
            self, "About LungLens", f"LungLens {__version__}\nChest CT reading for COVID-19 pneumonia."))
        self.menus["help"].addAction(about)

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

    def _tabify_extension_docks(self) -> None:
        """Labels stay alone at the top right; the extensions' right docks share one tab group."""
        right = [d for d in self.findChildren(QDockWidget)
                 if d is not self.label_dock and self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
        for dock in right[1:]:
            self.tabifyDockWidget(right[0], dock)
        if right:
            right[0].raise_()
            self.resizeDocks([self.label_dock, right[0]], [150, 800], Qt.Orientation.Vertical)

    def _install_extensions(self, names: tuple[str, ...]) -> list[Any]:
        installed = []
        for name in names:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:
                    continue  # that flow is not part of this build
                raise
            module.install(self)
            installed.append(module)
        return installed

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
        self.runner.shutdown(5000)
        super().closeEvent(event)
