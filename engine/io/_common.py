"""Shared helpers of the readers and writers: error wrapping, size guards, intensity buffer.

Policy for non-finite voxels (NaN, +inf, -inf) in float sources: they are replaced
so that no NaN ever reaches the viewer or a model. NaN and -inf become the lowest
finite value of the volume, +inf the highest, and ``volume.warnings`` says how many
voxels were replaced. A volume with no finite voxel at all raises
:class:`~engine.errors.CorruptFileError`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import stat
import threading
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from ..errors import CorruptFileError, LungLensError, UnsupportedFormatError
from ..types import slice_runs
from .orientation import SourceOrientation

#: largest array a reader will allocate; a header asking for more is treated as damaged
MAX_VOLUME_BYTES = 4 * 1024 ** 3
_INT16 = np.iinfo(np.int16)


def guard_size(shape: tuple[int, ...], itemsize: int, path: str | Path) -> None:
    """Refuse absurd dimensions before anything is allocated."""
    dims = [int(s) for s in shape]
    if any(s < 1 for s in dims):
        raise CorruptFileError(f"{Path(path).name}: the header gives the image size {tuple(dims)}, "
                               "which has an empty or negative dimension. The file is damaged.")
    nbytes = int(np.prod(np.asarray(dims, dtype=object))) * int(itemsize)
    if nbytes > MAX_VOLUME_BYTES:
        raise CorruptFileError(
            f"{Path(path).name}: the header claims an image of {'x'.join(map(str, dims))} voxels "
            f"({nbytes / 1024 ** 3:.1f} GiB), more than LungLens opens "
            f"({MAX_VOLUME_BYTES / 1024 ** 3:.0f} GiB). The header is probably damaged.")


@contextlib.contextmanager
def wrap_errors(path: str | Path, what: str = "file", action: str = "read") -> Iterator[None]:
    """Turn any unexpected exception of a third-party reader into a LungLens error.

    :class:`LungLensError` (including cancellation) passes through unchanged; so do
    ``KeyboardInterrupt`` and ``SystemExit`` (not ``Exception`` subclasses).
    """
    name = Path(path).name or str(path)
    try:
        yield
    except LungLensError:
        raise
    except PermissionError as exc:
        raise LungLensError(f"Permission denied: cannot {action} {path}. Check the permissions of this "
                            f"{what} and its folder.") from exc
    except MemoryError as exc:
        raise CorruptFileError(f"Not enough memory to {action} {name}: the {what} is too large for this "
                               "computer, or its header is damaged.") from exc
    except Exception as exc:  # noqa: BLE001 - third-party readers raise anything
        detail = _detail(exc)
        if action != "read":
            if isinstance(exc, OSError) and exc.strerror:  # the reason, not the temporary file's name in it
                detail = exc.strerror
            raise LungLensError(f"Could not {action} {name} in {Path(path).parent}: {detail[:300]}.") from exc
        raise CorruptFileError(f"Could not read {name}: {detail[:300]}. The {what} may be damaged, "
                               "truncated, or not in the format its name suggests.") from exc


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """Send what C/C++ libraries print to file descriptor 2 during the block to the debug log.

    ITK's MetaIO and NRRD readers print parse errors straight to ``std::cerr``
    ("MetaImage: M_Read: Error parsing file") before SimpleITK raises; LungLens
    reports the problem itself, so those lines are kept off the user's terminal.
    """
    import logging
    import tempfile
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no usable stderr (some GUI launchers): nothing to hide
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read(4096).decode("utf-8", "replace").strip()
                if text:
                    logging.getLogger("engine.io").debug("native library output: %s", text)


def _detail(exc: BaseException) -> str:
    """One readable line from an exception (ITK puts a source location on the first line)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("Exception thrown in SimpleITK"):
        useful = [ln for ln in lines[1:] if not ln.endswith(":")]
        text = useful[-1] if useful else "the ITK reader failed"
        for prefix in ("sitk::ERROR:", "ITK ERROR:"):
            text = text.split(prefix, 1)[-1].strip()
        if "No such file or directory" in text or text.startswith("Reason:"):
            # ITK reports any header it cannot parse as a missing file
            text = "its header could not be parsed (a field is missing or has an impossible value)"
        return text.rstrip(".")
    return lines[0].rstrip(".")


def check_readable(path: str | Path) -> Path:
    """Resolve ``path`` and check it is a readable regular file or folder, with a clear error.

    An empty path is an error (never the current folder); a path longer than the
    system allows, a named pipe, socket or device are refused before anything opens
    them (opening a FIFO would block forever).
    """
    if path is None or not str(path).strip():
        raise LungLensError("No path was given: choose a scan file or folder.")
    p = Path(path).expanduser()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise LungLensError(f"{p} does not exist: check the path.") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise LungLensError(f"The path is too long for this system ({len(str(p))} characters, "
                                f"starting {str(p)[:60]}...): move the scan to a shorter path.") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise LungLensError(f"Permission denied: cannot read {p}. Check its permissions.") from None
        raise LungLensError(f"Cannot read {p}: {exc.strerror or exc}.") from None
    except ValueError as exc:  # embedded NUL byte
        raise LungLensError(f"The path {str(p)[:80]!r} is not valid: {exc}.") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise UnsupportedFormatError(f"{p} is not a regular file or folder (a named pipe, socket or device): "
                                     "LungLens opens scan files and folders only.")
    if not os.access(p, os.R_OK) or (p.is_dir() and not os.access(p, os.X_OK)):
        raise LungLensError(f"Permission denied: cannot read {p}. Check its permissions.")
    return p


def read_exact(f, buf: memoryview, path: str | Path) -> None:
    """Fill ``buf`` from the file object ``f``; a short read means a truncated file."""
    view = buf.cast("B")
    got = 0
    total = len(view)
    while got < total:
        n = f.readinto(view[got:])
        if not n:
            raise CorruptFileError(f"{Path(path).name} is truncated: it ends {total - got} bytes before the "
                                   "image data the header announces. Copy the file again.")
        got += n


class IntensityBuffer:
    """The canonical output array, filled slab by slab.

    Starts as ``int16`` (HU that are integers fit there) or ``uint8`` (8-bit images)
    and switches once to ``float32`` when a slab holds fractions, values outside the
    int16 range or non-finite values.

    Parameters
    ----------
    plan
        The orientation plan; slabs arrive in the source layout.
    start_dtype
        ``np.int16``, ``np.uint8`` or ``np.float32``.
    """

    def __init__(self, plan: SourceOrientation, start_dtype: type = np.int16) -> None:
        self.plan = plan
        self.array = np.empty(plan.canonical_shape, dtype=start_dtype)
        self.nonfinite = 0
        #: after :meth:`finish`: the canonical axial slices where non-finite voxels were replaced, the values put
        #: there and (up to 4 M of them) their sorted flat indices (``meta["filled"]``: the viewer says so there)
        self.filled: dict[str, list] = {}

    def _fits(self, slab: np.ndarray) -> bool:
        dt = self.array.dtype
        if dt == np.float32:
            return True
        if slab.dtype == dt:
            return True
        lo, hi = (np.iinfo(dt).min, np.iinfo(dt).max)
        if slab.dtype.kind in "iub":
            return slab.size == 0 or (int(slab.min()) >= lo and int(slab.max()) <= hi)
        if not np.all(np.isfinite(slab)):
            return False
        if slab.size and (slab.min() < lo or slab.max() > hi):
            return False
        return bool(np.array_equal(np.round(slab), slab))

    def put(self, slab: np.ndarray, start: int) -> None:
        """Write source slices ``start : start + len(slab)`` (already in physical units)."""
        if not self._fits(slab):
            self.array = self.array.astype(np.float32)
        if self.array.dtype == np.float32 and slab.dtype.kind == "f":
            self.nonfinite += int(slab.size - np.count_nonzero(np.isfinite(slab)))
        self.plan.place(self.array, slab, start)

    def finish(self, warnings: list[str], path: str | Path) -> np.ndarray:
        """Replace non-finite voxels (see the module policy) and return the array."""
        arr = self.array
        if self.nonfinite:
            finite_min, finite_max = _finite_range(arr)
            if finite_min is None:
                raise CorruptFileError(f"{Path(path).name} holds no finite value (all voxels are NaN or "
                                       "infinite): there is no image to show.")
            hit, where = [], []
            per_slice = arr[0].size
            for z in range(arr.shape[0]):
                sl = arr[z]
                bad = ~np.isfinite(sl)
                if bad.any():
                    hit.append(z)
                    if self.nonfinite <= 4_000_000:
                        where.append(z * per_slice + np.flatnonzero(bad))
                    sl[bad & (sl > 0)] = finite_max
                    sl[bad & ~(sl > 0)] = finite_min
            self.filled = {"slices": hit, "values": [finite_min, finite_max],
                           "index": np.concatenate(where) if where else None}
            warnings.append(f"{self.nonfinite} voxel(s) were NaN or infinite, on {_slice_ranges(hit, arr.shape[0])}; "
                            f"NaN and -inf were replaced by the lowest value ({finite_min:g}, which may look like "
                            f"air), +inf by the highest ({finite_max:g}). Nothing there is image data.")
        return arr


def _slice_ranges(zs: list[int], n: int) -> str:
    """Canonical slice indices as the viewer numbers its axial slices: "axial slices 9-14 and 20 (of 24)"."""
    runs = slice_runs(zs)
    parts = [f"{a + 1}" if a == b else f"{a + 1}-{b + 1}" for a, b in runs[:4]]
    if len(runs) > 4:
        text = ", ".join(parts) + ", ..."
    else:
        text = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return f"axial slice{'s' if len(zs) > 1 else ''} {text} (of {n})"


def _finite_range(arr: np.ndarray) -> tuple[Optional[float], Optional[float]]:
    lo, hi = np.inf, -np.inf
    for z in range(arr.shape[0]):
        sl = arr[z]
        fin = sl[np.isfinite(sl)]
        if fin.size:
            lo, hi = min(lo, float(fin.min())), max(hi, float(fin.max()))
    if lo > hi:
        return None, None
    return lo, hi


def slab_size(bytes_per_slice: int, target: int = 8 * 1024 ** 2) -> int:
    """How many slices make a slab of about ``target`` bytes (at least one)."""
    return max(1, target // max(1, bytes_per_slice))


def prefetch(fill: Callable[[np.ndarray], None], buffers: list[np.ndarray], counts: list[int],
             ) -> Iterator[np.ndarray]:
    """Yield filled slabs while a background thread reads the next ones.

    ``fill(view)`` fills a view of one of ``buffers`` (zlib and file reads release the
    GIL, so decompression overlaps with the caller's copying). ``counts`` are the
    number of items of each slab. A yielded view is valid until the next one is
    asked for. Errors of the reader are re-raised in the caller; leaving the loop
    early (cancel, error) stops the thread.
    """
    free: "queue.Queue[np.ndarray]" = queue.Queue()
    full: "queue.Queue[object]" = queue.Queue()
    for b in buffers:
        free.put(b)
    stop = threading.Event()
    done = object()

    def worker() -> None:
        try:
            for n in counts:
                buf = free.get()
                if stop.is_set():
                    return
                view = buf[:n]
                fill(view)
                full.put(view)
            full.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            full.put(exc)

    thread = threading.Thread(target=worker, name="lunglens-io-prefetch", daemon=True)
    thread.start()
    previous: Optional[np.ndarray] = None
    try:
        while True:
            item = full.get()
            if previous is not None:
                free.put(previous.base if previous.base is not None else previous)
                previous = None
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            previous = item  # type: ignore[assignment]
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        for b in buffers:
            free.put(b)
        thread.join(timeout=5)


#: ``Volume.meta`` key set by the readers when :func:`hu_scale_note` spoke: the viewer then opens the
#: scan with a window over its own values and says on the image that they may not be HU
HU_DOUBT = "hu_scale_doubtful"


def hu_scale_note(array: np.ndarray, hint: str = "") -> Optional[str]:
    """A notice when values read as Hounsfield units cannot be those of a CT, else ``None``.

    A CT slice of the body shows air (outside the body, in the lungs or the airways: about
    -1000 HU). Without any value between -1100 and -400 HU the values are on another scale
    (a series exported without its rescale intercept: air stored as 0; an MR or a normalised
    image in a NIfTI file), or the image is not a CT slice of the body (a localizer, a crop of
    soft tissue). The image is still shown (the user may know better), but HU measurements and
    the AI reading are not valid, and the user is told when the file opens rather than left
    with a white or grey image. Judged on every k-th slice (16 to 31 slices); padding outside
    the field of view (-2000, -3024 HU) is not air. ``hint``: what the file says of its scale.
    """
    if array.size == 0:
        return None
    sample = array[:: max(1, array.shape[0] // 16)]
    if np.any((sample > -1100) & (sample < -400)):
        return None
    lo, hi = float(sample.min()), float(sample.max())
    return (f"The values ({lo:g} to {hi:g}) were read as Hounsfield units but hold no air (-1100 to -400 HU), "
            "which a CT slice of the body shows: they may be on another scale"
            f"{(' (' + hint + ')') if hint else ''}, or the image is not a CT slice of the body (a localizer, a "
            "crop). HU measurements and the AI reading are not valid then; check how it was exported.")
