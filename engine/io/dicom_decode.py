"""Decode the compressed files of a DICOM series on every core, in slice order, with cancel.

pydicom's decoders (pylibjpeg-openjpeg, -libjpeg, -rle; Pillow too) hold the GIL for
the whole decode (measured on this project's 2-core CPU: two threads take as long as
one), so a thread pool cannot help. :func:`decode_files` instead runs worker processes
of :mod:`._dicom_worker`, not ``multiprocessing`` ones (it may not start children
inside the daemonic child of :func:`engine.io.open_isolated`, where the app reads):
on Linux, from a single-threaded process (the isolated reader, the command line), the
workers are forked (a few milliseconds each: nothing to import); otherwise they are
started as ``python -I _dicom_worker.py`` (about 0.4 s of CPU each: numpy and pydicom
imports). The calling thread decodes too, taking the next file whenever no result is
waiting, so ``cores - 1`` workers are started. A decode
in the calling thread holds the GIL, so the threads that read the workers' pipes wait;
each pipe is therefore enlarged to hold whole results (Linux ``F_SETPIPE_SZ``, 1 MiB:
two 512x512 16-bit slices) and a worker never stalls on it. Where a pipe cannot be
enlarged, one worker per core is started and the calling thread decodes only until
the first worker is ready.

- Every result comes back with its index: the caller places it in slice order.
- ``cancel`` is checked between files; on cancel (or any error) the workers are
  ended at once and :class:`~engine.errors.CancelledError` (or the error) is raised.
- A worker's only open files are its two pipes: when the reading process dies (Cancel
  ends the isolated reader), its input ends and it exits after at most one file.
- A worker that dies while decoding a file (a crash in a C decoder) gives a
  :class:`~engine.errors.CorruptFileError` naming the file, where a serial decode
  would have taken the application down; a worker that fails to start is dropped
  and its files are decoded here.
- ``LUNGLENS_DECODE_WORKERS`` (an integer, ``0`` = decode serially in the calling
  thread) overrides the number of workers.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from ..errors import CorruptFileError, LungLensError
from ..progress import CancelLike, check_cancel
from ._dicom_worker import NoPixelData, decode_stored

__all__ = ["decode_files", "decode_one", "default_workers"]

_WORKER = str(Path(__file__).with_name("_dicom_worker.py"))
#: files sent ahead to each worker (one decoding, one waiting), so a worker never idles on the pipe
_AHEAD = 2
#: below this many files, starting a worker costs more than it saves
_MIN_FILES = 8
_MAX_WORKERS = 7
_POLL_S = 0.05
#: capacity asked for each worker's result pipe (the default 64 KiB holds an eighth of a 512x512 slice)
_PIPE_BYTES = 1024 ** 2
_PIPE_SIZE_FLAG = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None


def default_workers(n_files: int) -> int:
    """Worker processes for ``n_files`` compressed files: ``cores - 1`` with enlargeable pipes, else ``cores``."""
    env = os.environ.get("LUNGLENS_DECODE_WORKERS", "").strip()
    if env:
        try:
            return max(0, min(int(env), _MAX_WORKERS))
        except ValueError:
            pass
    if n_files < _MIN_FILES or getattr(sys, "frozen", False):  # frozen: sys.executable is the app, not Python
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    per_core = cores - 1 if _PIPE_SIZE_FLAG is not None else cores
    return 0 if cores < 2 else max(1, min(per_core, _MAX_WORKERS, n_files // (2 * _AHEAD)))


def decode_one(path: str, frame: Optional[int] = None) -> np.ndarray:
    """Decode one file, or one frame of it, in this thread (see :func:`._dicom_worker.decode_stored`).

    Raises
    ------
    CorruptFileError
        No pixel data, or the decoder refused the data (the message names the file).
    """
    try:
        return decode_stored(path, frame)
    except NoPixelData as exc:
        raise CorruptFileError(str(exc)) from None
    except (MemoryError, LungLensError):
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder raises anything on damaged data
        raise _undecodable(path, str(exc).strip() or type(exc).__name__) from exc


def _undecodable(path: str, detail: str) -> CorruptFileError:
    first = "; ".join(ln.strip() for ln in detail.splitlines() if ln.strip())[:300] or "unknown error"
    return CorruptFileError(f"{Path(path).name}: its compressed pixel data could not be decoded ({first}). "
                            "The file is damaged or was written wrongly; copy the series again.")


def _can_fork() -> bool:
    """Fork workers only on Linux and from a single-threaded process (no lock of another thread can be
    copied held into the child; macOS system libraries do not survive a fork without exec)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


def _forked_worker(task_r: int, res_w: int) -> None:
    """Child side of a forked worker: keep only its two pipe ends, silence stdout/stderr, serve, exit."""
    try:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2 and fd not in (task_r, res_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        from ._dicom_worker import serve
        serve(os.fdopen(task_r, "rb"), os.fdopen(res_w, "wb"))
    finally:
        os._exit(0)  # never return into the parent's code, never run its exit handlers


class _Worker:
    """One decoder process (forked, or started as ``python -I _dicom_worker.py``) and its pipe reader."""

    def __init__(self, wid: int, fork: bool) -> None:
        self.wid = wid
        self.ready = False  # said "ready": takes files
        self.broken = False  # its input pipe failed: takes no more files (its end message follows)
        self.roomy = False  # its result pipe holds whole results: the calling thread may decode meanwhile
        self.inflight: dict[int, str] = {}  # task id -> path
        self.returncode: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.pid = 0
        if fork:
            task_r, task_w = os.pipe()
            res_r, res_w = os.pipe()
            self._enlarge(res_r)
            pid = os.fork()
            if pid == 0:
                _forked_worker(task_r, res_w)
            os.close(task_r)
            os.close(res_w)
            self.pid = pid
            self._in, self._out = os.fdopen(task_w, "wb"), os.fdopen(res_r, "rb")
        else:
            self.proc = subprocess.Popen([sys.executable, "-I", _WORKER], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self._in, self._out = self.proc.stdin, self.proc.stdout  # type: ignore[assignment]
            self._enlarge(self._out.fileno())
        self._reader: Optional[threading.Thread] = None

    def _enlarge(self, fd: int) -> None:
        if _PIPE_SIZE_FLAG is not None:
            try:
                self.roomy = fcntl.fcntl(fd, _PIPE_SIZE_FLAG, _PIPE_BYTES) >= _PIPE_BYTES
            except OSError:  # above /proc/sys/fs/pipe-max-size
                pass

    def start_reading(self, answers: "queue.Queue[tuple[int, Any]]") -> None:
        """Start the thread that puts the worker's answers into ``answers`` (after every fork is done)."""
        self._reader = threading.Thread(target=self._read, args=(answers,), daemon=True,
                                        name=f"lunglens-decode-{self.wid}")
        self._reader.start()

    def _read(self, answers: "queue.Queue[tuple[int, Any]]") -> None:
        try:
            while True:
                answers.put((self.wid, pickle.load(self._out)))
        except Exception:  # noqa: BLE001 - end of the pipe (exit, crash, or closed by us)
            answers.put((self.wid, None))

    def send(self, task_id: int, path: str, frame: Optional[int]) -> bool:
        """Hand a file (or one frame) to the worker; False when its pipe is broken (the worker has ended)."""
        try:
            pickle.dump((task_id, path, frame), self._in, protocol=pickle.HIGHEST_PROTOCOL)
            self._in.flush()
        except OSError:
            self.broken = True
            return False
        self.inflight[task_id] = path
        return True

    def _wait(self, timeout: float) -> bool:
        """Reap the process within ``timeout`` seconds; True when it has ended."""
        if self.proc is not None:
            try:
                self.returncode = self.proc.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    def _kill(self) -> None:
        try:
            if self.proc is not None:
                self.proc.kill()
            else:
                os.kill(self.pid, signal.SIGKILL)
        except OSError:  # already gone
            pass

    def close(self, kill: bool) -> None:
        """End the worker: ask it to stop (``kill`` False) or kill it; reap it; stop the reader."""
        try:
            if not kill:
                pickle.dump(None, self._in)
            self._in.close()
        except OSError:
            pass
        if kill or not self._wait(5):
            self._kill()
            self._wait(5)
        self._out.close()
        if self._reader is not None:
            self._reader.join(timeout=5)


def _raise_worker_error(path: str, kind: str, message: str) -> None:
    if kind == "no-pixel-data":
        raise CorruptFileError(message)
    if kind == "memory":
        raise MemoryError(f"decoding {Path(path).name}")
    raise _undecodable(path, message)


def decode_files(files: list[tuple[int, str, Optional[int]]], cancel: Optional[CancelLike] = None,
                 workers: Optional[int] = None) -> Iterator[tuple[int, np.ndarray]]:
    """Decode ``files`` (``(index, path, frame)``, in slice order) and yield ``(index, stored values)``.

    Results come as they are ready (not necessarily in index order); the caller places
    each at its index. Use the generator in a ``with contextlib.closing(...)`` block (or
    exhaust it) so the workers end as soon as the caller stops.

    Parameters
    ----------
    files
        Each yields the array of shape ``(frames, rows, cols)`` of the whole file (``frame``
        ``None``) or ``(1, rows, cols)`` of frame ``frame`` (the frames of one multi-frame
        file decode in parallel that way).
    cancel
        Checked between files; when set, the workers are ended and
        :class:`~engine.errors.CancelledError` is raised.
    workers
        Worker processes (default :func:`default_workers`); ``0`` decodes in the calling thread.

    Raises
    ------
    CorruptFileError
        A file has no pixel data, its decoder refused it, or a worker died while decoding it.
    """
    pending = deque(files)
    n_workers = default_workers(len(files)) if workers is None else workers
    answers: "queue.Queue[tuple[int, Any]]" = queue.Queue()
    pool: dict[int, _Worker] = {}
    fork = _can_fork()
    for wid in range(n_workers):  # every fork before any reader thread starts
        try:
            pool[wid] = _Worker(wid, fork)
        except OSError:  # cannot fork or start an interpreter (an embedded build): decode here
            break
    for w in pool.values():
        w.start_reading(answers)
    n_done = 0
    ok = False
    try:
        while n_done < len(files):
            check_cancel(cancel)
            for w in pool.values():
                while w.ready and not w.broken and pending and len(w.inflight) < _AHEAD:
                    if not w.send(*pending[0]):
                        break
                    pending.popleft()
            local = bool(pending) and all(w.roomy or not w.ready for w in pool.values())
            try:
                wid, msg = answers.get(timeout=0 if local else _POLL_S)
            except queue.Empty:
                if local:  # nothing is waiting: decode the next file here
                    task_id, path, frame = pending.popleft()
                    arr = decode_one(path, frame)
                    n_done += 1
                    yield task_id, arr
                continue
            w = pool[wid]
            if msg is None:  # the worker ended (files are only sent to ready workers: none is lost)
                del pool[wid]
                w.close(kill=True)
                if w.ready and w.inflight:
                    path = next(iter(w.inflight.values()))
                    raise CorruptFileError(
                        f"{Path(path).name}: the image decoder stopped unexpectedly while decoding this file "
                        f"(exit code {w.returncode}). The file is probably damaged; copy the series again.")
                continue
            if msg[0] == "ready":
                w.ready = True
                continue
            task_id, status = msg[0], msg[1]
            path = w.inflight.pop(task_id)
            if status != "ok":
                _raise_worker_error(path, msg[2], msg[3])
            n_done += 1
            yield task_id, msg[2]
        ok = True
    finally:
        for w in pool.values():
            w.close(kill=not ok)
