"""A dialog to choose one DICOM series when a folder holds several."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QVBoxLayout, QWidget


def describe_series(series: Any) -> str:
    """One line describing a series entry returned by :func:`engine.io.list_series`."""
    parts = []
    for attr in ("description", "series_description", "modality"):
        value = getattr(series, attr, None)
        if value:
            parts.append(str(value))
    for attr in ("n_slices", "num_slices", "count", "n_files"):
        value = getattr(series, attr, None)
        if value:
            parts.append(f"{value} images")
            break
    uid = getattr(series, "uid", None) or getattr(series, "series_uid", None)
    if uid and not parts:
        parts.append(str(uid))
    return " · ".join(parts) if parts else str(series)


class SeriesDialog(QDialog):
    """Lists the series of a folder; :attr:`selected` is the chosen one after ``accept()``."""

    def __init__(self, folder: str, series: Sequence[Any], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self._series = list(series)
        self.list = QListWidget()
        for s in self._series:
            self.list.addItem(describe_series(s))
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"{folder} holds {len(self._series)} series. Open which one?"))
        lay.addWidget(self.list)
        lay.addWidget(buttons)
        self.resize(520, 320)

    @property
    def selected(self) -> Optional[Any]:
        row = self.list.currentRow()
        return self._series[row] if 0 <= row < len(self._series) else None
