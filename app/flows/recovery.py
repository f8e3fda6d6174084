"""Never lose work: crash-recovery prompts and the unsaved-edits guard on quit and open.

- At start-up with no scan open, :meth:`RecoveryFlow.offer_startup_restore` offers to
  open the scan whose edits an earlier session left unsaved (and restores them).
- When a scan opens, :meth:`RecoveryFlow.offer_restore` asks (non-modally) whether to
  restore the unsaved edits an earlier session journaled for it; a restored editor goes
  to the label layer (:meth:`app.state.label_layer.LabelLayer.adopt`).
- Closing the window (an event filter) or opening another scan or labels (the open
  flow's before-open hook, :meth:`RecoveryFlow.confirm_unsaved`) with unsaved edits asks
  Export / Discard / Cancel first.

At start-up (:meth:`RecoveryFlow.startup`, once, when the window is first shown) the
temporary files of interrupted exports are removed
(:func:`engine.io.atomic.clean_stale_temps`) and damaged journals
(:func:`engine.editing.journals.journal_problems`) are listed in the Notices panel and
reported in one message (inside the restore offer when there is one): one dialog at a
time, and the start-up offer gives way to the offer for the scan that opens.
A restore that recovered only part of a journal says so (``restore_problem``).

The journals' retention policy is the engine's (:func:`engine.editing.tidy_journals`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Optional

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from engine.editing import (Journal, LabelEditor, all_unsaved_journals, journal_header, scan_key, source_stamp,
                            tidy_journals, unsaved_journals)
from engine.editing.journal import journal_in_use, read_journal
from engine.editing.journals import journal_problems, unsaved_journals_where
from engine.errors import LungLensError
from engine.types import Volume

from ..context import AppContext
from .export import ExportFlow

log = logging.getLogger(__name__)


class RecoveryFlow(QObject):
    """Restore prompts and the unsaved-edits guard of one main window.

    Parameters
    ----------
    ctx
        The window's context.
    export
        The export flow (the guard's "Export…" button).
    open_path
        Opens a scan (the start-up prompt's "Open and restore").
    shown
        The window's first-shown signal (the start-up prompt waits for it).
    """

    def __init__(self, ctx: AppContext, export: ExportFlow, open_path: Callable[[str], None],
                 shown: Signal) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.export = export
        self.open_path = open_path
        self.owner: QWidget = ctx.actions.owner
        self._close_ok = False
        #: the editor whose edits "Discard edits" let go while an open runs (see :meth:`open_failed`)
        self._discarding: Optional[Any] = None
        self.restore_prompt: Optional[QMessageBox] = None
        self.unsaved_prompt: Optional[QMessageBox] = None
        self.startup_prompt: Optional[QMessageBox] = None
        self._pending_restore: Optional[Path] = None
        self._started = False
        #: the start-up report of damaged journals (one message; empty when there were none)
        self.startup_report = ""
        self.owner.installEventFilter(self)
        shown.connect(lambda: QTimer.singleShot(0, self.startup))

    def startup(self) -> None:
        """Once per window: clean stale export temporaries, report damaged journals, offer a restore."""
        if self._started:
            return
        self._started = True
        notices = self.ctx.notices
        try:
            from engine.io.atomic import clean_stale_temps
            removed = clean_stale_temps()
        except Exception as exc:  # noqa: BLE001 - cleaning is best effort, never a start-up failure
            notices.warn(f"Could not remove the temporary files of interrupted exports: {exc}")
            removed = []
        try:  # undo steps a session that ended without cleaning up left on disk: nobody can use them
            from engine.editing.history import clean_stale_spills
            spills = clean_stale_spills()
            if spills:
                log.info("removed %d undo folder(s) of ended sessions", len(spills))
        except Exception:  # noqa: BLE001 - cleaning is best effort, never a start-up failure
            log.exception("could not remove the undo folders of ended sessions")
        if removed:
            notices.warn(f"Removed {len(removed)} temporary file(s) left by interrupted exports "
                         f"(in {', '.join(sorted({str(p.parent) for p in removed}))}).")
        try:
            problems = journal_problems()
        except Exception as exc:  # noqa: BLE001 - reported, never raised in a timer slot
            problems = {Path("journals"): f"The saved edits could not be checked: {exc}"}
        for text in problems.values():
            notices.warn(f"Unsaved-edits journal: {text}")
        if problems:
            n = len(problems)
            self.startup_report = (f"{n} journal{'s' if n > 1 else ''} of unsaved edits {'are' if n > 1 else 'is'} "
                                   "damaged: " + " ".join(problems.values()) + " (listed in Notices).")
        box = self.offer_startup_restore()
        if box is not None and self.startup_report:
            box.setInformativeText(self.startup_report)
        elif self.startup_report:
            notices.error(self.startup_report)

    def open_failed(self, _message: str = "") -> None:
        """An open that "Discard edits" let go ahead failed or was cancelled: the edits are still on screen, so
        they are unsaved again (the journal was kept), and the user is told."""
        ed, self._discarding = self._discarding, None
        self._pending_restore = None  # "Open and restore" did not open it: its edits stay, offered next time
        if ed is not None and ed is self.ctx.labels.editor and not ed.dirty:
            ed.dirty = True
            self.ctx.notices.warn("Your label edits were not discarded: the open did not happen, so they stay, "
                                  "still not exported.")

    def edits_replaced(self, *_: Any) -> None:
        """The labels were replaced (another scan or label map opened): a pending discard is done."""
        self._discarding = None

    def scan_opened(self, volume: Volume) -> None:
        """A new scan is open: closing asks again when it gets unsaved edits; earlier edits are offered."""
        self.edits_replaced()
        self._close_ok = False
        self.offer_restore(volume)

    # -- crash recovery -------------------------------------------------------
    def offer_restore(self, volume: Volume) -> Optional[QMessageBox]:
        """Ask (non-modally) whether to restore unsaved edits an earlier session left for this scan."""
        key = scan_key(volume.source, volume.geometry)
        ed = self.ctx.labels.editor
        own = ed.journal.path if ed is not None and ed.journal is not None else None
        found = [p for p in unsaved_journals(key) if p != own]
        tidy_journals(key, keep=set(found) | {own})
        pending, self._pending_restore = self._pending_restore, None
        if pending is not None and pending in found:  # the user already chose "Open and restore"
            self.restore(pending)
            return None
        if pending is not None and _same_file(journal_header(pending).get("source"), volume.source):
            self._unplaced(pending, volume)  # it opened, but is not the scan they were made on (now): said
        moved = not found
        if moved:  # edits of a scan that is no longer where they were made, on this scan's grid: offered too
            found = unsaved_journals_where(lambda head: _moved_here(head, volume))
            if len(found) > 1:  # which scan they belong to cannot be told: none is put on this one
                self.ctx.notices.warn(f"{len(found)} sets of unsaved edits of scans that are no longer where they "
                                      "were made have this scan's grid: open the scan each was made on to restore it.")
                return None
        if not found:
            return None
        path = found[0]
        for old in (self.startup_prompt, self.restore_prompt):  # one question at a time: this one is newer
            if old is not None:
                old.close()
        self.startup_prompt = self.restore_prompt = None
        where = (f"made on {journal_header(path).get('source')}, which is no longer there, on a scan with this "
                 "one's grid" if moved else "of this scan")
        box = QMessageBox(QMessageBox.Icon.Question, "Restore unsaved edits",
                          f"LungLens found label edits {where} that were not exported "
                          f"(session {path.stem.split('-')[0]}"
                          f"{f', the newest of {len(found)}; Discard removes all {len(found)}' if len(found) > 1 else ''})"
                          ". Restore them?",
                          QMessageBox.StandardButton.NoButton, self.owner)
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
        if self.ctx.session.volume is not None:
            return None
        for path in all_unsaved_journals():
            head = journal_header(path)
            source = head.get("source")
            if source and Path(source).exists():
                break
        else:
            return None
        how = {k: v for k, v in (head.get("open_with") or {}).items() if k in ("series", "first_slice") and v}
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved label edits",
                          f"LungLens closed while label edits of {Path(source).name} were not exported. "
                          "Open that scan and restore them?", QMessageBox.StandardButton.NoButton, self.owner)
        open_button = box.addButton("Open and restore", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setModal(False)

        def answered(button: Any) -> None:
            self.startup_prompt = None
            if button is open_button:
                self._pending_restore = path
                self.open_path(source, **how)  # its series, a stack's order: the scan the edits were made on

        box.buttonClicked.connect(answered)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.startup_prompt = box
        return box

    def restore(self, path: str | Path) -> bool:
        """Replace the labels by those of journal ``path`` (with its undo history)."""
        vol = self.ctx.session.volume
        if vol is None:
            return False
        try:
            rep = read_journal(path)
            if rep.shape != tuple(vol.shape):
                self.ctx.notices.error("The recovered edits do not fit this scan's grid; they were not restored.")
                return False
            editor = LabelEditor.from_journal(path, intensities=vol.array, history=self.ctx.preferences.new_history())
        except (LungLensError, OSError, ValueError) as exc:
            self.ctx.notices.error(f"The unsaved edits in {Path(path).name} could not be restored: {exc}")
            return False
        old = self.ctx.labels.editor
        set_aside = old is not None and old.dirty and old.journal is not None
        # the layer keeps the journal of edits made since the scan opened (closed, offered next time) and
        # removes an untouched one
        self.ctx.labels.adopt(editor, "restored edits")
        # a journal that starts from labels (opened from a file that keeps no record of hand edits) and never
        # adopted a record of them: whose they are is still unknown, as before the crash
        adopted = any(kind == "baseline" for kind, _ in rep.entries)
        self.ctx.labels.provenance_unknown = bool(rep.initial.any()) and not adopted
        if set_aside:
            self.ctx.notices.warn("The edits made since this scan opened were set aside by the restore, not lost: "
                                  "they are kept and offered the next time this scan opens.")
        head = journal_header(path)
        then = head.get("source_stamp")
        if then and head.get("source") == vol.source and source_stamp(vol.source) not in (None, then):
            self.ctx.notices.warn(f"{Path(str(vol.source)).name} changed on disk after these edits were made: check "
                                  "that they still fit the scan before you save them.")
        problem = getattr(editor, "restore_problem", "")
        if problem:
            self.ctx.notices.warn(f"Restored edits: {problem}")
            self.ctx.notices.error(f"The unsaved edits were restored only in part: {problem}")
        else:
            self.ctx.notices.status("Unsaved edits restored.")
        return True

    def _unplaced(self, path: Path, volume: Volume) -> None:
        """The journal "Open and restore" chose does not fit the scan that opened (it changed, its grid did):
        kept beside the journals as ``<name>.unplaced`` (never offered again, never deleted), and said."""
        if journal_in_use(path) or not path.is_file():
            return
        head = journal_header(path)
        kept = path.with_name(path.name + ".unplaced")
        try:
            path.rename(kept)
            path.with_name(path.name + ".lock").unlink(missing_ok=True)
        except OSError:
            kept = path
        same = list(volume.shape) == head.get("shape")
        self.ctx.notices.error(
            f"The unsaved edits of {Path(str(head.get('source'))).name} could not be restored: the scan there is "
            f"not the one they were made on (their grid {tuple(head.get('shape') or ())}, this scan's "
            f"{tuple(volume.shape)}{'; same size, another position, spacing or order' if same else ''}). "
            f"They are kept in {kept} and will not be offered again.")

    # -- unsaved edits --------------------------------------------------------
    @property
    def has_unsaved_edits(self) -> bool:
        """Edits not exported, a stroke still held included (quitting mid-stroke lost it without a word)."""
        ed = self.ctx.labels.editor
        return ed is not None and (ed.dirty or ed.stroke_active)

    def confirm_unsaved(self, action: str, proceed: Callable[[], None]) -> bool:
        """Run ``proceed`` now when nothing is unsaved (returns True); otherwise ask
        (non-modally) Export / Discard / Cancel before ``action`` and return False."""
        if not self.has_unsaved_edits:
            proceed()
            return True
        old = self.unsaved_prompt
        if old is not None:  # one question at a time: the newer action replaces the one asked before (cancelled)
            self.unsaved_prompt = None
            old.buttonClicked.disconnect()
            old.close()
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved label edits",
                          f"The label edits of this scan are not exported. Export them before you {action}?",
                          QMessageBox.StandardButton.NoButton, self.owner)
        export = box.addButton("Export…", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard edits", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setModal(False)

        def answered(button: Any) -> None:
            self.unsaved_prompt = None
            if button is export:
                self.export.ask_export(then=proceed)
            elif button is discard:
                # the edits go when the next scan (or label map) replaces them, or the window closes: the
                # layer / close handler then removes the journal of an editor that is not dirty; should the
                # open fail or be cancelled, :meth:`open_failed` takes the discard back
                ed = self.ctx.labels.editor
                if ed is not None:
                    ed.dirty = False
                    self._discarding = ed
                proceed()

        box.buttonClicked.connect(answered)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.unsaved_prompt = box
        return False

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if obj is self.owner and event.type() == QEvent.Type.Close:
            if self.has_unsaved_edits and not self._close_ok:
                event.ignore()
                self.confirm_unsaved("quit", self._close_now)
                return True
            ed = self.ctx.labels.editor
            if ed is not None and ed.journal is not None and not ed.dirty:
                ed.journal.discard()
        return super().eventFilter(obj, event)

    def _close_now(self) -> None:
        self._close_ok = True
        self.owner.close()


def _same_file(a: Any, b: Any) -> bool:
    try:
        return bool(a) and bool(b) and Path(str(a)).resolve() == Path(str(b)).resolve()
    except OSError:
        return False


def _moved_here(head: dict, volume: Volume) -> bool:
    """Whether a journal's scan is gone from where the edits were made and had ``volume``'s grid (moved or renamed)."""
    source = head.get("source")
    grid = json.loads(json.dumps(volume.geometry.to_dict()))  # as the journal's JSON holds it (lists, not tuples)
    return bool(source) and not Path(str(source)).exists() and head.get("geometry") == grid
