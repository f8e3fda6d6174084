"""Notices: what the application tells the user (errors, status lines), as signals.

Flows call :meth:`Notices.error` and :meth:`Notices.status`; the main window shows them
(a non-modal message box, the status bar). :meth:`Notices.warn` keeps file problems
(a scan's warnings) readable in the Notices panel. Tests read :attr:`Notices.errors` and
:attr:`Notices.warnings`.
"""

from __future__ import annotations

import logging
from typing import Optional

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class Notices(QObject):
    """Errors and status lines for the user.

    Signals
    -------
    error_shown(str)
        an error message to show.
    status_shown(str, int)
        a status line and how long to show it (ms).
    """

    error_shown = Signal(str)
    status_shown = Signal(str, int)
    #: a file problem to keep readable (the Notices panel lists them): the text
    warning_added = Signal(str)
    #: another scan was opened (its name): the panel counts the notices of the scan on screen
    scan_opened = Signal(str)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        #: every error shown so far, oldest first
        self.errors: list[str] = []
        #: every warning kept so far (file problems: skipped slices, split series...), oldest first
        self.warnings: list[str] = []

    def error(self, message: str) -> None:
        """Tell the user something went wrong (also logged, and the first line goes to the status bar)."""
        self.errors.append(message)
        log.warning("%s", message)
        self.status(message.splitlines()[0] if message else "")
        self.error_shown.emit(message)

    def status(self, message: str, msecs: int = 8000) -> None:
        """A short status line."""
        self.status_shown.emit(message, int(msecs))

    def new_scan(self, name: str) -> None:
        """A scan was opened: notices from here on are about it (older ones stay listed, not counted)."""
        self.scan_opened.emit(name)

    def warn(self, message: str) -> None:
        """Keep a file problem for the user (the Notices panel lists it; it is also logged)."""
        self.warnings.append(message)
        log.warning("%s", message)
        self.warning_added.emit(message)
