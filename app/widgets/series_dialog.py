"""A dialog to choose one DICOM series when a folder holds several."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, \
    QVBoxLayout, QWidget

COLUMNS = ("Patient", "Study", "Series", "Description", "Images", "Size")


def series_row(series: Any) -> tuple[str, ...]:
    """The cells of one :class:`engine.io.SeriesInfo` in :data:`COLUMNS` order."""
    def get(attr: str) -> str:
        value = getattr(series, attr, None)
        return "" if value is None else str(value)

    rows, cols = get("rows"), get("columns")
    number = get("number")
    modality = get("modality")
    return (get("patient_id"), get("study_description"),
            f"{modality} #{number}".strip(" #") if number else modality,
            get("description"), get("n_slices") or get("n_files"),
            f"{cols} x {rows}" if rows and cols else "")


def describe_series(series: Any) -> str:
    """One line describing a series: description, modality and number, images, size."""
    patient, study, number, desc, images, size = series_row(series)
    parts = [p for p in (desc, number, f"{images} images" if images else "", size, patient) if p]
    return " · ".join(parts) if parts else str(series)


class SeriesDialog(QDialog):
    """Lists the series of a folder; :attr:`selected` is the chosen one after ``accept()``."""

    def __init__(self, folder: str, series: Sequence[Any], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self._series = list(series)
        self.table = QTreeWidget()
        self.table.setRootIsDecorated(False)
        self.table.setHeaderLabels(list(COLUMNS))
        for s in self._series:
            item = QTreeWidgetItem(list(series_row(s)))
            item.setToolTip(3, describe_series(s))
            self.table.addTopLevelItem(item)
        self.table.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.header().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setCurrentItem(self.table.topLevelItem(0))
        self.table.itemDoubleClicked.connect(lambda _item, _col: self.accept())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"{folder} holds {len(self._series)} series. Open which one?"))
        lay.addWidget(self.table)
        lay.addWidget(buttons)
        self.resize(820, 360)

    def row_texts(self) -> list[str]:
        """:func:`describe_series` of each row, in table order."""
        return [describe_series(s) for s in self._series]

    def select(self, row: int) -> None:
        self.table.setCurrentItem(self.table.topLevelItem(row))

    @property
    def selected(self) -> Optional[Any]:
        row = self.table.indexOfTopLevelItem(self.table.currentItem()) if self.table.currentItem() else -1
        return self._series[row] if 0 <= row < len(self._series) else None
