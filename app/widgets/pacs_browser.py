"""File > Open from PACS: the study browser dialog (a view; :mod:`app.flows.pacs` does the work).

The dialog reads the search fields and shows what the flow hands it: studies (date,
patient, description, modalities, series and image counts), the series of the chosen
study (number, modality, description, images), the progress of a retrieval with its
Cancel button, and errors as the engine words them (which server, what failed, what to
do). It never talks to the network itself; it emits what the user asked for.

Signals
-------
search_requested(object)
    the user pressed Search: the :class:`engine.pacs.StudyQuery` of the fields.
more_requested()
    the user asked for the next page of results.
study_selected(object)
    a study row became current: its :class:`engine.pacs.StudyRecord`.
retrieve_requested(object, object)
    Retrieve and open: the study and the chosen :class:`engine.pacs.SeriesRecord`.
cancel_requested()
    Cancel was pressed while a task runs.
settings_requested()
    the user wants to change the server.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Optional, Sequence

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDateEdit, QDialog, QGridLayout, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QProgressBar, QPushButton, QSplitter, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

STUDY_COLUMNS = ("Date", "Patient", "Patient ID", "Accession", "Description", "Modalities", "Series", "Images")
SERIES_COLUMNS = ("#", "Modality", "Description", "Images")
#: modalities offered; "" is any
MODALITIES = ("CT", "", "MR", "CR", "DX", "PT", "SEG", "DOC")


def study_row(study: Any) -> tuple[str, ...]:
    """The cells of one :class:`engine.pacs.StudyRecord` in :data:`STUDY_COLUMNS` order."""
    def count(value: Optional[int]) -> str:
        return "" if value is None else str(value)

    return (study.date, study.patient_name.replace("^", " ").strip(), study.patient_id, study.accession,
            study.description,
            ", ".join(study.modalities), count(study.n_series), count(study.n_instances))


def series_row(series: Any) -> tuple[str, ...]:
    """The cells of one :class:`engine.pacs.SeriesRecord` in :data:`SERIES_COLUMNS` order."""
    return ("" if series.number is None else str(series.number), series.modality, series.description,
            "" if series.n_instances is None else str(series.n_instances))


def _date_edit(enabled_box: QCheckBox) -> QDateEdit:
    edit = QDateEdit()
    edit.setCalendarPopup(True)
    edit.setDisplayFormat("yyyy-MM-dd")
    edit.setDate(QDate.currentDate())
    edit.setEnabled(False)
    enabled_box.toggled.connect(edit.setEnabled)
    return edit


class PacsBrowser(QDialog):
    """The study browser. See the module docstring."""

    search_requested = Signal(object)
    more_requested = Signal()
    study_selected = Signal(object)
    retrieve_requested = Signal(object, object)
    cancel_requested = Signal()
    settings_requested = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self._studies: list[Any] = []
        self._series: list[Any] = []
        # -- server -------------------------------------------------------------
        self.server_label = QLabel()
        self.server_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.settings_button = QPushButton("Server settings…")
        self.settings_button.clicked.connect(self.settings_requested)
        server_row = QHBoxLayout()
        server_row.addWidget(QLabel("Server:"))
        server_row.addWidget(self.server_label, 1)
        server_row.addWidget(self.settings_button)
        # -- search fields --------------------------------------------------------
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("e.g. DOE or DOE^J* (start of the name)")
        self.patient_id = QLineEdit()
        self.patient_id.setPlaceholderText("exact, or with * and ? wildcards")
        self.accession = QLineEdit()
        self.accession.setPlaceholderText("exact (the order's number on the worklist)")
        self.from_box, self.to_box = QCheckBox("From"), QCheckBox("To")
        self.date_from, self.date_to = _date_edit(self.from_box), _date_edit(self.to_box)
        self.modality = QComboBox()
        self.modality.setEditable(True)
        for m in MODALITIES:
            self.modality.addItem(m or "any", m)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.request_search)
        for edit in (self.patient_name, self.patient_id, self.accession):
            edit.returnPressed.connect(self.request_search)
        form = QGridLayout()
        form.addWidget(QLabel("Patient name"), 0, 0)
        form.addWidget(self.patient_name, 0, 1)
        form.addWidget(QLabel("Patient ID"), 0, 2)
        form.addWidget(self.patient_id, 0, 3)
        dates = QHBoxLayout()
        for w in (self.from_box, self.date_from, self.to_box, self.date_to):
            dates.addWidget(w)
        dates.addStretch(1)
        form.addWidget(QLabel("Study date"), 1, 0)
        form.addLayout(dates, 1, 1)
        form.addWidget(QLabel("Accession"), 1, 2)
        form.addWidget(self.accession, 1, 3)
        form.addWidget(QLabel("Modality"), 2, 2)
        self.modality.setMinimumContentsLength(6)
        mod_row = QHBoxLayout()
        mod_row.addWidget(self.modality)
        mod_row.addStretch(1)
        mod_row.addWidget(self.search_button)
        form.addLayout(mod_row, 2, 3)
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        # -- results --------------------------------------------------------------
        self.studies = QTreeWidget()
        self.studies.setRootIsDecorated(False)
        self.studies.setHeaderLabels(list(STUDY_COLUMNS))
        self.studies.setAlternatingRowColors(True)
        self.studies.currentItemChanged.connect(lambda _cur, _prev: self._study_changed())
        header = self.studies.header()
        header.setStretchLastSection(False)  # the Description column takes the room, the counts stay beside it
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(STUDY_COLUMNS.index("Description"), QHeaderView.ResizeMode.Stretch)
        self.more_button = QPushButton("More results")
        self.more_button.setToolTip("The server sent a full page: ask for the next one")
        self.more_button.clicked.connect(self.more_requested)
        self.more_button.hide()
        self.count_label = QLabel()
        self.series = QTreeWidget()
        self.series.setRootIsDecorated(False)
        self.series.setHeaderLabels(list(SERIES_COLUMNS))
        self.series.currentItemChanged.connect(lambda _cur, _prev: self._update_buttons())
        self.series.itemDoubleClicked.connect(lambda _item, _col: self.request_retrieve())
        sh = self.series.header()
        sh.setStretchLastSection(False)
        sh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        sh.setSectionResizeMode(SERIES_COLUMNS.index("Description"), QHeaderView.ResizeMode.Stretch)
        top = QWidget()
        top_lay = QVBoxLayout(top)
        top_lay.setContentsMargins(0, 0, 0, 0)
        top_lay.addWidget(self.studies)
        more_row = QHBoxLayout()
        more_row.addWidget(self.count_label, 1)
        more_row.addWidget(self.more_button)
        top_lay.addLayout(more_row)
        bottom = QWidget()
        bottom_lay = QVBoxLayout(bottom)
        bottom_lay.setContentsMargins(0, 0, 0, 0)
        bottom_lay.addWidget(QLabel("Series of the selected study"))
        bottom_lay.addWidget(self.series)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        # -- status, progress, buttons -------------------------------------------
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the search or retrieval; a half-retrieved series is not kept")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.setEnabled(False)
        self.retrieve_button = QPushButton("Retrieve and open")
        self.retrieve_button.setToolTip("Copy the series into the local cache (reused next time) and open it")
        self.retrieve_button.clicked.connect(self.request_retrieve)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(0)
        buttons.addWidget(self.retrieve_button)
        buttons.addWidget(self.close_button)
        lay = QVBoxLayout(self)
        lay.addLayout(server_row)
        lay.addLayout(form)
        lay.addWidget(split, 1)
        lay.addWidget(self.message)
        lay.addLayout(buttons)
        self._busy = False
        self._update_buttons()
        self.resize(960, 620)

    # -- what the user asked ------------------------------------------------------
    def query(self, limit: int = 100) -> Any:
        """The :class:`engine.pacs.StudyQuery` of the fields (first page of ``limit`` studies)."""
        from engine.pacs import StudyQuery

        def day(box: QCheckBox, edit: QDateEdit) -> Optional[_dt.date]:
            if not box.isChecked():
                return None
            d = edit.date()
            return _dt.date(d.year(), d.month(), d.day())

        text = self.modality.currentText().strip()
        modality = "" if text.lower() in ("", "any") else text.upper()
        return StudyQuery(patient_name=self.patient_name.text().strip(), patient_id=self.patient_id.text().strip(),
                          date_from=day(self.from_box, self.date_from), date_to=day(self.to_box, self.date_to),
                          modality=modality, accession=self.accession.text().strip(), limit=limit)

    def request_search(self) -> None:
        if not self._busy:
            self.search_requested.emit(self.query())

    def request_retrieve(self) -> None:
        study, series = self.selected_study, self.selected_series
        if study is not None and series is not None and not self._busy:
            self.retrieve_requested.emit(study, series)

    @property
    def selected_study(self) -> Optional[Any]:
        item = self.studies.currentItem()
        row = self.studies.indexOfTopLevelItem(item) if item is not None else -1
        return self._studies[row] if 0 <= row < len(self._studies) else None

    @property
    def selected_series(self) -> Optional[Any]:
        item = self.series.currentItem()
        row = self.series.indexOfTopLevelItem(item) if item is not None else -1
        return self._series[row] if 0 <= row < len(self._series) else None

    def select_study(self, row: int) -> None:
        self.studies.setCurrentItem(self.studies.topLevelItem(row))

    def select_series(self, row: int) -> None:
        self.series.setCurrentItem(self.series.topLevelItem(row))

    # -- what the flow shows ---------------------------------------------------------
    def set_server(self, text: str) -> None:
        self.server_label.setText(text)

    def show_studies(self, studies: Sequence[Any], more: bool, append: bool = False) -> None:
        """Show ``studies`` (after the ones shown when ``append``); ``more``: offer the next page."""
        if not append:
            self._studies = []
            self.studies.clear()
            self.show_series([])
        known = {s.study_uid for s in self._studies}
        for s in studies:
            if s.study_uid in known:
                continue
            self._studies.append(s)
            item = QTreeWidgetItem(list(study_row(s)))
            item.setToolTip(STUDY_COLUMNS.index("Description"), f"Study {s.study_uid}")
            for col in (STUDY_COLUMNS.index("Series"), STUDY_COLUMNS.index("Images")):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.studies.addTopLevelItem(item)
        self.more_button.setVisible(more)
        n = len(self._studies)
        self.count_label.setText(f"{n} stud{'y' if n == 1 else 'ies'}" + (" shown; the server has more"
                                                                             if more else ""))
        if not append and self._studies:
            self.select_study(0)
        self._update_buttons()

    def show_series(self, series: Sequence[Any]) -> None:
        self._series = list(series)
        self.series.clear()
        for s in self._series:
            item = QTreeWidgetItem(list(series_row(s)))
            item.setToolTip(SERIES_COLUMNS.index("Description"), f"Series {s.series_uid}")
            for col in (SERIES_COLUMNS.index("#"), SERIES_COLUMNS.index("Images")):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.series.addTopLevelItem(item)
        images = [i for i, s in enumerate(self._series) if s.modality in ("CT", "MR", "PT", "CR", "DX")]
        if self._series:
            self.select_series(images[0] if images else 0)
        self._update_buttons()

    def study_rows(self) -> list[tuple[str, ...]]:
        return [tuple(self.studies.topLevelItem(i).text(c) for c in range(len(STUDY_COLUMNS)))
                for i in range(self.studies.topLevelItemCount())]

    def series_rows(self) -> list[tuple[str, ...]]:
        return [tuple(self.series.topLevelItem(i).text(c) for c in range(len(SERIES_COLUMNS)))
                for i in range(self.series.topLevelItemCount())]

    def show_message(self, text: str, error: bool = False) -> None:
        """A status line under the tables; errors in red (the engine's words: server, what failed, what to do)."""
        self.message.setStyleSheet("color: #c62828;" if error else "")
        self.message.setText(text)

    @property
    def message_text(self) -> str:
        return self.message.text()

    def set_busy(self, busy: bool, text: str = "") -> None:
        """A search or retrieval runs: its progress and Cancel on, the rest off."""
        self._busy = busy
        self.studies.setEnabled(not busy)
        self.series.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat(text)
            self.progress.setTextVisible(bool(text))
        self._update_buttons()

    def set_progress(self, fraction: float, text: str = "") -> None:
        self.progress.setValue(int(round(max(0.0, min(1.0, fraction)) * 1000)))
        if text:
            self.progress.setFormat(text)
            self.progress.setTextVisible(True)

    def _study_changed(self) -> None:
        self.show_series([])
        study = self.selected_study
        if study is not None:
            self.study_selected.emit(study)

    def _update_buttons(self) -> None:
        idle = not self._busy
        self.search_button.setEnabled(idle)
        self.more_button.setEnabled(idle)
        self.settings_button.setEnabled(idle)
        self.retrieve_button.setEnabled(idle and self.selected_series is not None)
