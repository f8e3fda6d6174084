"""Never lose work: crash-recovery prompt, unsaved-edit guard on quit/open, and export.

:class:`PersistenceFlow` belongs to the editing controller of :mod:`app.editing`:

- at start-up with no scan open, :meth:`PersistenceFlow.offer_startup_restore` offers to
  open the scan whose edits an earlier session left unsaved (and restores them);
- when a scan opens, :meth:`PersistenceFlow.offer_restore` asks (non-modally) whether to
  restore the unsaved edits an earlier session journaled for it;
- closing the window or opening another scan with unsaved edits asks Export / Discard /
  Cancel first (a window event filter, and a wrapper around the open flows);
- File > Export labels writes on a worker thread through
  :func:`engine.editing.export.export_labels` and then marks the journal saved.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.editing import (Journal, LabelEditor, all_unsaved_journals, has_unsaved_edits, journal_source,
                            scan_key, session_journals, unsaved_journals)
from engine.editing.export import export_labels
from engine.editing.journal import read_journal
from engine.types import Volume

if TYPE_CHECKING:  # pragma: no cover
    from ..editing import EditingController

EXPORT_FILTER = ("NIfTI (*.nii.gz *.nii);;3D Slicer segmentation (*.seg.nrrd);;NRRD (*.nrrd);;"
                 "DICOM SEG (*.dcm);;PNG slices (folder) (*)")


def edited_mask_name(path: str | Path) -> Path:
    """``labels.nii.gz`` -> ``labels_edited.nii.gz`` (same format; folders get ``_edited``)."""
    p = Path(path)
    for ext in (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha", ".dcm"):
        if p.name.lower().endswith(ext):
            return p.with_name(p.name[: -len(ext)] + "_edited" + ext)
    return p.with_name(p.name + "_edited")


class PersistenceFlow(QObject):
    """Restore prompt, unsaved-edit guard and export for one :class:`EditingController`.

    Signals
    -------
    exported(str)
        labels were written to this path.
    """

    exported = Signal(str)

    def __init__(self, controller: "EditingController") -> None:
        super().__init__(controller)
        self.controller = controller
        self.window = controller.window
        self._close_ok = False
        self.restore_prompt: Optional[QMessageBox] = None
        self.unsaved_prompt: Optional[QMessageBox] = None
        w = self.window
        self.export_action = QAction("&Export labels…", w)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(lambda _c=False: self.ask_export())
        self.export_mask_action = QAction("Export also the edited-by-hand mask", w)
        self.export_mask_action.setCheckable(True)
        self.export_mask_action.setToolTip("Write <name>_edited beside exported labels: 1 where a person "
                                           "changed the AI result")
        file_menu = w.menus["file"]
        quit_action = next((a for a in file_menu.actions() if a.text() == "&Quit"), None)
        for action in (self.export_action, self.export_mask_action):
            if quit_action is not None:
                file_menu.insertAction(quit_action, action)
            else:
                file_menu.addAction(action)
        self.startup_prompt: Optional[QMessageBox] = None
        self._pending_restore: Optional[Path] = None
        w.installEventFilter(self)
        self._guard_opening()
        w.shown.connect(lambda: QTimer.singleShot(0, self.offer_startup_restore))

    # -- crash recovery -------------------------------------------------------
    def offer_restore(self, volume: Volume) -> Optional[QMessageBox]:
        """Ask (non-modally) whether to restore unsaved edits an earlier session left for this scan."""
        key = scan_key(volume.source, volume.geometry)
        ed = self.controller.editor
        own = ed.journal.path if ed is not None and ed.journal is not None else None
        found = [p for p in unsaved_journals(key) if p != own]
        self._tidy(key, keep=set(found) | {own})
        pending, self._pending_restore = self._pending_restore, None
        if pending is not None and pending in found:  # the user already chose "Open and restore"
            self.restore(pending)
            return None
        if not found:
            return None
        path = found[0]
        box = QMessageBox(QMessageBox.Icon.Question, "Restore unsaved edits",
                          f"LungLens found label edits of this scan that were not exported "
                          f"(session {path.stem.split('-')[0]}). Restore them?",
                          QMessageBox.StandardButton.NoButton, self.window)
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setModal(False)

        def answered(button: Any) -> None:
            if button is restore:
                self.restore(path)
            elif box.buttonRole(button) == QMessageBox.ButtonRole.DestructiveRole:
                for p in found:
                    Journal(p).discard()
            self.restore_prompt = None

        box.buttonClicked.connect(answered)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.restore_prompt = box
        return box

    def offer_startup_restore(self) -> Optional[QMessageBox]:
        """At start-up with no scan open: offer to open the scan whose edits were left unsaved."""
        if self.window.session.volume is not None:
            return None
        for path in all_unsaved_journals():
            source = journal_source(path)
            if source and Path(source).exists():
                break
        else:
            return None
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved label edits",
                          f"LungLens closed while label edits of {Path(source).name} were not exported. "
                          "Open that scan and restore them?", QMessageBox.StandardButton.NoButton, self.window)
        open_button = box.addButton("Open and restore", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setModal(False)

        def answered(button: Any) -> None:
            self.startup_prompt = None
            if button is open_button:
                self._pending_restore = path
                self.window.scan_io.open_path(source)

        box.buttonClicked.connect(answered)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.startup_prompt = box
        return box

    @staticmethod
    def _tidy(key: str, keep: set, min_age_s: float = 3600.0) -> None:
        """Delete this scan's journals that hold nothing unsaved and were left over an hour ago
        (a session that is still running elsewhere touches its journal at every edit)."""
        now = time.time()
        for p in session_journals(key):
            try:
                if p not in keep and now - p.stat().st_mtime > min_age_s and not has_unsaved_edits(p):
                    p.unlink()
            except OSError:
                pass

    def restore(self, path: str | Path) -> bool:
        """Replace the labels by those of journal ``path`` (with its undo history)."""
        vol = self.window.session.volume
        if vol is None:
            return False
        rep = read_journal(path)
        if rep.shape != tuple(vol.shape):
            self.window.show_error("The recovered edits do not fit this scan's grid; they were not restored.")
            return False
        self.controller.adopt_restored(LabelEditor.from_journal(path, intensities=vol.array,
                                                                history=self.controller.new_history()))
        self.window.status_message("Unsaved edits restored.")
        return True

    # -- unsaved edits --------------------------------------------------------
    def reset(self) -> None:
        """A new scan is open: closing asks again when it gets unsaved edits."""
        self._close_ok = False

    @property
    def has_unsaved_edits(self) -> bool:
        return self.controller.editor is not None and self.controller.editor.dirty

    def confirm_unsaved(self, action: str, proceed: Callable[[], None]) -> bool:
        """Run ``proceed`` now when nothing is unsaved (returns True); otherwise ask
        (non-modally) Export / Discard / Cancel before ``action`` and return False."""
        if not self.has_unsaved_edits:
            proceed()
            return True
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved label edits",
                          f"The label edits of this scan are not exported. Export them before you {action}?",
                          QMessageBox.StandardButton.NoButton, self.window)
        export = box.addButton("Export…", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard edits", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setModal(False)

        def answered(button: Any) -> None:
            self.unsaved_prompt = None
            if button is export:
                self.ask_export(then=proceed)
            elif button is discard:
                ed = self.controller.editor
                if ed is not None:
                    ed.dirty = False
                    if ed.journal is not None:
                        ed.journal.discard()
                proceed()

        box.buttonClicked.connect(answered)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.unsaved_prompt = box
        return False

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if obj is self.window and event.type() == QEvent.Type.Close:
            if self.has_unsaved_edits and not self._close_ok:
                event.ignore()
                self.confirm_unsaved("quit", self._close_now)
                return True
            ed = self.controller.editor
            if ed is not None and ed.journal is not None and not ed.dirty:
                ed.journal.discard()
        return super().eventFilter(obj, event)

    def _close_now(self) -> None:
        self._close_ok = True
        self.window.close()

    def _guard_opening(self) -> None:
        """Ask before another scan replaces one with unsaved edits (wraps the open flows)."""
        scan_io = self.window.scan_io
        for name in ("open_path", "open_phantom", "open_labels"):
            original = getattr(scan_io, name)

            def guarded(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> None:
                what = "open other labels" if _original.__name__ == "open_labels" else "open another scan"
                self.confirm_unsaved(what, lambda: _original(*args, **kwargs))

            setattr(scan_io, name, guarded)

    # -- export ---------------------------------------------------------------
    def ask_export(self, then: Optional[Callable[[], None]] = None) -> None:
        """File > Export labels: choose a target, then :meth:`export_to`."""
        vol = self.window.session.volume
        if vol is None or self.controller.editor is None:
            self.window.show_error("Open a scan first: there are no labels to export.")
            return
        start = str(Path(vol.source).with_name(Path(vol.source).name.split(".")[0] + "_labels.nii.gz")) \
            if vol.source else "labels.nii.gz"
        path, _ = QFileDialog.getSaveFileName(self.window, "Export labels", start, EXPORT_FILTER)
        if path:
            mask = edited_mask_name(path) if self.export_mask_action.isChecked() else None
            self.export_to(path, edited_mask_path=mask, then=then)

    def export_to(self, path: str | Path, edited_mask_path: Optional[str | Path] = None,
                  then: Optional[Callable[[], None]] = None) -> None:
        """Write the labels (and optionally the edited-by-a-person mask) on a worker thread."""
        vol, ed = self.window.session.volume, self.controller.editor
        if vol is None or ed is None:
            return
        labels = ed.labels.copy()  # edits may go on while the worker writes
        mask = ed.person_mask() if edited_mask_path is not None else None
        version = ed.version

        def done(written: list[Path]) -> None:
            if ed.version == version:
                ed.mark_saved(str(written[0]))
                self.window.status_message(f"Exported labels to {written[0]}")
            else:
                self.window.status_message(f"Exported labels to {written[0]}; edits made meanwhile are "
                                           "not exported yet.")
            self.exported.emit(str(written[0]))
            if then is not None:
                then()

        self.window.run_worker(export_labels, labels, vol, str(path), edited_mask=mask,
                               edited_mask_path=str(edited_mask_path) if edited_mask_path else None,
                               title=f"Exporting {Path(path).name}", on_result=done)
