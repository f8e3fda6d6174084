"""Start-up: the QApplication, the main window, the first scan and the scripted screenshot.

``run(args)`` shows the window at once, then opens ``args.path`` (or the built-in
phantom) on a worker, then ``args.labels``. With ``args.screenshot`` it renders the window
at 1600x1000 once everything is loaded and drawn and the background tasks the open
started have ended (at most :data:`IDLE_WAIT_S`), saves the PNG and exits (0 on success,
2 when loading failed). Set ``LUNGLENS_SHOWN_STAMP=FILE`` to have the time the window was
first shown written to FILE (``time.time()``), and ``LUNGLENS_EXIT_WHEN_SHOWN=1`` to quit
right after; the start-up benchmark uses both.

:func:`install_error_hooks` makes sure no exception escapes on the GUI thread without a
message: ``sys.excepthook`` (PySide calls it for an exception raised in a slot or a
virtual method) logs the traceback and shows a non-modal error; Qt's own messages go to
the log. In a ``--screenshot`` run an unexpected error ends the run with exit code 3.
When the event loop ends, running tasks are cancelled and waited for at most
:data:`EXIT_WAIT_S`, and so is the background loading of torch and of the AI model; a task
or a load still busy in a long library call (a Run AI slab, an ONNX Runtime session being
built) does not hold the process: it exits at once, before the interpreter's teardown.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

SCREENSHOT_SIZE = (1600, 1000)
#: longest wait, after loading, for background tasks to end before the screenshot is taken
IDLE_WAIT_S = 120
#: longest wait, after the window closed, for cancelled tasks to end before the process exits anyway
EXIT_WAIT_S = 1.0
#: exit code of a --screenshot run stopped by an unexpected error
UNEXPECTED_ERROR_EXIT = 3

log = logging.getLogger("app")


def install_error_hooks(notices: "object", on_error: "Optional[object]" = None) -> "object":
    """Show every uncaught GUI-thread exception and log Qt's messages (see the module docstring).

    Parameters
    ----------
    notices
        The window's :class:`app.state.notices.Notices` (the error is shown there).
    on_error
        Called with the formatted traceback after the message was shown (a scripted run ends).

    Returns
    -------
    callable
        Puts the previous hook and message handler back (tests).
    """
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    from .state.tasks import error_message

    def excepthook(exc_type: type, exc: BaseException, tb: "object") -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)  # type: ignore[arg-type]
            return
        text = "".join(traceback.format_exception(exc_type, exc, tb))  # type: ignore[arg-type]
        log.error("unexpected error on the GUI thread:\n%s", text)
        try:
            notices.error(error_message(exc))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - the window is gone: the log has it
            pass
        if on_error is not None:
            on_error(text)  # type: ignore[operator]

    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}

    def qt_messages(mode: "object", _context: "object", message: str) -> None:
        log.log(levels.get(mode, logging.WARNING), "Qt: %s", message)  # type: ignore[arg-type]

    previous_hook = sys.excepthook
    sys.excepthook = excepthook
    previous_handler = qInstallMessageHandler(qt_messages)

    def uninstall() -> None:
        sys.excepthook = previous_hook
        qInstallMessageHandler(previous_handler)
    return uninstall


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
    window.scan_io.interactive = not args.screenshot
    if getattr(window, "ai", None) is not None:
        window.ai.preload_models = not args.screenshot  # a scripted run does not wait for Run AI
    sequence = StartupSequence(window, args, app)

    def scripted_error(text: str) -> None:  # nobody can read a message box: stop with the traceback
        print(f"error: unexpected error, the screenshot was not taken:\n{text}", file=sys.stderr)
        sequence.status = UNEXPECTED_ERROR_EXIT
        app.exit(UNEXPECTED_ERROR_EXIT)

    install_error_hooks(window.notices, scripted_error if args.screenshot else None)
    _stamp_when_shown(window)
    if args.screenshot:
        window.resize(*SCREENSHOT_SIZE)
    else:
        window.resize(1440, 900)
    window.show()
    from PySide6.QtCore import QTimer
    QTimer.singleShot(0, sequence.start)
    status = app.exec()
    code = int(sequence.status or status)
    window.runner.cancel_all()
    deadline = time.monotonic() + EXIT_WAIT_S  # one wait for both
    tasks_ended = window.runner.wait(int(EXIT_WAIT_S * 1000))
    ai = getattr(window, "ai", None)
    preloads_ended = tasks_ended and (ai is None or ai.wait_for_preloads(max(0.0, deadline - time.monotonic())))
    if not (tasks_ended and preloads_ended):
        # a task busy in a long library call (a Run AI slab) would hold the interpreter's exit, and
        # its teardown under a thread inside torch's or ONNX Runtime's C++ code aborts the process
        log.warning("exiting while %d task(s) still end: %s%s", len(window.runner.active),
                    ", ".join(t.title for t in window.runner.active),
                    "" if preloads_ended else " (and a model still loading)")
        window.settings.sync()  # what the normal exit would write (the chosen model, export folder...)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
