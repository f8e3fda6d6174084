"""One progress display for every command: a redrawn bar on a terminal, plain lines in a log.

On a terminal the bar is redrawn in place with ``\\r`` (at most every 0.1 s). When stderr is
a file or a pipe (CI logs, ``2> log.txt``, a batch system) carriage returns would pile up
into one unreadable line, so :class:`ProgressBar` writes a plain line at the start, at each
quarter and at the end instead: a few lines per job.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class ProgressBar:
    """A progress callback ``bar(fraction, message)`` for a command's stderr.

    Parameters
    ----------
    label
        text in front of the bar (the job).
    stream
        where to write (default ``sys.stderr``).
    enabled
        False writes nothing (``--quiet``).
    terminal
        redraw in place; default: whether ``stream`` is a terminal.
    """

    def __init__(self, label: str, stream: Optional[TextIO] = None, width: int = 30, enabled: bool = True,
                 terminal: Optional[bool] = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = enabled
        if terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            terminal = bool(isatty and isatty())
        self.terminal = terminal
        self._start = time.monotonic()
        self._last = 0.0
        self._quarter = -1
        self._shown = False

    def __call__(self, fraction: float, message: str = "") -> None:
        if not self.enabled:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.terminal:
            self._redraw(fraction, message)
        else:
            self._line(fraction, message)

    def _redraw(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < 0.1:
            return
        self._last = now
        filled = int(round(self.width * fraction))
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {100 * fraction:3.0f}% {message[:40]:<40}")
        self.stream.flush()
        self._shown = True

    def _line(self, fraction: float, message: str) -> None:
        quarter = int(fraction * 4)  # 0..4: start, 25 %, 50 %, 75 %, done
        if quarter <= self._quarter:
            return
        self._quarter = quarter
        elapsed = time.monotonic() - self._start
        text = f"{' '.join(self.label.split())}: {100 * fraction:3.0f}% ({elapsed:.0f} s)"
        self.stream.write(f"{text} {message}".rstrip() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (terminal only; plain lines are already complete)."""
        if self._shown and self.terminal:
            self.stream.write("\n")
            self.stream.flush()
        self._shown = False
