"""The label export flow: File > Export labels (and, optionally, the edited-by-hand mask).

The labels written are the label layer's (the editor's array, snapshotted on the GUI
thread); the writer runs on a worker through :func:`engine.editing.export.export_labels`,
and the editor is marked saved when no edit came meanwhile. Formats and suffixes come
from the one format table, :data:`engine.io.label_formats.LABEL_FORMATS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

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


def default_export_name(source: Optional[str]) -> str:
    """``scan.nii.gz`` -> ``scan_labels.nii.gz`` beside the scan (NIfTI, the default format)."""
    from engine.io.label_formats import default_suffix, get_format

    name = "labels" + default_suffix(get_format("nifti"))
    if not source:
        return name
    return str(Path(source).with_name(Path(source).name.split(".")[0] + "_" + name))


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
        self.export_action = a.action("&Export labels…", lambda: self.ask_export(), QKeySequence("Ctrl+E"), "file")
        self.export_mask_action = a.action("Export also the edited-by-hand mask", lambda: None, None, "file",
                                           checkable=True,
                                           tip="Write <name>_edited beside exported labels: 1 where a person "
                                               "changed the AI result")
        ctx.labels.editor_replaced.connect(self._update)
        self._update()

    def _update(self) -> None:
        self.export_action.setEnabled(self.ctx.labels.editor is not None)

    def ask_export(self, then: Optional[Callable[[], None]] = None) -> None:
        """Choose a target, then :meth:`export_to`; ``then()`` runs after a successful write."""
        vol = self.ctx.session.volume
        if vol is None or self.ctx.labels.editor is None:
            self.ctx.notices.error("Open a scan first: there are no labels to export.")
            return
        from engine.io.label_formats import file_filter

        path, _ = QFileDialog.getSaveFileName(self.ctx.actions.owner, "Export labels",
                                              default_export_name(vol.source), file_filter())
        if path:
            mask = edited_mask_name(path) if self.export_mask_action.isChecked() else None
            self.export_to(path, edited_mask_path=mask, then=then)

    def export_to(self, path: str | Path, edited_mask_path: Optional[str | Path] = None,
                  then: Optional[Callable[[], None]] = None) -> None:
        """Write the labels (and optionally the edited-by-a-person mask) on a worker thread."""
        from engine.editing.export import export_labels

        vol, ed = self.ctx.session.volume, self.ctx.labels.editor
        if vol is None or ed is None:
            return
        labels = ed.labels.copy()  # edits may go on while the worker writes
        mask = ed.person_mask() if edited_mask_path is not None else None
        version = ed.version

        def done(written: list[Path]) -> None:
            if ed.version == version:
                ed.mark_saved(str(written[0]))
                self.ctx.notices.status(f"Exported labels to {written[0]}")
            else:
                self.ctx.notices.status(f"Exported labels to {written[0]}; edits made meanwhile are not exported yet.")
            self.exported.emit(str(written[0]))
            if then is not None:
                then()

        self.ctx.run(export_labels, labels, vol, str(path), edited_mask=mask,
                     edited_mask_path=str(edited_mask_path) if edited_mask_path else None,
                     title=f"Exporting {Path(path).name}", on_result=done)
