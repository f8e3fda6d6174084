"""The Numbers panel: a read-only table mirroring a :class:`engine.quantification.Quantification`.

One row per finding of :data:`engine.labels.FINDINGS` (from the label table), then the
total (lung involvement); columns mL (voxels when the scan has no spacing), % of lungs, % of
the left and right lung.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from engine.labels import DEFAULT_TABLE, FINDING_KEYS, FINDINGS
from engine.quantification import Quantification
from engine.quantification.numbers import shown

#: (quantification key, row title): the findings of the label table, then the total
_ROWS = tuple((FINDING_KEYS[v], DEFAULT_TABLE[v].short_name) for v in FINDINGS) + (("total", "Total"),)


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

    def show_numbers(self, q: Optional[Quantification], status: str = "", withheld: Optional[str] = None) -> None:
        """Show ``q``; ``withheld`` says why the severity score is not given (as the report withholds it)."""
        self.status.setText(status)
        # without spacing (PNG/JPG stacks) the first column holds voxel counts, and its header says so
        self.table.horizontalHeaderItem(0).setText("voxels" if q is not None and not q.spacing_known else "mL")
        for r, (key, _) in enumerate(_ROWS):
            if q is None:
                values = ["", "", "", ""]
            else:
                f = q.findings[key]
                values = [shown(f.ml, f.voxels) if q.spacing_known else f"{f.voxels}",
                          shown(f.percent_of_lungs, f.voxels), shown(f.percent_left, f.voxels_left),
                          shown(f.percent_right, f.voxels_right)]
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
        if withheld:
            self.severity.setText(f"Severity: not given ({withheld})")
            return
        if not q.severity:  # a lung zone holds no lung: a single slice, a thin stack, one lung not found
            self.severity.setText("Severity: not given (it rates six lung zones; this scan does not show them all)")
            return
        pan = q.severity[0]
        self.severity.setText(f"Severity (Pan, 6 zones): {pan.total} / {pan.maximum}")

