"""Progress reporting and cancellation for long-running engine functions.

Every long engine function takes two optional keyword arguments:

``progress``
    a callable ``progress(fraction: float, message: str) -> None`` called with
    ``0.0 <= fraction <= 1.0``; it must be cheap and must not touch Qt widgets
    directly (the GUI passes a function that emits a signal).
``cancel``
    a :class:`CancelToken` (or anything with an ``is_set()`` method, such as a
    :class:`threading.Event`); the function calls :func:`check_cancel` at each
    step and raises :class:`engine.errors.CancelledError` when it is set.

Example
-------
>>> token = CancelToken()
>>> report = Progress(lambda f, m: None)
>>> report(0.5, "half way")
>>> token.cancel(); token.is_set()
True
"""

from __future__ import annotations

import threading
from typing import Callable, Optional, Protocol

from .errors import CancelledError

ProgressCallback = Callable[[float, str], None]


class CancelLike(Protocol):
    def is_set(self) -> bool: ...


class CancelToken:
    """A thread-safe flag that asks a long-running engine function to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    set = cancel

    def is_set(self) -> bool:
        return self._event.is_set()

    def __bool__(self) -> bool:  # pragma: no cover - convenience
        return self.is_set()


def check_cancel(cancel: Optional[CancelLike]) -> None:
    """Raise :class:`CancelledError` if ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise CancelledError()


class Progress:
    """Wrap an optional callback; clamp fractions and map sub-ranges.

    ``Progress(cb).sub(0.2, 0.8)`` gives a reporter whose 0..1 maps onto 0.2..0.8
    of the parent, so nested steps report one monotonic bar.
    """

    def __init__(self, callback: Optional[ProgressCallback] = None,
                 start: float = 0.0, stop: float = 1.0) -> None:
        self._callback = callback
        self._start = start
        self._stop = stop

    def __call__(self, fraction: float, message: str = "") -> None:
        if self._callback is None:
            return
        f = min(max(float(fraction), 0.0), 1.0)
        self._callback(self._start + f * (self._stop - self._start), message)

    def sub(self, start: float, stop: float) -> "Progress":
        span = self._stop - self._start
        return Progress(self._callback, self._start + start * span, self._start + stop * span)


def as_progress(progress: Optional[ProgressCallback | Progress]) -> Progress:
    """Accept ``None``, a plain callback, or a :class:`Progress`."""
    if isinstance(progress, Progress):
        return progress
    return Progress(progress)
