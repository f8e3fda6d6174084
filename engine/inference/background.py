"""Host work that runs beside the networks: one job on a daemon thread, with its own cancel.

Run AI finds the scan's lungs (numpy and scipy on the host, about 2 s for 300 slices on a
2-core CPU) while the segmentation runs: the networks (ONNX Runtime, torch, a GPU) and
most of scipy's and numpy's work release the GIL, so the lungs take the CPU time the
networks leave idle instead of adding their own to the wall time (docs/MODELS.md,
issue 15). The job's result is the same array the serial code made: only where it runs
changes.

The job is its own cancel flag (:class:`~engine.progress.CancelLike`): it stops when the
caller's flag is set or when :meth:`BackgroundJob.stop` is called (the reading ended,
failed or was cancelled), so no thread outlives the reading that started it by more than
one cancel check.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Generic, Optional, TypeVar

from ..anatomy.lungs import LungMasks, lung_masks
from ..errors import CancelledError, DataError
from ..progress import CancelLike, check_cancel
from ..types import Volume
from .gate import prepare_gate

__all__ = ["BackgroundJob", "Pending", "beside_pays", "find_lungs"]

T = TypeVar("T")


class BackgroundJob(Generic[T]):
    """``fn(cancel)`` on a daemon thread, started at once; :meth:`result` waits for it.

    ``seconds`` is the job's own duration (set when it ends); ``waited_s`` how long
    :meth:`result` had to wait for it.
    """

    def __init__(self, fn: Callable[[CancelLike], T], cancel: Optional[CancelLike] = None,
                 name: str = "lunglens-background") -> None:
        self._outer = cancel
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._value: Optional[T] = None
        self._error: Optional[BaseException] = None
        self.seconds = 0.0
        self.waited_s = 0.0
        self._thread = threading.Thread(target=self._work, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def is_set(self) -> bool:
        """The job's cancel flag: the caller's, or :meth:`stop`."""
        return self._stop.is_set() or (self._outer is not None and self._outer.is_set())

    def _work(self, fn: Callable[[CancelLike], T]) -> None:
        t = time.perf_counter()
        try:
            self._value = fn(self)
        except BaseException as e:  # noqa: BLE001 - handed to the thread that asks for the result
            self._error = e
        finally:
            self.seconds = time.perf_counter() - t
            self._ended.set()

    @property
    def running(self) -> bool:
        """False once the job's work has ended (its result is ready)."""
        return not self._ended.is_set()

    def result(self) -> T:
        """The job's value, once it has ended; its exception is raised here, in the caller."""
        t = time.perf_counter()
        self._thread.join()
        self.waited_s = time.perf_counter() - t
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def stop(self) -> None:
        """Ask the job to stop and wait until it has (its result is dropped)."""
        self._stop.set()
        self._thread.join()


class Pending(Generic[T]):
    """A value that another thread will hand over (the app's lung search, started when the scan
    opened), with a :class:`BackgroundJob`'s interface: Run AI waits for it instead of searching
    a second time. The owner calls :meth:`set` or :meth:`cancel`; the reader's own cancel flag
    (:meth:`watch`) ends a wait too."""

    def __init__(self) -> None:
        self._ended = threading.Event()
        self._value: Optional[T] = None
        self._cancelled = False
        self._watch: Optional[CancelLike] = None
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        self.waited_s = 0.0

    def set(self, value: Optional[T]) -> None:
        self._value, self.seconds = value, time.perf_counter() - self._t0
        self._ended.set()

    def cancel(self) -> None:
        """The value will not come (the scan was replaced): the reader's :meth:`result` raises
        :class:`~engine.errors.CancelledError`."""
        self._cancelled = True
        self._ended.set()

    def watch(self, cancel: Optional[CancelLike]) -> "Pending[T]":
        self._watch = cancel
        return self

    @property
    def running(self) -> bool:
        return not self._ended.is_set()

    def result(self) -> Optional[T]:
        t = time.perf_counter()
        while not self._ended.wait(0.05):
            check_cancel(self._watch)
        self.waited_s = time.perf_counter() - t
        if self._cancelled:
            raise CancelledError("the lungs of this scan will not come: another scan was opened")
        return self._value

    def stop(self) -> None:
        """Nothing to stop: the owner's search goes on for its own use."""


def beside_pays(device_type: str, network_threads: int, cores: Optional[int] = None) -> bool:
    """Whether host work beside the networks shortens a reading (measured, docs/MODELS.md).

    On a GPU the host is idle while the networks run: yes. On the CPU only when the
    networks leave a core free (the app runs them on one core fewer than the machine has):
    with every core busy in the networks the lungs took the same CPU time from them, the
    wall time did not fall (2-core CPU, 300 slices: 13.8 s serial against 14.1 s beside)
    and the peak memory rose by the lung search's temporaries (+95 MB).
    """
    if device_type != "cpu":
        return True
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return network_threads < cores


def _find(volume: Volume, stop: Optional[CancelLike], prepare: bool) -> Optional[LungMasks]:
    try:
        lungs = lung_masks(volume, cancel=stop)
    except DataError:
        return None
    check_cancel(stop)
    if prepare:  # kept with the lungs: the gate's distances, off Run AI's path
        prepare_gate(volume, lungs)
    return lungs


def find_lungs(volume: Volume, cancel: Optional[CancelLike] = None, beside: Optional[bool] = None,
               device_type: str = "cpu", network_threads: int = 1, prepare: bool = True
               ) -> "BackgroundJob[Optional[LungMasks]] | Pending[LungMasks]":
    """Find ``volume``'s lungs (:func:`~engine.anatomy.lung_masks`) and, when ``prepare`` and
    the gate will run on the host (``device_type`` "cpu"), the gate's lung part
    (:func:`.gate.prepare_gate`, kept with them): on a daemon thread when ``beside`` (``None``:
    :func:`beside_pays` for the networks' device and threads), else here and now (a
    :class:`Pending` already set). The job's result is ``None`` when the scan has no lung (the
    ``DataError`` of the lung search)."""
    prepare = prepare and device_type == "cpu"
    if beside is None:
        beside = beside_pays(device_type, network_threads)
    if beside:
        return BackgroundJob(lambda stop: _find(volume, stop, prepare), cancel, name="lunglens-lungs")
    here: Pending[LungMasks] = Pending()  # found now, in the calling thread (its errors are raised here)
    here.set(_find(volume, cancel, prepare))
    return here
