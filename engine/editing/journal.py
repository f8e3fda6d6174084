"""Crash-safe journal of label edits, one file per scan in the application data folder.

File format: a sequence of records, each

``b"LLJR" | header length (u32) | payload length (u32) | crc32 (u32) | header | payload``

with little-endian integers, a UTF-8 JSON header and a zlib-compressed payload;
the CRC covers header and payload. Every record is flushed and ``fsync``-ed
before :meth:`Journal.append_step` returns, so a committed step survives a crash
or a kill. A torn or damaged last record (the process died while writing it) is
ignored on replay.

Record types: ``open`` (first record: shape, geometry, source, and the labels the
session started from when they were not all zero), ``step`` (a
:class:`~engine.editing.history.Delta`, its name and kind), ``undo``, ``redo`` and
``saved`` (the labels were exported; edits before it are not "unsaved").

Each editing session writes its own file,
``<data dir>/journals/<scan key>/<UTC time>-<pid>.journal``, so a new session of a
scan never touches the journal of an earlier one that may still be restored
(:func:`unsaved_journals` lists those, newest first). The data dir is
``$LUNGLENS_DATA_DIR`` when set, else the platform's user data folder
(``$XDG_DATA_HOME/LungLens`` on Linux, ``%LOCALAPPDATA%\\LungLens`` on Windows,
``~/Library/Application Support/LungLens`` on macOS) -- never beside the scan.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Optional

import numpy as np

from ..errors import CorruptFileError
from ..types import Geometry
from .history import Delta, Step

MAGIC = b"LLJR"
_HEAD = struct.Struct("<4sIII")
VERSION = 1


# ---------------------------------------------------------------- locations
def data_dir() -> Path:
    """The LungLens user data folder (``$LUNGLENS_DATA_DIR`` overrides it)."""
    env = os.environ.get("LUNGLENS_DATA_DIR")
    if env:
        return Path(env)
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "LungLens"


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


def session_journals(key: str) -> list[Path]:
    """Every journal file of the scan named ``key``, newest first."""
    folder = journal_dir(key)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.journal"), key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def all_unsaved_journals() -> list[Path]:
    """Journals of every scan that hold unsaved edits, newest first (for a restore offer at start-up)."""
    root = data_dir() / "journals"
    if not root.is_dir():
        return []
    found = [p for p in root.glob("*/*.journal") if has_unsaved_edits(p)]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def journal_source(path: str | os.PathLike) -> Optional[str]:
    """The scan path recorded in a journal's ``open`` record (None when unknown or unreadable)."""
    try:
        records = read_records(path)
    except OSError:
        return None
    if not records or records[0].type != "open":
        return None
    src = records[0].header.get("source")
    return str(src) if src else None


def unsaved_journals(key: str) -> list[Path]:
    """The journals of the scan named ``key`` that hold unsaved edits, newest first."""
    return [p for p in session_journals(key) if has_unsaved_edits(p)]


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


def read_records(path: str | os.PathLike) -> list[Record]:
    """All intact records of a journal, stopping at the first torn or damaged one."""
    data = Path(path).read_bytes()
    out: list[Record] = []
    pos = 0
    while pos + _HEAD.size <= len(data):
        magic, n_head, n_pay, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + n_head + n_pay
        if magic != MAGIC or end > len(data):
            break
        body = data[pos + _HEAD.size:end]
        if zlib.crc32(body) != crc:
            break
        try:
            header = json.loads(body[:n_head].decode("utf-8"))
        except ValueError:
            break
        out.append(Record(str(header.get("type")), header, bytes(body[n_head:])))
        pos = end
    return out


# ---------------------------------------------------------------- writer
class Journal:
    """Append-only, fsync-ed journal of one editing session (see the module docstring).

    Nothing is written until :meth:`start`; the :class:`~engine.editing.editor.LabelEditor`
    starts it at the first committed step, so merely viewing a scan leaves no file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fh: Optional[BinaryIO] = None

    @classmethod
    def for_scan(cls, source: Optional[str | os.PathLike], geometry: Geometry) -> "Journal":
        return cls(journal_path(scan_key(source, geometry)))

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
        self._fh = open(self.path, "wb")
        header: dict[str, Any] = {"type": "open", "version": VERSION, "shape": list(shape),
                                  "geometry": geometry.to_dict() if geometry is not None else None,
                                  "source": source}
        payload = b""
        if initial is not None and initial.any():
            header["initial"] = "payload"
            payload = zlib.compress(np.ascontiguousarray(initial, dtype=np.uint8).tobytes(), 1)
        else:
            header["initial"] = "zeros"
        self._write(header, payload)

    def resume(self) -> None:
        """Keep appending to an existing journal (after a restore)."""
        self.close()
        self._fh = open(self.path, "ab")

    def append_step(self, step: Step) -> None:
        meta, payload = _encode_deltas([step.delta, step.baseline])
        self._write({"type": "step", "name": step.name, "kind": step.kind, "deltas": meta}, payload)

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
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

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
    ``("redo", None)`` or ``("saved", None)``. The one replay of the entries is
    :meth:`engine.editing.editor.LabelEditor.replay`.
    """

    shape: tuple[int, int, int]
    geometry: Optional[Geometry]
    source: Optional[str]
    initial: np.ndarray
    entries: list[tuple[str, Optional[Step]]] = field(default_factory=list)

    @property
    def unsaved(self) -> bool:
        """True when a step, undo or redo follows the last ``saved`` mark."""
        for kind, _ in reversed(self.entries):
            if kind == "saved":
                return False
            return True
        return False


def read_journal(path: str | os.PathLike) -> Replay:
    """Decode a journal file. Raises :class:`CorruptFileError` when it has no intact ``open`` record."""
    records = read_records(path)
    if not records or records[0].type != "open":
        raise CorruptFileError(f"{path} is not a LungLens journal or its first record is damaged.")
    h = records[0].header
    shape = tuple(int(s) for s in h["shape"])
    if h.get("initial") == "payload":
        initial = np.frombuffer(zlib.decompress(records[0].payload), dtype=np.uint8).reshape(shape).copy()
    else:
        initial = np.zeros(shape, dtype=np.uint8)
    geometry = Geometry.from_dict(h["geometry"]) if h.get("geometry") else None
    rep = Replay(shape, geometry, h.get("source"), initial)  # type: ignore[arg-type]
    for rec in records[1:]:
        if rec.type == "step":
            deltas = _decode_deltas(rec.header["deltas"], rec.payload)
            step = Step(rec.header.get("name", ""), deltas[0],  # type: ignore[arg-type]
                        rec.header.get("kind", "person"), deltas[1] if len(deltas) > 1 else None)
            rep.entries.append(("step", step))
        elif rec.type in ("undo", "redo", "saved"):
            rep.entries.append((rec.type, None))
    return rep


def tidy_journals(key: str, keep: set, min_age_s: float = 3600.0) -> list[Path]:
    """Delete the journals of scan ``key`` that hold nothing unsaved and were left over ``min_age_s`` ago.

    The retention policy: a session that is still running elsewhere touches its journal at
    every edit, so only old ones go; ``keep`` are never deleted. Returns the deleted paths.
    """
    now = time.time()
    gone = []
    for p in session_journals(key):
        try:
            if p not in keep and now - p.stat().st_mtime > min_age_s and not has_unsaved_edits(p):
                p.unlink()
                gone.append(p)
        except OSError:
            pass
    return gone


def has_unsaved_edits(path: str | os.PathLike) -> bool:
    """True when the journal exists, is readable and holds edits made after its last save."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        return read_journal(p).unsaved
    except CorruptFileError:
        return False
