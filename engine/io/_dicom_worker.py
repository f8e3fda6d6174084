"""Decode the pixel data of compressed DICOM files; also a worker process (run as a script).

:func:`decode_stored` is the one place where LungLens hands compressed pixel data to
pydicom's decoders (pylibjpeg-openjpeg, pylibjpeg-libjpeg, pylibjpeg-rle, or GDCM when
installed). None of these release the GIL (measured: two threads decode no faster
than one), so :mod:`.dicom_decode` runs extra decoders as worker processes of this
module, started as ``python -I engine/io/_dicom_worker.py`` so that a worker imports
only numpy and pydicom (not the ``engine`` package).

On Linux, a single-threaded caller forks its workers instead (:func:`serve` in the
child: nothing to import, so a worker costs milliseconds to start rather than about
0.4 s of CPU).

Worker protocol (pickle over pipes: stdin/stdout of a started worker): the worker
writes ``("ready",)``, then answers each ``(task_id, path, frame)`` (``frame``: an
index, or ``None`` for every frame) with ``(task_id, "ok", array)`` or ``(task_id,
"error", kind, message)`` (``kind``: ``"no-pixel-data"``, ``"memory"`` or
``"other"``); ``None`` or the end of its input ends it. A worker whose parent dies
sees the end of its input and exits after at most one file.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any, BinaryIO, Optional

import numpy as np
import pydicom
from pydicom.pixels import pixel_array
from pydicom.tag import Tag

__all__ = ["decode_stored", "NoPixelData", "DECODE_TAGS"]

#: the tags pydicom's decoders look at (pixel module, frame count, offset tables, the pixel data)
DECODE_TAGS = [Tag(name) for name in (
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames", "Rows", "Columns",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths", "PixelData")]


class NoPixelData(Exception):
    """The file has no pixel data element (a truncated file)."""


def decode_stored(path: str, frame: Optional[int] = None) -> np.ndarray:
    """The stored (not rescaled) values of ``path``, shape ``(frames, rows, cols)``.

    Every frame, or only frame ``frame`` (shape ``(1, rows, cols)``; pydicom reads that
    frame's fragments alone). Only :data:`DECODE_TAGS` are parsed. The caller checks
    the codestream against the transfer syntax first
    (:func:`engine.io.dicom_checks.check_codestream`).

    Raises
    ------
    NoPixelData
        The file has no pixel data.
    Exception
        Whatever pydicom's decoder raises for damaged data.
    """
    if frame is not None:  # the caller has seen the pixel data in the header
        pix = pixel_array(path, index=frame)
        return pix.reshape((1,) + pix.shape[-2:])
    ds = pydicom.dcmread(path, force=True, specific_tags=DECODE_TAGS)
    if "PixelData" not in ds:
        raise NoPixelData(f"{os.path.basename(path)} has no pixel data: the file is truncated.")
    pix = ds.pixel_array
    return pix.reshape((-1,) + pix.shape[-2:])


def _send(out: BinaryIO, message: Any) -> None:
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


def main() -> None:
    """Worker process entry: serve stdin/stdout (stdout is kept for the protocol only)."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the protocol
    serve(sys.stdin.buffer, out)


def serve(stdin: BinaryIO, out: BinaryIO) -> None:
    """Worker loop: decode the files the parent sends until it sends ``None`` or closes the input."""
    try:
        _send(out, ("ready",))
        while True:
            try:
                task = pickle.load(stdin)
            except EOFError:
                return
            if task is None:
                return
            task_id, path, frame = task
            try:
                _send(out, (task_id, "ok", decode_stored(path, frame)))
            except NoPixelData as exc:
                _send(out, (task_id, "error", "no-pixel-data", str(exc)))
            except MemoryError:
                _send(out, (task_id, "error", "memory", ""))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which names the file
                _send(out, (task_id, "error", "other", str(exc).strip() or type(exc).__name__))
    except (BrokenPipeError, KeyboardInterrupt):  # the parent went away
        return


if __name__ == "__main__":
    main()
