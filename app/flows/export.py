"""The label export flow: File > Export labels (and, optionally, the edited-by-hand mask), Ctrl+S.

Ctrl+S (File > Save segmentation) asks the format and place the first time for a scan,
then saves there silently. Every dialog starts in the folder of the last export (the
preferences), else the user's documents folder, never the scan's folder (often a
read-only share). Formats that can carry provenance (``.seg.nrrd``, DICOM SEG) always
embed which voxels a person edited, so a reopen tells hand edits from AI voxels.

The labels written are the label layer's (the editor's array, snapshotted on the GUI
thread); the writer runs on a worker through :func:`engine.editing.export.export_labels`,
and the editor is marked saved when no edit came meanwhile. Formats and suffixes come
from the one format table, :data:`engine.io.label_formats.LABEL_FORMATS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog

from ..context import AppContext


def edited_mask_name(path: str | Path) -> Path:
    """``labels.nii.gz`` -> ``labels_edited.nii.gz`` (same format; folders get ``_edited``)."""
    from engine.io.label_formats import split_suffix  # engine.io loads on first use, not at start-up

    p = Path(path)
    stem, suffix = split_suffix(p.name)
    return p.with_name(stem + "_edited" + suffix)


def default_export_name(source: Optional[str], folder: Optional[str | Path] = None) -> str:
    """``scan.nii.gz`` -> ``scan_labels.nii.gz`` (NIfTI, the default format), in ``folder`` when given."""
    from engine.io.label_formats import default_suffix, get_format

    name = "labels" + default_suffix(get_format("nifti"))
    if source:
        name = Path(source).name.split(".")[0] + "_" + name
    if folder is not None:
        return str(Path(folder) / name)
    return str(Path(source).with_name(name)) if source else name


class ExportFlow(QObject):
    """File > Export labels.

    Signals
    -------
    exported(str)
        labels were written to this path.
    """

    exported = Signal(str)

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        a = ctx.actions
        self.save_action = a.action("&Save segmentation", lambda: self.save(), QKeySequence.StandardKey.Save, "file",
                                    tip="Save the labels (the first time: choose format and place) (Ctrl+S)")
        self.export_action = a.action("&Export labels…", lambda: self.ask_export(), QKeySequence("Ctrl+E"), "file")
        #: where Ctrl+S saves, per scan source (asked the first time)
        self.save_targets: dict[str, str] = {}
        self.export_mask_action = a.action("Export also the edited-by-hand mask", lambda: None, None, "file",
                                           checkable=True,
                                           tip="Write <name>_edited beside exported labels: 1 where a person "
                                               "changed the AI result")
        ctx.labels.editor_replaced.connect(self._update)
        self._update()

    def _update(self) -> None:
        self.export_action.setEnabled(self.ctx.labels.editor is not None)
        self.save_action.setEnabled(self.ctx.labels.editor is not None)

    def forget_target(self, *_: object) -> None:
        """Other labels were opened over this scan: Ctrl+S asks again (it wrote the labels opened
        over the file saved before, without a word)."""
        self.save_targets.pop(self._scan_key(), None)

    def _scan_key(self) -> str:
        vol = self.ctx.session.volume
        return str(vol.source or id(vol)) if vol is not None else ""

    def save(self) -> None:
        """Ctrl+S: save where this scan's labels were saved last; ask the first time."""
        if self.ctx.session.volume is None or self.ctx.labels.editor is None:
            self.ctx.notices.status("Open a scan first: there are no labels to save.")
            return
        target = self.save_targets.get(self._scan_key())
        if target is None:
            self.ask_export(title="Save segmentation")
        else:
            self.export_to(target)

    def ask_export(self, then: Optional[Callable[[], None]] = None, title: str = "Export labels") -> None:
        """Choose a target, then :meth:`export_to`; ``then()`` runs after a successful write.

        The dialog starts in the last export folder (else the documents folder), never the scan's.
        """
        vol = self.ctx.session.volume
        if vol is None or self.ctx.labels.editor is None:
            self.ctx.notices.error("Open a scan first: there are no labels to export.")
            return
        from engine.io.label_formats import file_filter

        start = default_export_name(vol.source, self.ctx.preferences.export_dir)
        path, _ = QFileDialog.getSaveFileName(self.ctx.actions.owner, title, start, file_filter())
        if path:
            mask = edited_mask_name(path) if self.export_mask_action.isChecked() else None
            self.export_to(path, edited_mask_path=mask, then=then)

    def export_to(self, path: str | Path, edited_mask_path: Optional[str | Path] = None,
                  then: Optional[Callable[[], None]] = None) -> None:
        """Write the labels (and optionally the edited-by-a-person mask) on a worker thread.

        ``.seg.nrrd`` and DICOM SEG embed the edited-by-a-person mask; the target becomes the
        scan's Ctrl+S target and its folder the next dialog's start.
        """
        from engine.editing.export import export_labels
        from engine.editing.ops import edited_voxels
        from engine.io.labels_io import embeds_edited

        vol, ed = self.ctx.session.volume, self.ctx.labels.editor
        if vol is None or ed is None:
            return
        if ed.stroke_active:  # a held stroke may still be cancelled (Esc): the file would hold what the screen loses
            self.ctx.notices.status("Finish the stroke, then save: nothing was written.")
            return
        labels = ed.labels.copy()  # edits may go on while the worker writes
        reference = ed.reference_copy()  # the edited-by-a-person mask is compared on the worker
        # labels whose provenance is unknown (opened from NIfTI, not edited, no AI accepted over them): no edited
        # mask is embedded, so a reopen says "unknown", not "edited by nobody"
        unknown = self.ctx.case.edited_by_person() is None
        embed = embeds_edited(path) and not unknown
        version = ed.version
        key = self._scan_key()

        def done(written: list[Path]) -> None:
            if ed is self.ctx.labels.editor:  # other labels opened meanwhile: Ctrl+S asks for theirs (forget_target)
                self.save_targets[key] = str(written[0])
            self.ctx.preferences.set_export_dir(str(Path(written[0]).resolve().parent))
            kind = " (PNG slices, a folder: a name without a suffix)" if Path(written[0]).is_dir() else ""
            if ed.version == version:
                ed.mark_saved(str(written[0]))
                self.ctx.notices.status(f"Exported labels to {written[0]}{kind}")
            else:
                self.ctx.notices.status(f"Exported labels to {written[0]}; edits made meanwhile are not exported yet.")
            self.exported.emit(str(written[0]))
            if then is not None and ed.version == version and not ed.stroke_active:
                then()
            elif then is not None:  # the quit (or open) that asked for this export would lose those edits
                self.ctx.notices.warn(f"Edits were made while {Path(written[0]).name} was written: they are not in "
                                      "it, so LungLens did not go on (quit or open). Save again, or go on and "
                                      "choose Discard.")

        def write(progress: Any = None, cancel: Any = None) -> list[Path]:
            person = edited_voxels(labels, reference)
            return export_labels(labels, vol, str(path), edited_mask=person if edited_mask_path is not None else None,
                                 edited_mask_path=str(edited_mask_path) if edited_mask_path else None,
                                 edited=person if embed else None, progress=progress, cancel=cancel)

        self.ctx.run(write, title=f"Exporting {Path(path).name}", on_result=done)
