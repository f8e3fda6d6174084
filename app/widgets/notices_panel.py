"""The Notices panel: file problems (skipped slices, split series, damaged journals) stay readable.

:class:`NoticesPanel` lists every :meth:`app.state.notices.Notices.warn` text, newest
last; :attr:`NoticesPanel.button` is a status-bar button ("2 notices") that shows the
panel's dock, so a warning never only flashes by in the status bar.
"""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtWidgets import (QHBoxLayout, QListWidget, QPushButton, QToolButton, QVBoxLayout, QWidget)

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
        for text in notices.warnings:
            self._add(text)
        notices.warning_added.connect(self._add)
        self._update_button()

    def texts(self) -> list[str]:
        """The listed notices, oldest first."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def clear(self) -> None:
        self.list.clear()
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
        n = self.list.count()
        self.button.setText(f"⚠ {n} notice{'s' if n != 1 else ''}")
        self.button.setVisible(n > 0)
