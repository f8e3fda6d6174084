"""Run engine functions on a worker thread, with progress and cancel.

:class:`Task` wraps a call ``fn(*args, progress=..., cancel=..., **kwargs)`` in a
``QRunnable`` run by the global ``QThreadPool``. When ``fn`` returns a generator (an
engine function that yields partial results, such as
:func:`engine.inference.pipeline.iter_read`), the task drains it on the worker: each
yielded value is emitted as ``yielded(object)`` (queued to the GUI thread, as superqt's
``GeneratorWorker`` does), each step is a place to cancel, and the generator's return
value is the result. The engine function reports progress
through a plain callback that emits a Qt signal (thread-safe, queued to the GUI thread)
and checks a :class:`engine.progress.CancelToken`. When it ends, exactly one of
``result(object)``, ``error(object)`` (the exception) or ``cancelled()`` is emitted on
the GUI thread, then ``finished()``. Cancellation (:class:`engine.errors.CancelledError`
raised after ``cancel()``) is not an error.

:class:`TaskRunner` starts tasks, keeps them alive until they finish and feeds a
:class:`app.widgets.progress.ProgressPanel`; :meth:`TaskRunner.run` is the one way flows
start work (errors go to the notices unless the caller handles them). No ``processEvents()`` loops anywhere.
"""

from __future__ import annotations

import inspect
import logging
import traceback
import warnings
from typing import Any, Callable, Generator, Optional

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from engine.errors import CancelledError, LungLensError
from engine.progress import CancelToken

log = logging.getLogger(__name__)


class TaskSignals(QObject):
    """Signals of a :class:`Task`; this object lives in the GUI thread."""

    progress = Signal(float, str)
    yielded = Signal(object)
    result = Signal(object)
    error = Signal(object)
    cancelled = Signal()
    finished = Signal()


class Task(QRunnable):
    """One call of an engine function on a worker thread.

    Parameters
    ----------
    fn
        Called as ``fn(*args, progress=callback, cancel=token, **kwargs)``; pass
        ``pass_progress=False`` for functions that take neither.
    title
        Short text shown beside the progress bar (e.g. ``"Opening scan"``).
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, title: str = "Working",
                 pass_progress: bool = True, **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.title = title
        self.pass_progress = pass_progress
        self.token = CancelToken()
        self.signals = TaskSignals()

    def cancel(self) -> None:
        """Ask the function to stop at its next cancel check."""
        self.token.cancel()

    def release(self) -> None:
        """Drop the function, its arguments and every connected callback (after the end).

        The thread pool keeps the Python wrapper of a started ``QRunnable``; releasing
        what it references keeps a finished task from holding a scan or a window alive.
        """
        self.fn = None
        self.args = ()
        self.kwargs = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # PySide warns for signals with no slot
            for signal in (self.signals.progress, self.signals.yielded, self.signals.result, self.signals.error,
                           self.signals.cancelled, self.signals.finished):
                try:
                    signal.disconnect()
                except (RuntimeError, TypeError):  # nothing connected
                    pass

    def _report(self, fraction: float, message: str = "") -> None:
        self.signals.progress.emit(float(fraction), str(message))

    def _drain(self, gen: Generator[Any, None, Any]) -> Any:
        """Run ``gen`` to its end: each value becomes ``yielded``; cancel is checked between steps."""
        while True:
            if self.token.is_set():
                gen.close()
                raise CancelledError("cancelled")
            try:
                value = next(gen)
            except StopIteration as stop:
                return stop.value
            self.signals.yielded.emit(value)

    def run(self) -> None:  # worker thread
        if self.fn is None:  # released (its runner shut down or deleted) before the pool started it
            return
        kwargs = dict(self.kwargs)
        if self.pass_progress:
            kwargs.update(progress=self._report, cancel=self.token)
        try:
            out = self.fn(*self.args, **kwargs)
            if inspect.isgenerator(out):
                out = self._drain(out)
        except CancelledError:
            self.signals.cancelled.emit()
        except Exception as exc:  # delivered to the GUI thread, shown there
            if not isinstance(exc, LungLensError):
                log.error("task %r failed:\n%s", self.title, traceback.format_exc())
            if self.token.is_set():
                self.signals.cancelled.emit()
            else:
                self.signals.error.emit(exc)
        else:
            if self.token.is_set():
                self.signals.cancelled.emit()
            else:
                self.signals.result.emit(out)
        self.signals.finished.emit()


def error_message(exc: BaseException) -> str:
    """Text to show the user for ``exc``: LungLens errors as they are, others with their type."""
    if isinstance(exc, LungLensError):
        return str(exc)
    return f"Unexpected error ({type(exc).__name__}): {exc}. Please report it with the steps that led to it."


class TaskRunner(QObject):
    """Starts :class:`Task` objects and keeps them referenced until they finish.

    Signals
    -------
    started(object), ended(object)
        a task began / ended (the :class:`Task`), for progress displays.
    error(str)
        a task started by :meth:`run` without ``on_error`` failed (the message to show).
    status(str)
        a short status line (a task of :meth:`run` was cancelled).
    """

    started = Signal(object)
    ended = Signal(object)
    error = Signal(str)
    status = Signal(str)

    def __init__(self, parent: Optional[QObject] = None, pool: Optional[QThreadPool] = None) -> None:
        super().__init__(parent)
        self._pool = pool or QThreadPool.globalInstance()
        self._tasks: set[Task] = set()
        # deleted with its owner (a window or flow closed) while tasks still run: they report to nobody
        self.destroyed.connect(lambda *_a, tasks=self._tasks: TaskRunner._drop(tasks))

    @property
    def active(self) -> tuple[Task, ...]:
        return tuple(self._tasks)

    def start(self, task: Task, on_result: Optional[Callable[[Any], None]] = None,
              on_error: Optional[Callable[[BaseException], None]] = None,
              on_cancel: Optional[Callable[[], None]] = None,
              on_yield: Optional[Callable[[Any], None]] = None,
              on_finished: Optional[Callable[[], None]] = None) -> Task:
        """Run ``task``; the callbacks run on the GUI thread (``on_yield`` per value a generator yields,
        ``on_finished`` once at the end, whatever the outcome).

        Every callback is connected before the task starts: a quick task can end before a
        later connection, and a queued signal reaches only the slots it had when emitted.

        A result that reaches the GUI thread after :meth:`Task.cancel` counts as cancelled
        (``on_cancel``, not ``on_result``): Cancel always wins.
        """
        if on_yield is not None:
            task.signals.yielded.connect(on_yield)
        if on_result is not None:
            def delivered(out: Any, task: Task = task) -> None:  # Cancel pressed after the worker ended: cancelled
                if task.token.is_set():
                    if on_cancel is not None:
                        on_cancel()
                else:
                    on_result(out)
            task.signals.result.connect(delivered)
        if on_error is not None:
            task.signals.error.connect(on_error)
        if on_cancel is not None:
            task.signals.cancelled.connect(on_cancel)
        if on_finished is not None:
            task.signals.finished.connect(on_finished)
        task.signals.finished.connect(lambda t=task: self._finish(t))
        self._tasks.add(task)
        self.started.emit(task)
        self._pool.start(task)
        return task

    def run(self, fn: Callable[..., Any], *args: Any, title: str = "Working",
            on_result: Optional[Callable[[Any], None]] = None,
            on_error: Optional[Callable[[BaseException], None]] = None,
            on_cancel: Optional[Callable[[], None]] = None,
            on_yield: Optional[Callable[[Any], None]] = None,
            on_finished: Optional[Callable[[], None]] = None, **kwargs: Any) -> Task:
        """Run ``fn(*args, progress=..., cancel=..., **kwargs)`` on a worker thread with a progress bar.

        Without ``on_error`` the error is announced by :attr:`error` (the window shows it);
        without ``on_cancel`` the cancellation by :attr:`status`.
        """
        if on_error is None:
            on_error = lambda exc: self.error.emit(error_message(exc))  # noqa: E731
        if on_cancel is None:
            on_cancel = lambda: self.status.emit(f"{title}: cancelled")  # noqa: E731
        task = Task(fn, *args, title=title, **kwargs)
        return self.start(task, on_result=on_result, on_error=on_error, on_cancel=on_cancel, on_yield=on_yield,
                          on_finished=on_finished)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def wait(self, msecs: int = -1) -> bool:
        """Block until the pool is idle (for shutdown and tests only)."""
        return self._pool.waitForDone(msecs)

    def shutdown(self, msecs: int = 5000) -> None:
        """Cancel every task, wait for them (at most ``msecs``; ``0``: not at all), and drop their
        callbacks (window closing).

        Results still queued for the GUI thread are discarded; disconnecting the
        callbacks also releases what they hold (the window, the scan). A task still
        running ends on its own at its next cancel check (an open's reader process is
        ended at once) and reports to nobody.
        """
        self.cancel_all()
        if msecs:
            self.wait(msecs)
        for task in list(self._tasks):
            task.release()
        self._tasks.clear()

    @staticmethod
    def _drop(tasks: set[Task]) -> None:
        for task in list(tasks):
            task.cancel()
            task.release()
        tasks.clear()

    def _finish(self, task: Task) -> None:
        if not shiboken6.isValid(self):  # an end queued before the runner's deletion
            return
        self._tasks.discard(task)
        self.ended.emit(task)
        # after every slot of this emission has run (disconnecting now would skip the rest)
        QTimer.singleShot(0, task.release)
