"""A dialog to choose one DICOM series when a folder holds several."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, \
    QVBoxLayout, QWidget

COLUMNS = ("Patient", "Date", "Study", "Series", "Description", "Images", "Size")


def dicom_date(value: str) -> str:
    """A DICOM date (``YYYYMMDD``) as ``YYYY-MM-DD``; other text as it is."""
    value = (value or "").strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def series_row(series: Any) -> tuple[str, ...]:
    """The cells of one :class:`engine.io.SeriesInfo` in :data:`COLUMNS` order."""
    def get(attr: str) -> str:
        value = getattr(series, attr, None)
        return "" if value is None else str(value)

    rows, cols = get("rows"), get("columns")
    number = get("number")
    modality = get("modality")
    study_date, series_date = dicom_date(get("study_date")), dicom_date(get("series_date"))
    date = study_date or series_date
    if series_date and study_date and series_date != study_date:
        date = f"{study_date} (series {series_date})"
    size = f"{cols} x {rows}" if rows and cols else ""
    orientation = get("orientation")
    if orientation and orientation != "axial":  # parts of one series split by orientation differ here
        size = f"{size}, {orientation}" if size else orientation
    return (get("patient_id"), date, get("study_description"),
            f"{modality} #{number}".strip(" #") if number else modality,
            get("description"), get("n_slices") or get("n_files"), size)


def describe_series(series: Any) -> str:
    """One line describing a series: description, modality and number, images, size, date."""
    patient, date, study, number, desc, images, size = series_row(series)
    parts = [p for p in (desc, number, f"{images} images" if images else "", size, date, patient) if p]
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
            item.setToolTip(COLUMNS.index("Description"), describe_series(s))
            self.table.addTopLevelItem(item)
        self.table.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.header().setSectionResizeMode(COLUMNS.index("Description"), QHeaderView.ResizeMode.Stretch)
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
