"""Start-up: the QApplication, the main window, the first scan and the scripted screenshot.

``run(args)`` shows the window at once, then opens ``args.path`` (or the built-in
phantom) on a worker, then ``args.labels``. With ``args.screenshot`` it renders the window
at 1600x1000 once everything is loaded and drawn and the background tasks the open
started have ended (at most :data:`IDLE_WAIT_S`), saves the PNG and exits (0 on success,
2 when loading failed). Set ``LUNGLENS_SHOWN_STAMP=FILE`` to have the time the window was
first shown written to FILE (``time.time()``), and ``LUNGLENS_EXIT_WHEN_SHOWN=1`` to quit
right after; the start-up benchmark uses both.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional

SCREENSHOT_SIZE = (1600, 1000)
#: longest wait, after loading, for background tasks to end before the screenshot is taken
IDLE_WAIT_S = 120


class StartupSequence:
    """Opens the scan, then the labels, then takes the screenshot, each when the previous ends."""

    def __init__(self, window: "object", args: argparse.Namespace, app: "object") -> None:
        self.window = window
        self.args = args
        self.app = app
        self.status = 0
        io = window.scan_io  # type: ignore[attr-defined]
        io.volume_opened.connect(self._volume_opened)
        io.labels_opened.connect(self._labels_opened)
        io.open_failed.connect(self._failed)
        self._labels_started = False
        self._done = False
        self._shot = False

    def start(self) -> None:
        io = self.window.scan_io  # type: ignore[attr-defined]
        if self.args.path:
            io.open_path(self.args.path)
        else:
            io.open_phantom()

    def _volume_opened(self, _volume: object) -> None:
        if self.args.labels and not self._labels_started:
            self._labels_started = True
            self.window.scan_io.open_labels(self.args.labels)  # type: ignore[attr-defined]
        elif not self.args.labels and self.args.path:
            self._finish()
        # the phantom brings its own labels: wait for labels_opened

    def _labels_opened(self, name: str) -> None:
        if self.args.labels and name != Path(self.args.labels).name:
            return  # the phantom's own labels, shown before the requested ones arrive
        self._finish()

    def _failed(self, message: str) -> None:
        if message and self.args.screenshot:  # interactive runs show the message in a box
            self.status = 2
            print(f"error: {message}", file=sys.stderr)
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self.args.screenshot:
            from PySide6.QtCore import QTimer
            # let work that the open started (the case's lungs and numbers) finish first
            self.window.runner.ended.connect(lambda _task: self._when_idle())  # type: ignore[attr-defined]
            QTimer.singleShot(IDLE_WAIT_S * 1000, self._screenshot)
            QTimer.singleShot(50, self._when_idle)

    def _when_idle(self) -> None:
        if not self.window.runner.active:  # type: ignore[attr-defined]
            from PySide6.QtCore import QTimer
            QTimer.singleShot(50, self._screenshot)

    def _screenshot(self) -> None:
        if self._shot:
            return
        self._shot = True
        out = Path(self.args.screenshot)
        out.parent.mkdir(parents=True, exist_ok=True)
        pixmap = self.window.grab()  # type: ignore[attr-defined]
        if not pixmap.save(str(out)):
            print(f"error: could not write {out}", file=sys.stderr)
            self.status = 2
        self.app.exit(self.status)  # type: ignore[attr-defined]


def _stamp_when_shown(window: "object") -> None:
    stamp = os.environ.get("LUNGLENS_SHOWN_STAMP")
    exit_now = os.environ.get("LUNGLENS_EXIT_WHEN_SHOWN") == "1"
    if not stamp and not exit_now:
        return

    def on_shown() -> None:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        def record() -> None:  # after the first paint of the window
            if stamp:
                Path(stamp).write_text(repr(time.time()))
            if exit_now:
                QApplication.instance().exit(0)
        QTimer.singleShot(0, record)

    window.shown.connect(on_shown)  # type: ignore[attr-defined]


def run(args: argparse.Namespace, argv: Optional[list[str]] = None) -> int:
    """Create the application and the window, open what ``args`` asks for, run the event loop."""
    if args.screenshot and "QT_QPA_PLATFORM" not in os.environ \
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setOrganizationName("LungLens")
    app.setApplicationName("LungLens")
    from .main_window import MainWindow

    window = MainWindow(interactive_errors=not args.screenshot)
    window.scan_io.choose_first_series = bool(args.screenshot)  # nobody is there to choose
    window.scan_io.remember_recent = not args.screenshot
    sequence = StartupSequence(window, args, app)
    _stamp_when_shown(window)
    if args.screenshot:
        window.resize(*SCREENSHOT_SIZE)
    else:
        window.resize(1440, 900)
    window.show()
    from PySide6.QtCore import QTimer
    QTimer.singleShot(0, sequence.start)
    status = app.exec()
    window.runner.cancel_all()
    window.runner.wait(5000)
    return int(sequence.status or status)
