"""The numbers flow: the live Numbers panel, View > Show lung outline, File > Export report.

Everything here mirrors the case (:class:`app.state.case.CaseState`): its lungs (found
once at open, refined by an accepted AI reading), its one quantifier that follows the
label layer box by box, and the accepted models. The report is written on a worker by
:func:`engine.quantification.report.write_report` from the same labels (the label
layer's editor array, snapshotted), lungs and numbers the panel shows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from engine.quantification import Quantification

from ..context import AppContext
from ..views.lung_overlay import LungOverlay
from ..views.view_set import ViewSet
from ..widgets.numbers_panel import NumbersPanel

log = logging.getLogger(__name__)

#: report formats by suffix; the first is the default
REPORT_FORMATS = ((".pdf", "PDF report"), (".json", "JSON"), (".csv", "CSV table"))
REPORT_FILTER = ";;".join(f"{title} (*{suffix})" for suffix, title in REPORT_FORMATS)


class NumbersFlow(QObject):
    """The Numbers panel, the lung outline and the report export of one main window.

    Signals
    -------
    numbers_changed(object)
        the current :class:`Quantification` (``None`` when no scan is open); the case's.
    exported(str)
        a report was written to this path.
    """

    numbers_changed = Signal(object)
    exported = Signal(str)

    def __init__(self, ctx: AppContext, views: ViewSet) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.case = ctx.case
        self.panel = NumbersPanel()
        self.panel.show_numbers(None, "Open a scan to see its numbers.")
        self.dock = ctx.actions.dock(self.panel, "Numbers")
        a = ctx.actions
        a.menus["view"].addAction(self.dock.toggleViewAction())
        self.export_action = a.action("Export &report…", lambda: self.ask_export(anonymize=False), None, "file")
        self.export_anon_action = a.action("Export report without &identifiers…",
                                           lambda: self.ask_export(anonymize=True), None, "file")
        self.overlay = LungOverlay(views, ctx.session, ctx.case, self)
        self.lung_action = a.action("Show &lung outline", lambda: None, None, "view", checkable=True)
        self.lung_action.toggled.connect(self.overlay.set_visible)
        ctx.session.volume_changed.connect(self._on_volume)
        ctx.case.lungs_changed.connect(self._on_lungs)
        ctx.case.numbers_changed.connect(self._publish)
        self._update_actions()

    # -- state ----------------------------------------------------------------
    @property
    def result(self) -> Optional[Quantification]:
        return self.case.result

    @property
    def lungs(self) -> Any:
        return self.case.lungs

    def _update_actions(self) -> None:
        has = self.ctx.session.volume is not None
        self.export_action.setEnabled(has)
        self.export_anon_action.setEnabled(has)

    def _on_volume(self, volume: Any) -> None:
        self._update_actions()
        self.panel.show_numbers(None, "Open a scan to see its numbers." if volume is None else "Finding the lungs…")

    def _on_lungs(self) -> None:
        if self.case.volume is not None and not self.case.lungs_pending and self.case.result is None:
            self.panel.show_numbers(None, "Counting the findings…")

    def _publish(self, q: Optional[Quantification]) -> None:
        if q is None:
            self.numbers_changed.emit(None)
            return
        status = "" if self.case.lungs is not None else "No lungs found: volumes only."
        if not q.spacing_known:
            status = (status + " " if status else "") + "No spacing: volumes in voxels."
        reason = self.case.not_assessed_reason
        self.panel.show_numbers(q, status, withheld=f"the AI did not assess this scan: {reason}" if reason else None)
        self.numbers_changed.emit(q)

    # -- export ---------------------------------------------------------------
    def ask_export(self, anonymize: bool = False) -> None:
        volume = self.ctx.session.volume
        if volume is None:
            return
        default = REPORT_FORMATS[0][0]
        stem = Path(volume.source).name.split(".")[0] if volume.source else "lunglens"
        start = str(Path(self.ctx.preferences.export_dir) / (stem + "_report" + default))  # never the scan's folder
        path, _ = QFileDialog.getSaveFileName(self.ctx.actions.owner, "Export report", start, REPORT_FILTER)
        if path:
            if Path(path).suffix.lower() not in tuple(s for s, _ in REPORT_FORMATS):
                path += default
            self.export(path, anonymize=anonymize)

    def export(self, path: str, anonymize: bool = False) -> None:
        """Write the report to ``path`` (.pdf/.json/.csv) on a worker thread."""
        from engine.quantification.report import write_report

        volume = self.ctx.session.volume
        if volume is None:
            self.ctx.notices.error("Open a scan before exporting a report.")
            return
        labels = np.array(self.ctx.labels.array, copy=True)
        args = self.case.report_args()  # without numbers while a full count runs: the report counts them itself
        lungs = args.pop("lungs")
        self.ctx.run(write_report, path, volume, labels, lungs, title="Writing the report", anonymize=anonymize,
                     on_result=self._written, **args)

    def _written(self, path: Any) -> None:
        self.ctx.preferences.set_export_dir(str(Path(path).resolve().parent))
        self.ctx.notices.status(f"Report written: {path}")
        self.exported.emit(str(path))
