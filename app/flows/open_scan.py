"""The open flow: scans and label maps from the File menu, Open Recent, drag-and-drop, command line.

Every read runs on a worker (:meth:`app.context.AppContext.run`) with a progress bar and
Cancel. A failed or cancelled open leaves the previous scan open. A folder holding
several DICOM series opens a :class:`SeriesDialog` first (:func:`read_folder` on the worker
decides, with :func:`engine.io.list_series`).

A new scan reaches the state in one order: the label layer gets a fresh editor bound to
it (silently), the session gets the volume, then the layer announces its labels: no
listener ever sees the labels of one file with the scan of another.

Before-open hook: :meth:`OpenFlow.set_guard` installs a function ``guard(what, proceed)``
that runs ``proceed()`` now or after asking (the unsaved-edits guard of
:class:`app.flows.recovery.RecoveryFlow`); every open goes through it.

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
from typing import Any, Callable, Optional

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog

from engine.errors import GeometryMismatchError, SeriesError
from engine.progress import as_progress
from engine.types import Volume

from ..context import AppContext
from ..state.tasks import Task, error_message
from ..widgets.series_dialog import SeriesDialog

SCAN_FILTER = ("Scans (*.nii *.nii.gz *.dcm *.nrrd *.nhdr *.mha *.mhd *.png *.jpg *.jpeg);;"
               "All files (*)")

#: ``guard(what, proceed)``: run ``proceed()`` now or after asking the user about ``what``
Guard = Callable[[str, Callable[[], None]], Any]


def load_phantom(shape: Optional[tuple[int, int, int]] = None, progress: Any = None,
                 cancel: Any = None) -> tuple[Volume, Optional[np.ndarray]]:
    """The built-in synthetic chest CT (:func:`engine.phantom.chest_ct`) and its labels.

    ``shape`` is ``(z, y, x)``; ``None`` takes the phantom's default size.
    """
    from engine import phantom

    kwargs = {"shape": tuple(shape)} if shape else {}
    ph = phantom.chest_ct(progress=progress, cancel=cancel, **kwargs)
    return ph.volume, ph.labels


class OpenFlow(QObject):
    """The open-scan and open-labels flows of one main window.

    Parameters
    ----------
    ctx
        The window's context.
    set_title
        Shows the open scan's name in the window title.
    """

    volume_opened = Signal(object)
    labels_opened = Signal(str)
    open_failed = Signal(str)

    def __init__(self, ctx: AppContext, set_title: Callable[[str], None]) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.set_title = set_title
        self.recent = ctx.preferences.recent
        self._guard: Optional[Guard] = None
        self._last_dir = str(Path.home())
        self.series_dialog: Optional[SeriesDialog] = None
        #: open the largest series of a folder without asking (scripted runs, e.g. --screenshot)
        self.choose_first_series = False
        #: add opened scans to Open Recent (scripted runs leave the user's list alone)
        self.remember_recent = True
        self._open_task: Optional[Task] = None
        actions = ctx.actions
        self.open_action = actions.action("&Open scan…", self.ask_open_file, QKeySequence.StandardKey.Open, "file")
        self.open_folder_action = actions.action("Open DICOM &folder…", self.ask_open_folder, "Ctrl+Shift+O", "file")
        self.recent_menu = actions.menus["file"].addMenu("Open &recent")
        self.phantom_action = actions.action("Open &phantom", self.open_phantom, None, "file")
        actions.menus["file"].addSeparator()
        self.open_labels_action = actions.action("Open &labels…", self.ask_open_labels, "Ctrl+L", "file")
        self.recent.changed.connect(self._fill_recent)
        self._fill_recent()
        actions.toolbar.addAction(self.open_action)

    def set_guard(self, guard: Optional[Guard]) -> None:
        """Install the before-open hook (see the module docstring); ``None`` removes it."""
        self._guard = guard

    def _guarded(self, what: str, proceed: Callable[[], None]) -> None:
        if self._guard is None:
            proceed()
        else:
            self._guard(what, proceed)

    # -- dialogs --------------------------------------------------------------
    def ask_open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.ctx.actions.owner, "Open scan", self._last_dir, SCAN_FILTER)
        if path:
            self.open_path(path)

    def ask_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self.ctx.actions.owner, "Open DICOM or image folder", self._last_dir)
        if path:
            self.open_path(path)

    def ask_open_labels(self) -> None:
        if self.ctx.session.volume is None:
            self.ctx.notices.error("Open a scan first, then the label map made for it.")
            return
        from engine.io.label_formats import open_filter  # engine.io (pydicom...) loads on first use

        path, _ = QFileDialog.getOpenFileName(self.ctx.actions.owner, "Open labels", self._last_dir, open_filter())
        if path:
            self.open_labels(path)

    # -- scans ----------------------------------------------------------------
    def open_path(self, path: str | os.PathLike, series: Optional[str] = None) -> None:
        """Open a scan file or folder on a worker; a folder with several series asks which one.

        ``series`` is a :attr:`engine.io.SeriesInfo.uid` (or SeriesInstanceUID / number).
        """
        self._guarded("open another scan", lambda: self._open_path(str(path), series))

    def _open_path(self, path: str, series: Optional[str]) -> None:
        self._last_dir = str(Path(path).parent)
        fn = read_folder if Path(path).is_dir() and series is None else _load
        args = (path,) if fn is read_folder else (path, series)
        self._start_open(fn, *args, title=f"Opening {Path(path).name}",
                               on_result=lambda out: self._loaded(out, path),
                               on_error=self._failed, on_cancel=self._cancelled)

    def _start_open(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Start an open; one still running is cancelled (the newest request wins)."""
        if self._open_task is not None:
            self._open_task.cancel()
        task = self.ctx.run(fn, *args, **kwargs)
        self._open_task = task
        task.signals.finished.connect(lambda t=task: self._open_ended(t))

    def _open_ended(self, task: Any) -> None:
        if self._open_task is task:
            self._open_task = None

    def _loaded(self, out: Any, path: str) -> None:
        if isinstance(out, Volume):
            self.show_volume(out, path)
        elif self.choose_first_series:
            self.ctx.notices.status(f"{Path(path).name} holds {len(out)} series: opening the largest.")
            self._open_path(path, out[0].uid)
        else:
            self.choose_series(path, out)

    def choose_series(self, folder: str, found: list[Any]) -> SeriesDialog:
        """Ask (non-modally) which of the series ``found`` in ``folder`` to open."""
        dialog = SeriesDialog(folder, found, self.ctx.actions.owner)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._open_path(folder, dialog.selected.uid))
        dialog.rejected.connect(self._cancelled)
        dialog.open()
        self.series_dialog = dialog
        return dialog

    def open_phantom(self, shape: Optional[tuple[int, int, int]] = None) -> None:
        """Open the built-in phantom with its labels (``shape`` ``(z, y, x)``, default size if None)."""
        self._guarded("open another scan", lambda: self._start_open(load_phantom, shape, title="Building phantom",
                               on_result=self._phantom_opened, on_error=self._failed,
                               on_cancel=self._cancelled))

    def show_volume(self, volume: Volume, path: Optional[str] = None, labels: Optional[np.ndarray] = None,
                    labels_name: str = "") -> None:
        """Make ``volume`` the open scan, with ``labels`` (default: none), and announce it.

        The label layer's new editor is built first and silently, then the session gets
        the volume, then the layer announces its labels (one consistent state at every signal).
        """
        ctx = self.ctx
        ctx.labels.attach(volume, labels, labels_name, announce=False)
        ctx.session.set_volume(volume)
        ctx.labels.announce()
        if path is not None and self.remember_recent:
            self.recent.add(path)
        name = Path(path).name if path else "phantom"
        self.set_title(f"LungLens — {name}")
        msg = f"Opened {name}: {' x '.join(str(s) for s in volume.shape[::-1])} voxels"
        if volume.warnings:
            msg += " (warnings: " + "; ".join(volume.warnings) + ")"
        self.ctx.notices.status(msg)
        self.volume_opened.emit(volume)
        if labels is not None:
            self.labels_opened.emit(labels_name)

    def _phantom_opened(self, result: tuple[Volume, Optional[np.ndarray]]) -> None:
        volume, labels = result
        self.show_volume(volume, None, labels, "phantom labels" if labels is not None else "")

    def _failed(self, exc: BaseException) -> None:
        msg = error_message(exc)
        self.ctx.notices.error(msg)
        self.open_failed.emit(msg)

    def _cancelled(self) -> None:
        self.ctx.notices.status("Cancelled; the previous scan stays open.")
        self.open_failed.emit("")

    # -- labels ---------------------------------------------------------------
    def open_labels(self, path: str | os.PathLike) -> None:
        """Read a label map made for the open scan; one on another grid is refused."""
        volume = self.ctx.session.volume
        if volume is None:
            self.ctx.notices.error("Open a scan first, then the label map made for it.")
            return
        self._guarded("open other labels", lambda: self.ctx.run(
            _load_labels, str(path), volume, title=f"Opening labels {Path(path).name}",
            on_result=lambda arr: self._labels_loaded(arr, str(path)), on_error=self._failed,
            on_cancel=self._cancelled))

    def _labels_loaded(self, loaded: Any, path: str) -> None:
        array, edited = loaded if isinstance(loaded, tuple) else (loaded, None)
        try:
            editor = self.ctx.labels.set_array(array, Path(path).name)
        except GeometryMismatchError as exc:
            self._failed(exc)
            return
        if edited is not None and edited.shape == editor.shape:
            editor.adopt_person_edits(edited)  # provenance stored in the file (.seg.nrrd, DICOM SEG)
        self.ctx.notices.status(f"Labels {Path(path).name} shown over the scan.")
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
            self.ctx.notices.error(f"{path} no longer exists; it was removed from the recent list.")
            return
        self.open_path(path)


def read_folder(folder: str, progress: Any = None, cancel: Any = None) -> Volume | list[Any]:
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


def _load_labels(path: str, reference: Volume, progress: Any = None,
                 cancel: Any = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The labels and, when the file stores it, which voxels a person edited."""
    from engine import io

    return io.load_labels(path, reference), io.load_edited(path, reference)
