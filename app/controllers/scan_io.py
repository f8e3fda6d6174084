"""Opening scans and label maps: File menu, Open Recent, drag-and-drop, command line.

Every read runs on a worker (:meth:`MainWindow.run_worker`) with a progress bar and
Cancel. A failed or cancelled open leaves the previous scan open. A folder holding
several DICOM series opens a :class:`SeriesDialog` first.

Signals
-------
volume_opened(object)
    a scan was opened (the :class:`engine.types.Volume`).
labels_opened(str)
    a label map was put on the label layer (its name).
open_failed(str)
    an open failed (the message shown) or was cancelled (``""``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from engine.errors import GeometryMismatchError, SeriesError
from engine.progress import as_progress
from engine.types import Volume

from ..settings import RecentFiles
from ..widgets.series_dialog import SeriesDialog
from ..worker import error_message

if TYPE_CHECKING:  # pragma: no cover
    from ..main_window import MainWindow

SCAN_FILTER = ("Scans (*.nii *.nii.gz *.dcm *.nrrd *.nhdr *.mha *.mhd *.png *.jpg *.jpeg);;"
               "All files (*)")
LABEL_FILTER = "Label maps (*.nii *.nii.gz *.nrrd *.seg.nrrd *.dcm *.png);;All files (*)"


def load_phantom(shape: Optional[tuple[int, int, int]] = None, progress: Any = None,
                 cancel: Any = None) -> tuple[Volume, Optional[np.ndarray]]:
    """The built-in synthetic chest CT (:func:`engine.phantom.chest_ct`) and its labels.

    ``shape`` is ``(z, y, x)``; ``None`` takes the phantom's default size.
    """
    from engine import phantom

    kwargs = {"shape": tuple(shape)} if shape else {}
    ph = phantom.chest_ct(progress=progress, cancel=cancel, **kwargs)
    return ph.volume, ph.labels


class ScanIOController(QObject):
    """The open-scan and open-labels flows of one main window."""

    volume_opened = Signal(object)
    labels_opened = Signal(str)
    open_failed = Signal(str)

    def __init__(self, window: "MainWindow", recent: RecentFiles) -> None:
        super().__init__(window)
        self.window = window
        self.recent = recent
        self._last_dir = str(Path.home())
        self.series_dialog: Optional[SeriesDialog] = None
        #: open the largest series of a folder without asking (scripted runs, e.g. --screenshot)
        self.choose_first_series = False
        #: add opened scans to Open Recent (scripted runs leave the user's list alone)
        self.remember_recent = True
        self._open_task: Any = None
        menu = window.menus["file"]
        self.open_action = self._action("&Open scan…", QKeySequence.StandardKey.Open, self.ask_open_file)
        self.open_folder_action = self._action("Open DICOM &folder…", "Ctrl+Shift+O", self.ask_open_folder)
        self.phantom_action = self._action("Open &phantom", None, self.open_phantom)
        self.open_labels_action = self._action("Open &labels…", "Ctrl+L", self.ask_open_labels)
        for a in (self.open_action, self.open_folder_action):
            menu.addAction(a)
        self.recent_menu = menu.addMenu("Open &recent")
        menu.addAction(self.phantom_action)
        menu.addSeparator()
        menu.addAction(self.open_labels_action)
        recent.changed.connect(self._fill_recent)
        self._fill_recent()
        window.toolbar.addAction(self.open_action)

    def _action(self, text: str, shortcut: Any, slot: Any) -> QAction:
        action = QAction(text, self.window)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        return action

    # -- dialogs --------------------------------------------------------------
    def ask_open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open scan", self._last_dir, SCAN_FILTER)
        if path:
            self.open_path(path)

    def ask_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self.window, "Open DICOM or image folder", self._last_dir)
        if path:
            self.open_path(path)

    def ask_open_labels(self) -> None:
        if self.window.session.volume is None:
            self.window.show_error("Open a scan first, then the label map made for it.")
            return
        path, _ = QFileDialog.getOpenFileName(self.window, "Open labels", self._last_dir, LABEL_FILTER)
        if path:
            self.open_labels(path)

    # -- scans ----------------------------------------------------------------
    def open_path(self, path: str | os.PathLike, series: Optional[str] = None) -> None:
        """Open a scan file or folder on a worker; a folder with several series asks which one.

        ``series`` is a :attr:`engine.io.SeriesInfo.uid` (or SeriesInstanceUID / number).
        """
        path = str(path)
        self._last_dir = str(Path(path).parent)
        fn = _open_folder if Path(path).is_dir() and series is None else _load
        args = (path,) if fn is _open_folder else (path, series)
        self._start_open(fn, *args, title=f"Opening {Path(path).name}",
                               on_result=lambda out: self._loaded(out, path),
                               on_error=self._failed, on_cancel=self._cancelled)

    def _start_open(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Start an open; one still running is cancelled (the newest request wins)."""
        if self._open_task is not None:
            self._open_task.cancel()
        task = self.window.run_worker(fn, *args, **kwargs)
        self._open_task = task
        task.signals.finished.connect(lambda t=task: self._open_ended(t))

    def _open_ended(self, task: Any) -> None:
        if self._open_task is task:
            self._open_task = None

    def _loaded(self, out: Any, path: str) -> None:
        if isinstance(out, Volume):
            self.show_volume(out, path)
        elif self.choose_first_series:
            self.window.status_message(f"{Path(path).name} holds {len(out)} series: opening the largest.")
            self.open_path(path, series=out[0].uid)
        else:
            self.choose_series(path, out)

    def choose_series(self, folder: str, found: list[Any]) -> SeriesDialog:
        """Ask (non-modally) which of the series ``found`` in ``folder`` to open."""
        dialog = SeriesDialog(folder, found, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.open_path(folder, series=dialog.selected.uid))
        dialog.rejected.connect(self._cancelled)
        dialog.open()
        self.series_dialog = dialog
        return dialog

    def open_phantom(self, shape: Optional[tuple[int, int, int]] = None) -> None:
        """Open the built-in phantom with its labels (``shape`` ``(z, y, x)``, default size if None)."""
        self._start_open(load_phantom, shape, title="Building phantom",
                               on_result=self._phantom_opened, on_error=self._failed,
                               on_cancel=self._cancelled)

    def show_volume(self, volume: Volume, path: Optional[str] = None) -> None:
        """Make ``volume`` the open scan (with an empty label layer) and announce it."""
        self.window.labels.reset(volume.shape)
        self.window.session.set_volume(volume)
        if path is not None and self.remember_recent:
            self.recent.add(path)
        name = Path(path).name if path else "phantom"
        self.window.setWindowTitle(f"LungLens — {name}")
        msg = f"Opened {name}: {' x '.join(str(s) for s in volume.shape[::-1])} voxels"
        if volume.warnings:
            msg += " (warnings: " + "; ".join(volume.warnings) + ")"
        self.window.status_message(msg)
        self.volume_opened.emit(volume)

    def _phantom_opened(self, result: tuple[Volume, Optional[np.ndarray]]) -> None:
        volume, labels = result
        self.show_volume(volume, None)
        if labels is not None:
            self.window.labels.set_array(labels, "phantom labels")
            self.labels_opened.emit("phantom labels")

    def _failed(self, exc: BaseException) -> None:
        msg = error_message(exc)
        self.window.show_error(msg)
        self.open_failed.emit(msg)

    def _cancelled(self) -> None:
        self.window.status_message("Cancelled; the previous scan stays open.")
        self.open_failed.emit("")

    # -- labels ---------------------------------------------------------------
    def open_labels(self, path: str | os.PathLike) -> None:
        """Read a label map made for the open scan; one on another grid is refused."""
        volume = self.window.session.volume
        if volume is None:
            self.window.show_error("Open a scan first, then the label map made for it.")
            return
        path = str(path)
        self.window.run_worker(_load_labels, path, volume, title=f"Opening labels {Path(path).name}",
                               on_result=lambda arr: self._labels_loaded(arr, path),
                               on_error=self._failed, on_cancel=self._cancelled)

    def _labels_loaded(self, array: np.ndarray, path: str) -> None:
        try:
            self.window.labels.set_array(array, Path(path).name)
        except GeometryMismatchError as exc:
            self._failed(exc)
            return
        self.window.status_message(f"Labels {Path(path).name} shown over the scan.")
        self.labels_opened.emit(Path(path).name)

    # -- recent ---------------------------------------------------------------
    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        paths = self.recent.paths()
        for p in paths:
            action = self.recent_menu.addAction(p)
            action.triggered.connect(lambda _checked=False, p=p: self._open_recent(p))
        if paths:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list").triggered.connect(lambda _c=False: self.recent.clear())
        self.recent_menu.setEnabled(bool(paths))

    def _open_recent(self, path: str) -> None:
        if not Path(path).exists():
            self.recent.remove(path)
            self.window.show_error(f"{path} no longer exists; it was removed from the recent list.")
            return
        self.open_path(path)


def _open_folder(folder: str, progress: Any = None, cancel: Any = None) -> Volume | list[Any]:
    """Read a folder: its one DICOM series (a Volume), the list of its series when there are
    several, or an image stack when it holds no DICOM."""
    from engine import io
    from engine.io.dicom_read import read_series

    report = as_progress(progress)
    try:
        found = io.list_series(folder, progress=report.sub(0.0, 0.3), cancel=cancel)
    except SeriesError:
        return io.load(folder, progress=progress, cancel=cancel)  # PNG/JPG stack, or a clear error
    if len(found) > 1:
        return list(found)
    return read_series(found[0], progress=report.sub(0.3, 1.0), cancel=cancel)


def _load(path: str, series: Any, progress: Any = None, cancel: Any = None) -> Volume:
    from engine import io

    if series is None:
        return io.load(path, progress=progress, cancel=cancel)
    return io.load(path, progress=progress, cancel=cancel, series=series)


def _load_labels(path: str, reference: Volume, progress: Any = None, cancel: Any = None) -> np.ndarray:
    from engine import io

    return io.load_labels(path, reference)
