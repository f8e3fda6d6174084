"""The Notices panel: file problems (skipped slices, split series, damaged journals) stay readable.

:class:`NoticesPanel` lists every :meth:`app.state.notices.Notices.warn` text, newest
last; :attr:`NoticesPanel.button` is a status-bar button ("2 notices") that shows the
panel's dock, so a warning never only flashes by in the status bar. The button counts the
notices since the scan on screen was opened (:meth:`~app.state.notices.Notices.new_scan`; the
first scan also counts what came before it, such as start-up notices about edit journals): a
clean scan opened after a troubled one shows no count; the older notices stay listed under a
line naming the scan opened after them.
"""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QToolButton, QVBoxLayout,
                               QWidget)

from ..state.notices import Notices


class NoticesPanel(QWidget):
    """Lists the notices of one window.

    Parameters
    ----------
    notices
        The window's notices (the panel follows :attr:`Notices.warning_added`).
    reveal
        Called by :attr:`button` to show the panel (raises its dock).
    """

    def __init__(self, notices: Notices, reveal: Optional[Callable[[], None]] = None,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.notices = notices
        self._reveal = reveal
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(clear)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.list)
        lay.addLayout(row)
        self.button = QToolButton()
        self.button.setAutoRaise(True)
        self.button.setToolTip("File problems found while opening (skipped slices, split series...): click to read")
        self.button.clicked.connect(self.reveal)
        self._since = 0  # list row where the notices of the scan on screen begin
        self._seen_scan = False
        for text in notices.warnings:
            self._add(text)
        notices.warning_added.connect(self._add)
        notices.scan_opened.connect(self._scan_opened)
        self._update_button()

    def texts(self) -> list[str]:
        """The listed notices, oldest first (the lines between scans left out)."""
        return [self.list.item(i).text() for i in range(self.list.count())
                if not self.list.item(i).data(Qt.ItemDataRole.UserRole)]

    def current(self) -> list[str]:
        """The notices of the scan on screen (since it was opened)."""
        return [self.list.item(i).text() for i in range(self._since, self.list.count())]

    def clear(self) -> None:
        self.list.clear()
        self._since = 0
        self._update_button()

    def _scan_opened(self, name: str) -> None:
        # the first scan keeps what came before it (start-up notices: journals, temporary files) counted
        first, self._seen_scan = not self._seen_scan, True
        if first:
            return
        if self.list.count():
            line = QListWidgetItem(f"— {name} opened; the notices above are about earlier scans —")
            line.setData(Qt.ItemDataRole.UserRole, True)
            line.setFlags(Qt.ItemFlag.NoItemFlags)
            self.list.addItem(line)
        self._since = self.list.count()
        self._update_button()

    def reveal(self) -> None:
        if self._reveal is not None:
            self._reveal()
        self.list.scrollToBottom()

    def _add(self, text: str) -> None:
        self.list.addItem(text)
        self.list.scrollToBottom()
        self._update_button()

    def _update_button(self) -> None:
        n = self.list.count() - self._since
        self.button.setText(f"⚠ {n} notice{'s' if n != 1 else ''}")
        self.button.setVisible(n > 0)
