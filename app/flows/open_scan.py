"""The open flow: scans and label maps from the File menu, Open Recent, drag-and-drop, command line.

Every read runs on a worker (:meth:`app.context.AppContext.run`) with a progress bar and
Cancel. Scans are read by :func:`engine.io.open_isolated` (a child process that Cancel or
closing the window ends at once, whatever the reader is stuck in); only the built-in
phantom is built in-process. A failed or cancelled open leaves the previous scan open.
A folder holding several DICOM series opens a :class:`SeriesDialog` first
(:func:`read_scan` on the worker decides, with :func:`engine.io.list_series`). The
warnings of an opened scan (skipped slices, split series...) go to the Notices panel.

A file opened or dropped while a scan is open is sorted first (:func:`engine.io.file_kind.label_or_scan`):
a ``.seg.nrrd`` or DICOM SEG opens as labels over the scan (with the geometry check);
a NIfTI/NRRD/MHA on the open scan's grid holding a few integer values asks
"Open as labels / Open as new scan"; anything else opens as a new scan. Label values
outside the label table are refused by the engine; the flow then offers to map them to
background (after saying how many).

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
from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.errors import CorruptFileError, GeometryMismatchError, SeriesError
from engine.io.file_kind import ASK, LABELS, label_or_scan
from engine.progress import as_progress
from engine.types import Volume

from ..context import AppContext
from ..state.tasks import Task, error_message
from ..widgets.series_dialog import SeriesDialog

#: "All files" first: DICOM files often have no extension (File > Open DICOM folder opens a folder)
SCAN_FILTER = ("All files (*);;"
               "Scans (*.nii *.nii.gz *.dcm *.nrrd *.nhdr *.mha *.mhd *.png *.jpg *.jpeg)")

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
        #: ask the user (False in scripted runs: a question becomes a failure, nobody would answer)
        self.interactive = True
        #: add opened scans to Open Recent (scripted runs leave the user's list alone)
        self.remember_recent = True
        self._open_task: Optional[Task] = None
        #: the open "Open as labels / Open as new scan" question, the "map to background" one
        self.kind_prompt: Optional[QMessageBox] = None
        self.unknown_prompt: Optional[QMessageBox] = None
        actions = ctx.actions
        self.open_action = actions.action("&Open scan…", self.ask_open_file, QKeySequence.StandardKey.Open, "file")
        self.open_folder_action = actions.action("Open DICOM &folder…", self.ask_open_folder, "Ctrl+Shift+O", "file")
        self.recent_menu = actions.menus["file"].addMenu("Open &recent")
        self.phantom_action = actions.action("Open &phantom", self.open_phantom, None, "file")
        actions.menus["file"].addSeparator()
        self.open_labels_action = actions.action("Open &labels…", self.ask_open_labels, "Ctrl+L", "file")
        #: image stacks carry no slice positions: reopen the open one with the other end as the head
        self.reopen_stack_action = actions.action("Reopen stack feet first", self.reopen_stack_flipped, None, "file",
                                                  tip="The files of an image stack carry no positions: reopen it "
                                                      "with the other end as the head (upper and lower zones)")
        self.reopen_stack_action.setEnabled(False)
        ctx.session.volume_changed.connect(self._stack_order_action)
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
    def open_path(self, path: str | os.PathLike, series: Optional[str] = None, first_slice: Optional[str] = None) -> None:
        """Open a scan file or folder on a worker; a folder with several series asks which one.

        ``series`` is a :attr:`engine.io.SeriesInfo.uid` (or SeriesInstanceUID / number); ``first_slice``
        where an image stack's first file lies (:func:`engine.io.load`).
        With a scan open, a label file opens as labels over it (see the module docstring).
        """
        volume = self.ctx.session.volume
        if volume is None or series is not None or first_slice is not None:
            self._guarded("open another scan", lambda: self._open_path(str(path), series, first_slice))
            return
        self._start_open(label_or_scan, str(path), volume, title=f"Checking {Path(path).name}",
                         on_result=lambda kind: self._sorted(str(path), kind), on_error=self._failed,
                         on_cancel=self._cancelled)

    def _stack_order_action(self, volume: Optional[Volume]) -> None:
        first = (volume.meta or {}).get("stack_first_slice") if volume is not None and volume.shape[0] > 1 else None
        self.reopen_stack_action.setEnabled(first is not None)
        self.reopen_stack_action.setText("Reopen stack head first" if first == "inferior" else "Reopen stack feet first")

    def reopen_stack_flipped(self) -> None:
        """Reopen the open image stack with its first file at the other end (feet instead of head, or back)."""
        volume = self.ctx.session.volume
        first = (volume.meta or {}).get("stack_first_slice") if volume is not None else None
        if volume is None or first is None or not volume.source:
            return
        other = "inferior" if first == "superior" else "superior"
        self._guarded("reopen the stack", lambda: self._open_path(str(volume.source), None, first_slice=other))

    def _sorted(self, path: str, kind: str) -> None:
        if kind == LABELS:
            self.open_labels(path)
        elif kind == ASK and self.interactive:
            self.ask_labels_or_scan(path)
        elif kind == ASK:
            self.open_labels(path)  # scripted: a file that fits the scan is taken as its labels
        else:
            self._guarded("open another scan", lambda: self._open_path(path, None))

    def ask_labels_or_scan(self, path: str) -> QMessageBox:
        """Ask (non-modally) whether ``path``, which fits the open scan, is its labels or a new scan."""
        box = QMessageBox(QMessageBox.Icon.Question, "Labels or scan?",
                          f"{Path(path).name} has the open scan's grid and holds only a few whole values, as a "
                          "label map does. Open it as labels over this scan, or as a new scan?",
                          QMessageBox.StandardButton.NoButton, self.ctx.actions.owner)
        as_labels = box.addButton("Open as labels", QMessageBox.ButtonRole.AcceptRole)
        as_scan = box.addButton("Open as new scan", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(as_labels)
        box.setModal(False)

        def answered(button: Any) -> None:
            self.kind_prompt = None
            if button is as_labels:
                self.open_labels(path)
            elif button is as_scan:
                self._guarded("open another scan", lambda: self._open_path(path, None))
            else:
                self._cancelled()

        box.buttonClicked.connect(answered)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.kind_prompt = box
        return box

    def _open_path(self, path: str, series: Optional[str], first_slice: Optional[str] = None) -> None:
        self._last_dir = str(Path(path).parent)
        self._start_open(read_scan, path, series, first_slice, title=f"Opening {Path(path).name}",
                         on_result=lambda out: self._loaded(out, path),
                         on_error=self._failed, on_cancel=self._cancelled)

    @property
    def opening(self) -> bool:
        """True while an open (or the check before it) runs."""
        return self._open_task is not None

    def cancel_open(self) -> None:
        """Cancel the open that runs (its reader process is ended at once)."""
        if self._open_task is not None:
            self._open_task.cancel()

    def _start_open(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Start an open; one still running is cancelled (the newest request wins)."""
        if self._open_task is not None:
            self._open_task.cancel()
        # "finished" is connected before the start (a quick open can end before a later
        # connection, and ``opening`` would stay true for good); it arrives through the GUI
        # thread's event loop, so ``started`` holds the task by then
        started: list[Any] = []
        task = self.ctx.run(fn, *args, on_finished=lambda: self._open_ended(started[0]), **kwargs)
        started.append(task)
        self._open_task = task

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
        old = ctx.labels.editor  # edits made while this scan was loading (the guard asked before it started)
        set_aside = old is not None and old.dirty and old.journal is not None
        ctx.labels.attach(volume, labels, labels_name, announce=False)
        ctx.session.set_volume(volume)
        ctx.labels.announce()
        if path is not None and self.remember_recent:
            self.recent.add(path)
        name = Path(path).name if path else "phantom"
        self.set_title(f"LungLens — {name}")
        msg = f"Opened {name}: {' x '.join(str(s) for s in volume.shape[::-1])} voxels"
        self.ctx.notices.new_scan(name)
        if set_aside:  # the layer kept their journal
            self.ctx.notices.warn("Label edits made while this scan was opening belong to the scan before it: they "
                                  "are kept, not exported, and offered when that scan is opened again.")
        for warning in volume.warnings:
            self.ctx.notices.warn(f"{name}: {warning}")
        if volume.warnings:
            n = len(volume.warnings)
            msg += f" with {n} warning{'s' if n > 1 else ''} (see Notices): {volume.warnings[0]}"
        self.ctx.notices.status(msg, 15000 if volume.warnings else 8000)
        self.volume_opened.emit(volume)
        if labels is not None:
            self.labels_opened.emit(labels_name)

    def _phantom_opened(self, result: tuple[Volume, Optional[np.ndarray]]) -> None:
        volume, labels = result
        self.show_volume(volume, None, labels, "phantom labels" if labels is not None else "")

    def _failed(self, exc: BaseException) -> None:
        msg = error_message(exc)
        if self.ctx.session.volume is not None:  # say what the screen still shows
            msg += "\nThe scan that was open stays open."
        self.ctx.notices.error(msg)
        self.ctx.notices.warn(f"Not opened: {msg.splitlines()[0]}")  # kept once the dialog is closed
        self.open_failed.emit(msg)

    def _cancelled(self) -> None:
        self.ctx.notices.status("Cancelled; the previous scan stays open.")
        self.open_failed.emit("")

    # -- labels ---------------------------------------------------------------
    def open_labels(self, path: str | os.PathLike, unknown: str = "refuse") -> None:
        """Read a label map made for the open scan; one on another grid is refused.

        ``unknown`` is passed to :func:`engine.io.load_labels`; values outside the label
        table are first refused, then the user is offered ``"background"``.
        """
        volume = self.ctx.session.volume
        if volume is None:
            self.ctx.notices.error("Open a scan first, then the label map made for it.")
            return
        self._guarded("open other labels", lambda: self.ctx.run(
            _load_labels, str(path), volume, unknown, title=f"Opening labels {Path(path).name}",
            on_result=lambda arr: self._labels_loaded(arr, str(path), unknown), on_error=lambda exc:
            self._labels_failed(exc, str(path)), on_cancel=self._cancelled))

    def _labels_loaded(self, loaded: Any, path: str, unknown: str = "refuse") -> None:
        array, edited = loaded if isinstance(loaded, tuple) else (loaded, None)
        old = self.ctx.labels.editor
        set_aside = old is not None and old.dirty and old.journal is not None  # painted while the file loaded
        try:
            editor = self.ctx.labels.set_array(array, Path(path).name)
        except GeometryMismatchError as exc:
            self._failed(exc)
            return
        if set_aside:  # the layer kept their journal
            self.ctx.notices.warn(f"Label edits made while {Path(path).name} was opening were replaced by it: they "
                                  "are kept, not exported, and offered when this scan is opened again.")
        if edited is not None and edited.shape == editor.shape:
            editor.adopt_person_edits(edited)  # provenance stored in the file (.seg.nrrd, DICOM SEG)
        else:
            self.ctx.labels.provenance_unknown = True
        if unknown == "background":
            self.ctx.notices.warn(f"{Path(path).name}: label values outside the label table were set to "
                                  "background, as you asked.")
        self.ctx.notices.status(f"Labels {Path(path).name} shown over the scan.")
        self.labels_opened.emit(Path(path).name)

    def _labels_failed(self, exc: BaseException, path: str) -> None:
        if isinstance(exc, CorruptFileError) and "outside the label table" in str(exc) and self.interactive:
            self.ask_map_unknown(path, str(exc))
        else:
            self._failed(exc)

    def ask_map_unknown(self, path: str, reason: str) -> QMessageBox:
        """Ask (non-modally) whether to open ``path`` with its unknown label values set to background."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Unknown label values",
                          f"{reason}\n\nOpen the labels with those voxels set to background (0)? "
                          "They would be lost when you export.", QMessageBox.StandardButton.NoButton,
                          self.ctx.actions.owner)
        mapped = box.addButton("Map them to background", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setModal(False)

        def answered(button: Any) -> None:
            self.unknown_prompt = None
            if button is mapped:
                self.open_labels(path, unknown="background")
            else:
                self.ctx.notices.status(f"{Path(path).name} was not opened.")
                self.open_failed.emit(reason)

        box.buttonClicked.connect(answered)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.unknown_prompt = box
        return box

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


def read_scan(path: str, series: Optional[str] = None, first_slice: Optional[str] = None, progress: Any = None,
              cancel: Any = None) -> Volume | list[Any]:
    """Read a scan in a child process (:func:`engine.io.open_isolated`): a Volume, or the list
    of the series of a folder that holds several (the user chooses; ``series`` then names one).
    ``first_slice``: where an image stack's first file lies (:func:`engine.io.load`)."""
    from engine import io

    report = as_progress(progress)
    if series is None and os.path.isdir(path):
        try:
            found = io.list_series(path, progress=report.sub(0.0, 0.3), cancel=cancel)
        except SeriesError:
            return io.open_isolated(path, progress=progress, cancel=cancel,  # PNG/JPG stack, or a clear error
                                    first_slice=first_slice)
        if len(found) > 1:
            return list(found)
        return io.open_isolated(path, progress=report.sub(0.3, 1.0), cancel=cancel, series=found[0].uid)
    return io.open_isolated(path, progress=progress, cancel=cancel, series=series, first_slice=first_slice)


def read_folder(folder: str, progress: Any = None, cancel: Any = None) -> Volume | list[Any]:
    """:func:`read_scan` of a folder (kept for scripts)."""
    return read_scan(folder, None, None, progress=progress, cancel=cancel)


def _load_labels(path: str, reference: Volume, unknown: str = "refuse", progress: Any = None,
                 cancel: Any = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The labels and, when the file stores it, which voxels a person edited."""
    from engine import io

    return io.load_labels(path, reference, unknown=unknown), io.load_edited(path, reference)
