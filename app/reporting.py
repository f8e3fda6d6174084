"""Numbers and reports in the main window: a live "Numbers" panel and File > Export report.

``install(window)`` (called by :class:`app.main_window.MainWindow` through ``EXTENSIONS``)
creates one :class:`ReportingController`, kept as ``window.reporting``.

Data flow: when a scan opens, the lungs are found on a worker thread
(:func:`engine.quantification.lung_masks`), then an
:class:`engine.quantification.IncrementalQuantifier` follows the label layer: each
``labels.changed(bbox)`` recounts only that box (well under 100 ms for a brush stroke),
``changed(None)`` (a new label map) diffs the whole array. The panel mirrors the
quantifier's result. View > Show lung outline draws the lung masks' outlines (right and
left lung in two shades) over every view. Export runs :func:`engine.quantification.report.write_report` on a
worker thread with a snapshot of the labels.

Models and versions in the report come from ``window.report_models`` (a dict, e.g.
``{"segmentation": {"name": ..., "version": ...}}``). The AI flow calls
``window.reporting.use_prediction(prediction)`` when the user accepts a result: that
records ``prediction.models`` and, when the prediction has a lung-model mask, refines the
lungs with it (:func:`engine.quantification.lung_masks` ``model_mask``). "Edited by a
person" comes from the editing flow's editor (``window.editing.editor.person_changes()``)
when present.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QFileDialog, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from engine.display.overlay import outline
from engine.display.slicing import extract
from engine.errors import DataError
from engine.labels import LUNG
from engine.quantification import IncrementalQuantifier, LungMasks, Quantification, lung_masks
from engine.types import Volume

if TYPE_CHECKING:  # pragma: no cover
    from .main_window import MainWindow

log = logging.getLogger(__name__)

REPORT_FILTER = "PDF report (*.pdf);;JSON (*.json);;CSV table (*.csv)"
_ROWS = (("ggo", "GGO"), ("consolidation", "Consol."), ("effusion", "Effusion"), ("total", "Total"))


def install(window: "MainWindow") -> "ReportingController":
    """Add the Numbers panel and the report export to ``window``."""
    controller = ReportingController(window)
    window.reporting = controller  # type: ignore[attr-defined]
    return controller


def count_labels(snapshot: np.ndarray, volume: Volume, lungs: Optional[LungMasks], progress: Any = None,
                 cancel: Any = None) -> IncrementalQuantifier:
    """Worker: the initial tally of a label snapshot (see :meth:`IncrementalQuantifier.counted`)."""
    return IncrementalQuantifier.counted(snapshot, volume.geometry, lungs, volume.array if volume.is_hu else None,
                                        progress=progress, cancel=cancel)


def find_lungs(volume: Volume, progress: Any = None, cancel: Any = None) -> Optional[LungMasks]:
    """Lung masks of ``volume``, or ``None`` when no lungs are found (volumes only then)."""
    try:
        return lung_masks(volume, progress=progress, cancel=cancel)
    except DataError as exc:
        log.info("no lungs: %s", exc)
        return None


class NumbersPanel(QWidget):
    """Read-only table of the current numbers; it only mirrors a :class:`Quantification`."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.status = QLabel("Open a scan to see its numbers.")
        self.status.setWordWrap(True)
        self.table = QTableWidget(len(_ROWS), 4)
        self.table.setHorizontalHeaderLabels(["mL", "% lungs", "% left", "% right"])
        self.table.setVerticalHeaderLabels([name for _, name in _ROWS])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setToolTip("Total = GGO + consolidation (lung involvement). Effusion % is relative to the "
                              "lung volume: effusion lies outside the lung.")
        rows_h = self.table.horizontalHeader().height() + sum(self.table.rowHeight(r) for r in range(len(_ROWS)))
        self.table.setFixedHeight(rows_h + 4)
        self.lungs = QLabel("")
        self.severity = QLabel("")
        self.severity.setWordWrap(True)
        lay = QVBoxLayout(self)
        for w in (self.status, self.table, self.lungs, self.severity):
            lay.addWidget(w)
        lay.addStretch(1)

    def cell(self, key: str, column: int) -> str:
        row = [k for k, _ in _ROWS].index(key)
        item = self.table.item(row, column)
        return item.text() if item is not None else ""

    def show_numbers(self, q: Optional[Quantification], status: str = "") -> None:
        self.status.setText(status)
        for r, (key, _) in enumerate(_ROWS):
            if q is None:
                values = ["", "", "", ""]
            else:
                f = q.findings[key]
                values = [_num(f.ml, 1) if q.spacing_known else f"{f.voxels} vx", _num(f.percent_of_lungs, 1),
                          _num(f.percent_left, 1), _num(f.percent_right, 1)]
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        if q is None or not q.has_lungs:
            self.lungs.setText("")
            self.severity.setText("")
            return
        unit = (lambda k: f"{q.lungs[k]['ml']:.0f} mL") if q.spacing_known else (lambda k: f"{q.lungs[k]['voxels']} vx")
        self.lungs.setText(f"Lungs: left {unit('left')}, right {unit('right')}")
        pan = q.severity[0]
        self.severity.setText(f"Severity (Pan, 6 zones): {pan.total} / {pan.maximum}")


class LungOverlay(QObject):
    """Outline of the lung masks over each slice view (read-only; the masks are not edited here)."""

    def __init__(self, window: "MainWindow", controller: "ReportingController") -> None:
        super().__init__(controller)
        self.window = window
        self.controller = controller
        self.visible = False
        self.lut = np.zeros((256, 4), dtype=np.uint8)
        r, g, b = LUNG.color
        self.lut[1] = (r, g, b, 230)  # right lung
        self.lut[2] = (min(r + 90, 255), min(g + 60, 255), b, 230)  # left lung, lighter
        self.items: list[tuple[Any, pg.ImageItem]] = []
        for view in window.views:
            item = pg.ImageItem(axisOrder="row-major")
            item.setZValue(12)
            item.setVisible(False)
            view.add_item(item)
            self.items.append((view, item))
        window.session.cursor_changed.connect(lambda _zyx: self.refresh())
        window.session.volume_changed.connect(lambda _vol: self.refresh())

    def set_visible(self, visible: bool) -> None:
        self.visible = bool(visible)
        self.refresh()

    def refresh(self) -> None:
        lungs = self.controller.lungs
        vol = self.window.session.volume
        for view, item in self.items:
            if (not self.visible or lungs is None or vol is None or view.index < 0
                    or lungs.shape != tuple(vol.shape)):
                item.setVisible(False)
                continue
            code = extract(lungs.right, view.plane, view.index).astype(np.uint8)
            code[extract(lungs.left, view.plane, view.index)] = 2
            if not code.any():
                item.setVisible(False)
                continue
            item.setTransform(view.label_item.transform())
            item.setImage(outline(code), autoLevels=False, levels=None, lut=self.lut)
            item.setVisible(True)


def _num(v: Optional[float], digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


class ReportingController(QObject):
    """Keeps the quantifier in step with the label layer and exports reports.

    Signals
    -------
    numbers_changed(object)
        the current :class:`Quantification` (``None`` when no scan is open).
    exported(str)
        a report was written to this path.
    """

    numbers_changed = Signal(object)
    exported = Signal(str)

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.window = window
        self.lungs: Optional[LungMasks] = None
        self.quantifier: Optional[IncrementalQuantifier] = None
        self._volume: Optional[Volume] = None
        self._hand_edits = False
        self._generation = 0  # bumps whenever a running count becomes stale
        self._pending: Optional[list[Any]] = None  # boxes edited while a count runs
        self.panel = NumbersPanel()
        self.dock = window.add_dock(self.panel, "Numbers")
        window.menus["view"].addAction(self.dock.toggleViewAction())
        self.export_action = QAction("Export &report…", window)
        self.export_action.triggered.connect(lambda _=False: self.ask_export(anonymize=False))
        self.export_anon_action = QAction("Export report without &identifiers…", window)
        self.export_anon_action.triggered.connect(lambda _=False: self.ask_export(anonymize=True))
        file_menu = window.menus["file"]
        quit_action = next((a for a in file_menu.actions() if a.menuRole() == QAction.MenuRole.QuitRole
                            or a.text().replace("&", "").lower().startswith("quit")), None)
        for action in (self.export_action, self.export_anon_action):
            if quit_action is not None:
                file_menu.insertAction(quit_action, action)
            else:
                file_menu.addAction(action)
        self.overlay = LungOverlay(window, self)
        self.lung_action = QAction("Show &lung outline", window)
        self.lung_action.setCheckable(True)
        self.lung_action.toggled.connect(self.overlay.set_visible)
        window.menus["view"].addAction(self.lung_action)
        self._update_actions()
        window.session.volume_changed.connect(self._on_volume)
        window.labels.changed.connect(self._on_labels)

    # -- state ----------------------------------------------------------------
    @property
    def result(self) -> Optional[Quantification]:
        return self.quantifier.result() if self.quantifier is not None else None

    def _update_actions(self) -> None:
        has = self._volume is not None
        self.export_action.setEnabled(has)
        self.export_anon_action.setEnabled(has)

    def _on_volume(self, volume: Optional[Volume]) -> None:
        self._volume = volume
        self.lungs = None
        self.quantifier = None
        self._generation += 1
        self._pending = None
        self._hand_edits = False
        self._update_actions()
        if volume is None:
            self.panel.show_numbers(None, "Open a scan to see its numbers.")
            self.numbers_changed.emit(None)
            return
        self.panel.show_numbers(None, "Finding the lungs…")
        self.window.run_worker(find_lungs, volume, title="Finding the lungs",
                               on_result=lambda lungs, v=volume: self._lungs_found(v, lungs))

    def _lungs_found(self, volume: Volume, lungs: Optional[LungMasks]) -> None:
        if volume is not self._volume:  # another scan was opened meanwhile
            return
        self.lungs = lungs
        self._rebuild()
        self.overlay.refresh()

    def _rebuild(self) -> None:
        """Count a snapshot of the labels on a worker; edits meanwhile are replayed after."""
        volume = self._volume
        layer = self.window.labels
        self._generation += 1
        if volume is None or layer.shape != tuple(volume.shape):
            self._pending = None
            return
        gen = self._generation
        self._pending = []
        live = layer.array
        self.window.run_worker(count_labels, live.copy(), volume, self.lungs, title="Counting the findings",
                               on_result=lambda q: self._counted(gen, live, q))

    def _counted(self, gen: int, live: np.ndarray, q: IncrementalQuantifier) -> None:
        layer = self.window.labels
        if gen != self._generation or layer.array is not live:
            return  # stale: a newer count is running
        q.follow(live)
        for bbox in self._pending or []:
            q.update_region(*bbox)
        self._pending = None
        self.quantifier = q
        self._publish()

    def _on_labels(self, bbox: Any) -> None:
        layer = self.window.labels
        if bbox is None:
            self._hand_edits = False
        else:
            self._hand_edits = True
        if self._pending is not None:  # a count is running
            if bbox is None:
                self._rebuild()
            else:
                self._pending.append(tuple(bbox))
            return
        q = self.quantifier
        if q is None:
            return
        if bbox is None:
            if q.labels is not layer.array or q.labels.shape != layer.shape:
                self.quantifier = None
                self._rebuild()
                return
            q.update_region(0, layer.shape[0], 0, layer.shape[1], 0, layer.shape[2])
        else:
            q.update_region(*bbox)
        self._publish()

    def _publish(self) -> None:
        q = self.result
        if q is None:
            return
        status = "" if self.lungs is not None else "No lungs found: volumes only."
        if not q.spacing_known:
            status = (status + " " if status else "") + "No spacing: volumes in voxels."
        self.panel.show_numbers(q, status)
        self.numbers_changed.emit(q)

    # -- AI results -----------------------------------------------------------
    def use_prediction(self, prediction: Any) -> None:
        """Record an accepted AI result: its models, and its lung-model mask when it has one."""
        models = getattr(prediction, "models", None)
        if models:
            self.window.report_models = dict(models)  # type: ignore[attr-defined]
        mask = getattr(prediction, "lung_mask", None)
        if mask is not None and np.any(mask):
            self.use_model_lungs(mask)

    def use_model_lungs(self, mask: np.ndarray) -> None:
        """Lungs from a model's mask united with the HU rules, computed on a worker thread."""
        volume = self._volume
        if volume is None:
            return
        self.panel.show_numbers(self.result, "Refining the lungs with the lung model…")
        self.window.run_worker(lung_masks, volume, title="Refining the lungs", model_mask=np.asarray(mask, bool),
                               on_result=lambda lungs, v=volume: self._lungs_found(v, lungs))

    # -- export ---------------------------------------------------------------
    def edited_by_person(self) -> bool:
        editing = getattr(self.window, "editing", None)
        editor = getattr(editing, "editor", None) if editing is not None else None
        if editor is not None and hasattr(editor, "person_changes"):
            try:
                return bool(editor.person_changes())
            except Exception:  # pragma: no cover - defensive: editing flow mid-change
                log.exception("person_changes failed")
        return self._hand_edits

    def ask_export(self, anonymize: bool = False) -> None:
        if self._volume is None:
            return
        src = self._volume.source
        start = str(Path(src).with_suffix("")) + "_report.pdf" if src else "lunglens_report.pdf"
        path, _ = QFileDialog.getSaveFileName(self.window, "Export report", start, REPORT_FILTER)
        if path:
            if Path(path).suffix.lower() not in (".pdf", ".json", ".csv"):
                path += ".pdf"
            self.export(path, anonymize=anonymize)

    def export(self, path: str, anonymize: bool = False) -> None:
        """Write the report to ``path`` (.pdf/.json/.csv) on a worker thread."""
        from engine.quantification.report import write_report

        volume = self._volume
        if volume is None:
            self.window.show_error("Open a scan before exporting a report.")
            return
        labels = np.array(self.window.labels.array, copy=True)
        models = dict(getattr(self.window, "report_models", None) or {})
        quant = self.result
        self.window.run_worker(write_report, path, volume, labels, self.lungs, title="Writing the report",
                               anonymize=anonymize, models=models, edited_by_person=self.edited_by_person(),
                               labels_source=self.window.labels.name or None, quant=quant,
                               on_result=self._written)

    def _written(self, path: Any) -> None:
        self.window.status_message(f"Report written: {path}")
        self.exported.emit(str(path))
