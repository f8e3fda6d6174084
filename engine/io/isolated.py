"""Open a scan in a child process that Cancel can end at once, whatever the reader is doing.

A reader stuck inside a library call (a slow network share, a pathological file,
a C decoder in a loop) cannot see a cancel token. :func:`open_isolated` runs
:func:`engine.io.load` in a separate process (``spawn``: safe next to Qt threads),
forwards its progress, and on cancel terminates the process: the call returns
(raising :class:`~engine.errors.CancelledError`) within about 0.1 s plus the
terminate time. A crash of the child (segfault, out of memory) becomes a
:class:`~engine.errors.LungLensError` with its reason instead of taking the
application down.

The volume comes back through the pipe in 64 MB pieces straight into the parent's
array (no pickle of the array, no second full copy in the parent).

Example (GUI worker thread)::

    token = CancelToken()                      # Cancel button: token.cancel()
    volume = open_isolated(path, progress=report, cancel=token)
    for w in volume.warnings: notices.show(w)
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .. import errors
from ..errors import CancelledError, LungLensError
from ..progress import CancelLike, ProgressCallback, as_progress
from ..types import Geometry, Volume

__all__ = ["open_isolated", "run_isolated"]

_CHUNK = 64 * 1024 ** 2
_POLL_S = 0.02


def _load(path: str, progress: ProgressCallback, cancel: None, series: Optional[str],
          first_slice: Optional[str] = None) -> Volume:
    from .loading import load
    return load(path, progress=progress, cancel=cancel, series=series, first_slice=first_slice)


def _child(func: Callable[..., Volume], args: tuple, conn) -> None:
    last = [0.0]

    def progress(fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if now - last[0] > 0.05 or fraction >= 1.0:
            last[0] = now
            conn.send(("progress", float(fraction), str(message)))
    try:
        vol = func(*args[:1], progress, None, *args[1:])
    except LungLensError as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    except MemoryError:
        conn.send(("error", "CorruptFileError", f"Not enough memory to open {Path(str(args[0])).name}: the scan is "
                                                "too large for this computer, or its header is damaged."))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a clean error
        conn.send(("error", "LungLensError", f"Could not open {Path(str(args[0])).name}: "
                                             f"{type(exc).__name__}: {str(exc)[:300]}"))
        return
    arr = np.ascontiguousarray(vol.array)
    conn.send(("volume", arr.shape, arr.dtype.str, vol.geometry.to_dict(), vol.is_hu, vol.source, vol.format,
               vol.meta, list(vol.warnings)))
    flat = arr.reshape(-1).view(np.uint8)
    for start in range(0, flat.size, _CHUNK):
        conn.send_bytes(flat[start:start + _CHUNK])
    conn.send(("done",))


def _stop(proc) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(0.5)
    if proc.is_alive():  # pragma: no cover - a child ignoring SIGTERM
        proc.kill()
        proc.join(0.5)


def run_isolated(func: Callable[..., Volume], path: str | Path, *extra: Any,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelLike] = None) -> Volume:
    """Run ``func(path, progress, cancel, *extra) -> Volume`` in a child process (see the module doc).

    ``func`` must be importable at module level (it is sent to a ``spawn`` child);
    inside the child, ``cancel`` is ``None``: cancellation ends the process instead.

    Raises
    ------
    CancelledError
        ``cancel`` was set; the child has been ended.
    LungLensError
        The reader's own error (same class and message), or the child died.
    """
    report = as_progress(progress)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(func, (str(path),) + extra, child), daemon=True,
                       name="lunglens-open")
    proc.start()
    child.close()
    name = Path(str(path)).name or str(path)
    array: Optional[np.ndarray] = None
    header: Optional[tuple] = None
    got = 0
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise CancelledError()
            if not parent.poll(_POLL_S):
                if not proc.is_alive() and not parent.poll(0):
                    raise LungLensError(f"The reader stopped unexpectedly while opening {name} (exit code "
                                        f"{proc.exitcode}): the file may be damaged or too large for this "
                                        "computer.")
                continue
            try:
                if array is not None and got < array.nbytes:
                    flat = array.reshape(-1).view(np.uint8)
                    got += parent.recv_bytes_into(memoryview(flat)[got:])
                    continue
                msg = parent.recv()
            except EOFError:
                raise LungLensError(f"The reader stopped unexpectedly while opening {name} (exit code "
                                    f"{proc.exitcode}).") from None
            if msg[0] == "progress":
                report(msg[1], msg[2])
            elif msg[0] == "error":
                cls = getattr(errors, msg[1], LungLensError)
                raise (cls if isinstance(cls, type) and issubclass(cls, LungLensError) else LungLensError)(msg[2])
            elif msg[0] == "volume":
                header = msg
                array = np.empty(msg[1], dtype=np.dtype(msg[2]))
                got = 0
            elif msg[0] == "done" and header is not None and array is not None:
                _, _, _, geom, is_hu, source, fmt, meta, warnings = header
                return Volume(array=array, geometry=Geometry.from_dict(geom), is_hu=is_hu, source=source,
                              format=fmt, meta=meta, warnings=warnings)
    finally:
        _stop(proc)
        parent.close()


def open_isolated(path: str | Path, progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelLike] = None, series: Optional[str] = None,
                  first_slice: Optional[str] = None) -> Volume:
    """:func:`engine.io.load` in a child process that ``cancel`` ends within about 0.1 s.

    Parameters
    ----------
    path, series, first_slice
        As for :func:`engine.io.load` (``series`` as a key string: a ``SeriesInfo``
        from :func:`engine.io.list_series` may be passed as its ``uid``).
    progress
        Called in the caller's thread with the child's progress.
    cancel
        Checked every 20 ms; when set, the child is terminated and
        :class:`~engine.errors.CancelledError` is raised.

    Returns
    -------
    Volume
        The same volume (array, geometry, meta, warnings) ``load`` returns.
    """
    if series is not None and not isinstance(series, str):
        series = getattr(series, "uid", str(series))
    return run_isolated(_load, path, series, first_slice, progress=progress, cancel=cancel)
