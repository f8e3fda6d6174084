"""Crash-safe journal of label edits, one file per scan in the application data folder.

File format: a sequence of records, each

``b"LLJR" | header length (u32) | payload length (u32) | crc32 (u32) | header | payload``

with little-endian integers, a UTF-8 JSON header and a zlib-compressed payload;
the CRC covers header and payload. Every record is flushed and ``fsync``-ed
before :meth:`Journal.append_step` returns, so a committed step survives a crash
or a kill. A torn last record (the process died while writing it) is ignored on
replay. A damaged record in the middle does not end the replay: the reader finds
the next intact record (by its magic and CRC), replays every step it can, and
:attr:`Replay.damaged` / :meth:`Replay.problem` say how many records were lost and
how many steps were recovered. A record whose CRC is right but whose content
cannot be decoded counts as damaged too; listing journals never raises because of
one bad file.

Record types: ``open`` (first record: shape, geometry, source, and the labels the
session started from when they were not all zero), ``step`` (a
:class:`~engine.editing.history.Delta`, its name and kind), ``undo``, ``redo`` and
``saved`` (the labels were exported; edits before it are not "unsaved").

Each editing session writes its own file,
``<data dir>/journals/<scan key>/<UTC time>-<pid>.journal``, so a new session of a
scan never touches the journal of an earlier one that may still be restored
(:func:`unsaved_journals` lists those, newest first). While a session writes its journal
it holds an OS file lock on ``<journal>.lock`` (``filelock``: ``flock`` on POSIX,
``LockFileEx`` on Windows; the OS drops it when the process ends, a kill included), so
another LungLens window never offers, restores, discards or tidies a journal that is still
being written (:func:`journal_in_use`): two windows on one scan each keep their own. The data dir is
``$LUNGLENS_DATA_DIR`` when set, else the platform's user data folder
(``$XDG_DATA_HOME/LungLens`` on Linux, ``%LOCALAPPDATA%\\LungLens`` on Windows,
``~/Library/Application Support/LungLens`` on macOS) -- never beside the scan.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import struct
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Optional

import numpy as np

from filelock import FileLock, Timeout

from ..errors import CorruptFileError, LungLensError
from ..types import Geometry
from ..userdata import data_dir
from .history import Delta, Step

MAGIC = b"LLJR"
_HEAD = struct.Struct("<4sIII")
VERSION = 1


# ---------------------------------------------------------------- locations
def scan_key(source: Optional[str | os.PathLike], geometry: Geometry) -> str:
    """A stable name for a scan: hash of its absolute source path, shape and grid."""
    src = str(Path(source).resolve()) if source else "<unsaved>"
    blob = json.dumps({"source": src, "geometry": geometry.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def journal_dir(key: str) -> Path:
    """Folder of the journals of the scan named ``key`` (see :func:`scan_key`)."""
    return data_dir() / "journals" / key


def journal_path(key: str) -> Path:
    """A new, unused journal file path for a session of the scan named ``key``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return journal_dir(key) / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}.journal"


def _lock_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".lock")


class JournalInUse(LungLensError):
    """The journal is being written by another LungLens window that is still running."""


def journal_in_use(path: str | os.PathLike) -> bool:
    """Whether a running session (another window, or this one) holds the journal's lock.

    A folder where no lock can be taken (read-only) is taken as not in use: no session can
    be writing a journal there.
    """
    lock_file = _lock_path(path)
    if not lock_file.exists():
        return False
    lock = FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:
        return False
    lock.release()
    return False


def _remove_lock(path: str | os.PathLike) -> None:
    try:
        _lock_path(path).unlink()
    except OSError:
        pass


def journal_source(path: str | os.PathLike) -> Optional[str]:
    """The scan path recorded in a journal's ``open`` record (None when unknown or unreadable)."""
    src = journal_header(path).get("source")
    return str(src) if src else None


def journal_header(path: str | os.PathLike) -> dict[str, Any]:
    """The ``open`` record's header of a journal (``{}`` when unreadable): ``source``, ``shape``,
    ``geometry``, ``open_with`` (how the scan was opened: its DICOM series, a stack's first slice) and
    ``source_stamp`` (:func:`source_stamp` of the scan when the edits began)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD.size)
            if len(head) < _HEAD.size:
                return {}
            _magic, n_head, _n_pay, _crc = _HEAD.unpack(head)
            got = _record_at(head + fh.read(n_head + _n_pay), 0)
    except (OSError, struct.error):
        return {}
    return got[0].header if got is not None and got[0].type == "open" else {}


def source_stamp(source: Optional[str | os.PathLike]) -> Optional[list[int]]:
    """Size and modification time of a scan file (of a folder: its files' count, total size and newest time),
    to tell at a restore whether the scan changed since the edits were made; ``None`` when it is not there."""
    if not source:
        return None
    p = Path(source)
    try:
        if p.is_file():
            st = p.stat()
            return [int(st.st_size), int(st.st_mtime_ns)]
        if p.is_dir():  # the files a folder scan is read from, series in subfolders included (at most 20 000)
            stats = [f.stat() for f in itertools.islice((f for f in p.rglob("*") if f.is_file()), 20000)]
            return [len(stats), sum(int(st.st_size) for st in stats), max((int(st.st_mtime_ns) for st in stats),
                                                                         default=0)]
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- encoding
def _encode_deltas(deltas: list[Optional[Delta]]) -> tuple[list[Any], bytes]:
    meta: list[Any] = []
    parts: list[bytes] = []
    for d in deltas:
        if d is None:
            meta.append(None)
            continue
        meta.append({"box": list(d.box), "count": d.count, "packed": int(d.packed_mask.size)})
        parts += [d.packed_mask.tobytes(), d.old.tobytes(), d.new.tobytes()]
    return meta, zlib.compress(b"".join(parts), 1)


def _decode_deltas(meta: list[Any], payload: bytes) -> list[Optional[Delta]]:
    raw = memoryview(zlib.decompress(payload))
    out: list[Optional[Delta]] = []
    pos = 0
    for m in meta:
        if m is None:
            out.append(None)
            continue
        n_p, n = int(m["packed"]), int(m["count"])
        packed = np.frombuffer(raw[pos:pos + n_p], dtype=np.uint8).copy()
        old = np.frombuffer(raw[pos + n_p:pos + n_p + n], dtype=np.uint8).copy()
        new = np.frombuffer(raw[pos + n_p + n:pos + n_p + 2 * n], dtype=np.uint8).copy()
        pos += n_p + 2 * n
        out.append(Delta(tuple(int(v) for v in m["box"]), packed, old, new))  # type: ignore[arg-type]
    return out


@dataclass
class Record:
    """One decoded journal record."""

    type: str
    header: dict[str, Any]
    payload: bytes = b""


def _record_at(data: bytes, pos: int) -> Optional[tuple[Record, int]]:
    """The intact record starting at ``pos`` and the position after it, or None."""
    if pos + _HEAD.size > len(data):
        return None
    magic, n_head, n_pay, crc = _HEAD.unpack_from(data, pos)
    end = pos + _HEAD.size + n_head + n_pay
    if magic != MAGIC or end > len(data):
        return None
    body = data[pos + _HEAD.size:end]
    if zlib.crc32(body) != crc:
        return None
    try:
        header = json.loads(body[:n_head].decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    return Record(str(header.get("type")), header, bytes(body[n_head:])), end


def scan_records(path: str | os.PathLike) -> tuple[list[Optional[Record]], bool]:
    """Every record of a journal, read one by one.

    Returns the records in order, with ``None`` where damaged bytes were skipped
    (the reader resumes at the next intact record), and whether the file ends in a
    torn record (normal after a kill during a write; not counted as damage).
    """
    data = Path(path).read_bytes()
    out: list[Optional[Record]] = []
    pos = 0
    while pos < len(data):
        got = _record_at(data, pos)
        if got is not None:
            out.append(got[0])
            pos = got[1]
            continue
        nxt = data.find(MAGIC, pos + 1)
        while nxt >= 0 and _record_at(data, nxt) is None:
            nxt = data.find(MAGIC, nxt + 1)
        if nxt < 0:
            return out, True  # torn (or damaged) tail
        out.append(None)
        pos = nxt
    return out, False


def read_records(path: str | os.PathLike) -> list[Record]:
    """The intact records of a journal, in order (damaged ones left out; see :func:`scan_records`)."""
    return [r for r in scan_records(path)[0] if r is not None]


# ---------------------------------------------------------------- writer
class Journal:
    """Append-only, fsync-ed journal of one editing session (see the module docstring).

    Nothing is written until :meth:`start`; the :class:`~engine.editing.editor.LabelEditor`
    starts it at the first committed step, so merely viewing a scan leaves no file.
    """

    def __init__(self, path: str | os.PathLike, open_with: Optional[dict[str, Any]] = None) -> None:
        self.path = Path(path)
        #: how the scan was opened (``series``, ``first_slice``), recorded so a restore opens it the same way
        self.open_with = {k: v for k, v in (open_with or {}).items() if v is not None}
        self._fh: Optional[BinaryIO] = None
        self._lock: Optional[FileLock] = None

    def _take_lock(self) -> None:
        """Hold the journal's lock while writing it (raises :class:`JournalInUse` when another session does)."""
        lock = FileLock(str(_lock_path(self.path)), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise JournalInUse(f"{self.path.name} is being written by another LungLens window that is still "
                               "running: restore or discard those edits there.") from None
        self._lock = lock

    @classmethod
    def for_scan(cls, source: Optional[str | os.PathLike], geometry: Geometry,
                 open_with: Optional[dict[str, Any]] = None) -> "Journal":
        return cls(journal_path(scan_key(source, geometry)), open_with)

    @property
    def started(self) -> bool:
        return self._fh is not None

    def start(self, initial: Optional[np.ndarray], geometry: Optional[Geometry] = None,
              source: Optional[str] = None, shape: Optional[tuple[int, int, int]] = None) -> None:
        """Create (truncate) the file and write the ``open`` record with the starting labels.

        ``initial=None`` means all-zero labels of ``shape`` (nothing to store).
        """
        self.close()
        if initial is None and shape is None:
            raise ValueError("give the initial labels or, for empty labels, their shape")
        shape = tuple(initial.shape) if initial is not None else tuple(shape)  # type: ignore[arg-type]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._fh = open(self.path, "wb")
        header: dict[str, Any] = {"type": "open", "version": VERSION, "shape": list(shape),
                                  "geometry": geometry.to_dict() if geometry is not None else None,
                                  "source": source, "open_with": self.open_with, "source_stamp": source_stamp(source)}
        payload = b""
        if initial is not None and initial.any():
            header["initial"] = "payload"
            payload = zlib.compress(np.ascontiguousarray(initial, dtype=np.uint8), 1)  # no bytes copy (78 MB)
        else:
            header["initial"] = "zeros"
        self._write(header, payload)

    def resume(self) -> None:
        """Keep appending to an existing journal (after a restore); :class:`JournalInUse` when another
        running session is writing it."""
        self.close()
        self._take_lock()
        try:
            if not journal_header(self.path):  # discarded (or set aside) by another window before the lock
                raise CorruptFileError(f"{self.path.name} is gone or was replaced (another LungLens window "
                                       "discarded it meanwhile): nothing was restored from it.")
            self._fh = open(self.path, "ab")
        except (OSError, CorruptFileError):
            self.close()
            raise

    def append_step(self, step: Step) -> None:
        meta, payload = _encode_deltas([step.delta, step.baseline])
        self._write({"type": "step", "name": step.name, "kind": step.kind, "deltas": meta}, payload)

    def append_baseline(self, before: np.ndarray, after: np.ndarray) -> None:
        """Record a change of the hand-edit reference from ``before`` to ``after`` that is no
        undo step: the provenance a label file brought (which voxels a person edited), adopted
        after the labels opened. Nothing is written when they are equal."""
        delta = Delta.between(before, after)
        if delta is not None:
            meta, payload = _encode_deltas([delta])
            self._write({"type": "baseline", "deltas": meta}, payload)

    def append_undo(self) -> None:
        self._write({"type": "undo"})

    def append_redo(self) -> None:
        self._write({"type": "redo"})

    def mark_saved(self, target: Optional[str] = None) -> None:
        """Record that the current labels were saved; they are no longer "unsaved edits"."""
        if self._fh is not None:
            self._write({"type": "saved", "target": target})

    def discard(self) -> None:
        """Close and delete the journal file."""
        self.close()
        if journal_in_use(self.path):  # another window resumed it meanwhile: its edits, not ours to delete
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        _remove_lock(self.path)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _write(self, header: dict[str, Any], payload: bytes = b"") -> None:
        if self._fh is None:
            raise RuntimeError("journal not started")
        head = json.dumps(header, separators=(",", ":")).encode("utf-8")
        body = head + payload
        self._fh.write(_HEAD.pack(MAGIC, len(head), len(payload), zlib.crc32(body)) + body)
        self._fh.flush()
        os.fsync(self._fh.fileno())


# ---------------------------------------------------------------- replay
@dataclass
class Replay:
    """What a journal says about a session.

    ``initial`` is the array the session started from; ``entries`` the records
    after ``open`` in order, as ``("step", Step)``, ``("undo", None)``,
    ``("redo", None)``, ``("saved", None)`` or ``("baseline", Step)`` (a change of the
    hand-edit reference only, in the step's ``baseline``; not an edit, not undoable). The one replay of the entries is
    :meth:`engine.editing.editor.LabelEditor.replay`.
    """

    shape: tuple[int, int, int]
    geometry: Optional[Geometry]
    source: Optional[str]
    initial: np.ndarray
    entries: list[tuple[str, Optional[Step]]] = field(default_factory=list)
    #: records lost to damage in the middle of the file (their place holds a ``("lost", None)`` entry)
    damaged: int = 0
    name: str = ""

    @property
    def recovered_steps(self) -> int:
        return sum(1 for kind, _ in self.entries if kind == "step")

    def problem(self) -> str:
        """A sentence for the user when records were lost, else ``""``."""
        if not self.damaged:
            return ""
        return (f"The edit journal {self.name} is damaged: {self.damaged} record(s) could not be read; "
                f"{self.recovered_steps} step(s) were recovered. The voxels changed by the lost record(s) may "
                "differ from your last edit: check the labels before saving.")

    @property
    def unsaved(self) -> bool:
        """True when a step, undo or redo follows the last ``saved`` mark."""
        for kind, _ in reversed(self.entries):
            if kind == "baseline":  # provenance adopted from a file: not an edit
                continue
            if kind == "saved":
                return False
            return True
        return False


def undecodable(name: str, exc: BaseException) -> str:
    return f"{name}: its first record cannot be decoded ({type(exc).__name__}: {exc}); nothing can be restored from it."


def opened_records(path: str | os.PathLike) -> tuple[str, list[Optional[Record]], dict[str, Any],
                                                      tuple[int, int, int]]:
    """``(file name, records, open header, shape)`` of a journal whose first record is an intact ``open`` record
    that gives a shape; :class:`CorruptFileError` otherwise (nothing can be restored from it)."""
    name = Path(path).name
    try:
        records, _torn = scan_records(path)
    except OSError as exc:
        raise CorruptFileError(f"{name} cannot be read: {exc.strerror or exc}.") from exc
    if not records or records[0] is None or records[0].type != "open":
        raise CorruptFileError(f"{name} is not a LungLens journal or its first record is damaged.")
    h = records[0].header
    try:
        shape = tuple(int(s) for s in h["shape"])
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape {shape}")
    except Exception as exc:  # noqa: BLE001 - a valid CRC over a bad header
        raise CorruptFileError(undecodable(name, exc)) from exc
    return name, records, h, shape  # type: ignore[return-value]


def read_journal(path: str | os.PathLike) -> Replay:
    """Decode a journal file record by record (see the module doc).

    Raises
    ------
    CorruptFileError
        The file is unreadable or has no intact ``open`` record: nothing can be restored.
    """
    name, records, h, shape = opened_records(path)
    try:
        if h.get("initial") == "payload":
            initial = np.frombuffer(zlib.decompress(records[0].payload), dtype=np.uint8).reshape(shape).copy()
        else:
            initial = np.zeros(shape, dtype=np.uint8)
        geometry = Geometry.from_dict(h["geometry"]) if h.get("geometry") else None
    except Exception as exc:  # noqa: BLE001 - a valid CRC over a bad payload
        raise CorruptFileError(undecodable(name, exc)) from exc
    rep = Replay(shape, geometry, h.get("source"), initial, name=name)  # type: ignore[arg-type]
    for rec in records[1:]:
        if rec is None:
            rep.damaged += 1
            rep.entries.append(("lost", None))
            continue
        try:
            if rec.type == "step":
                deltas = _decode_deltas(rec.header["deltas"], rec.payload)
                for d in deltas:
                    if d is not None:
                        _check_delta(d, shape)  # type: ignore[arg-type]
                step = Step(str(rec.header.get("name", "")), deltas[0],  # type: ignore[arg-type]
                            str(rec.header.get("kind", "person")), deltas[1] if len(deltas) > 1 else None)
                rep.entries.append(("step", step))
            elif rec.type == "baseline":
                (d,) = _decode_deltas(rec.header["deltas"], rec.payload)
                if d is None:
                    raise ValueError("baseline record without a delta")
                _check_delta(d, shape)  # type: ignore[arg-type]
                empty = Delta((0, 0, 0, 0, 0, 0), np.zeros(0, np.uint8), np.zeros(0, np.uint8), np.zeros(0, np.uint8))
                rep.entries.append(("baseline", Step("Provenance from the label file", empty, "load", d)))
            elif rec.type in ("undo", "redo", "saved"):
                rep.entries.append((rec.type, None))
        except Exception:  # noqa: BLE001 - a valid CRC over a bad payload: the record is damaged
            rep.damaged += 1
            rep.entries.append(("lost", None))
    return rep


def _check_delta(d: Delta, shape: tuple[int, int, int]) -> None:
    """Raise ValueError when a decoded delta does not fit the label array."""
    z0, z1, y0, y1, x0, x1 = d.box
    if not (0 <= z0 <= z1 <= shape[0] and 0 <= y0 <= y1 <= shape[1] and 0 <= x0 <= x1 <= shape[2]):
        raise ValueError(f"box {d.box} outside {shape}")
    n = int(np.prod(d.box_shape))
    if d.packed_mask.size != (n + 7) // 8 or d.old.size != d.new.size:
        raise ValueError("delta sizes do not match its box")
    if int(np.unpackbits(d.packed_mask, count=n).sum()) != d.old.size:
        raise ValueError("delta mask does not match its values")
