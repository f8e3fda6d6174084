"""The journals on disk: which hold unsaved edits, which are damaged, which can go (:func:`tidy_journals`).

These questions are asked at start-up and when a scan opens, on the GUI thread, of every journal in the
data folder; so they read each journal's records and their headers only (:func:`outline_journal`), not the
voxels: decompressing the starting labels and every step of three crashed 300-slice sessions froze the
window 0.8-1.6 s at start-up (QA pass). A restore reads the one journal it restores whole
(:func:`engine.editing.journal.read_journal`).
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import CorruptFileError
from ..userdata import data_dir
from .journal import (Replay, _remove_lock, journal_dir, journal_header, journal_in_use, opened_records, read_journal,
                      undecodable)

__all__ = ["outline_journal", "has_unsaved_edits", "journal_problems", "all_unsaved_journals", "unsaved_journals",
           "unsaved_journals_where", "session_journals", "tidy_journals"]


def outline_journal(path: str | os.PathLike) -> Replay:
    """What :func:`~engine.editing.journal.read_journal` says of a journal's records (kinds, damage, unsaved
    edits), without decoding their voxels: the entries hold no steps and ``initial`` is empty.

    Raises :class:`CorruptFileError` as ``read_journal`` does when the first record is not an intact ``open``
    record or its header does not give a shape; a payload whose CRC is intact is taken as intact.
    """
    name, records, h, shape = opened_records(path)
    if h.get("initial") == "payload":
        try:
            zlib.decompressobj().decompress(records[0].payload[:1024])  # a zlib stream, not its voxels
        except zlib.error as exc:
            raise CorruptFileError(undecodable(name, exc)) from exc
    rep = Replay(shape, None, h.get("source"), np.zeros(0, np.uint8), name=name)  # type: ignore[arg-type]
    for rec in records[1:]:
        if rec is None:
            rep.damaged += 1
            rep.entries.append(("lost", None))
        elif rec.type in ("step", "baseline", "undo", "redo", "saved"):
            rep.entries.append((rec.type, None))
    return rep


def session_journals(key: str) -> list[Path]:
    """Every journal file of the scan named ``key``, newest first."""
    folder = journal_dir(key)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.journal"), key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def all_unsaved_journals() -> list[Path]:
    """Journals of every scan that hold unsaved edits, newest first (for a restore offer at start-up).

    One unreadable or damaged journal never hides the others (it is left out here; see
    :func:`journal_problems`).
    """
    root = data_dir() / "journals"
    if not root.is_dir():
        return []
    found = [p for p in root.glob("*/*.journal") if not journal_in_use(p) and has_unsaved_edits(p)]
    return sorted(found, key=lambda p: (_mtime(p), p.name), reverse=True)


def unsaved_journals_where(keep: Callable[[dict[str, Any]], bool]) -> list[Path]:
    """Like :func:`all_unsaved_journals`, of the journals whose ``open`` header passes ``keep`` only: the headers
    are read first (the first record), whole journals only for those (reading every journal whole took 1.6-2.2 s
    at a scan's open with a few crashed sessions on disk)."""
    root = data_dir() / "journals"
    if not root.is_dir():
        return []
    found = [p for p in root.glob("*/*.journal")
             if keep(journal_header(p)) and not journal_in_use(p) and has_unsaved_edits(p)]
    return sorted(found, key=lambda p: (_mtime(p), p.name), reverse=True)


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return 0


def journal_problems() -> dict[Path, str]:
    """Journals under the data folder that are damaged, with a sentence for the user each.

    A journal whose first record is unreadable holds nothing to restore; one with
    damaged records in the middle is restorable in part (its sentence says how much).
    """
    root = data_dir() / "journals"
    out: dict[Path, str] = {}
    if not root.is_dir():
        return out
    for p in root.glob("*/*.journal"):
        try:
            rep = outline_journal(p)
        except Exception as exc:  # noqa: BLE001 - any damage is reported, never raised
            out[p] = f"{p.name} cannot be restored: {exc}"
            continue
        if rep.problem():
            out[p] = rep.problem()
    return out


def unsaved_journals(key: str) -> list[Path]:
    """The journals of the scan named ``key`` that hold unsaved edits, newest first; not those a running
    session is writing (:func:`journal_in_use`: another window's live edits are not "left unsaved")."""
    return [p for p in session_journals(key) if not journal_in_use(p) and has_unsaved_edits(p)]


def tidy_journals(key: str, keep: set, min_age_s: float = 3600.0) -> list[Path]:
    """Delete the journals of scan ``key`` that hold nothing unsaved and were left over ``min_age_s`` ago.

    The retention policy: ``keep`` and journals a running session holds (:func:`journal_in_use`, an idle
    window's included) are never deleted. Returns the deleted paths.
    """
    now = time.time()
    gone = []
    for p in session_journals(key):
        try:
            if (p not in keep and now - p.stat().st_mtime > min_age_s and not journal_in_use(p)
                    and not has_unsaved_edits(p) and not _unsaved_when_read_whole(p)):
                p.unlink()
                _remove_lock(p)
                gone.append(p)
        except OSError:
            pass
    folder = journal_dir(key)
    for lock in folder.glob("*.journal.lock") if folder.is_dir() else ():  # of journals gone (discarded, set aside)
        journal = lock.with_name(lock.name[:-len(".lock")])
        if not journal.exists() and not journal_in_use(journal):
            _remove_lock(journal)
    return gone


def _unsaved_when_read_whole(path: Path) -> bool:
    """Before a journal is deleted: its unsaved edits as :func:`~engine.editing.journal.read_journal` decodes them
    (a record with an intact checksum over a bad payload is lost, and so unsaved, there; the outline cannot
    tell). Unreadable as a whole: nothing to restore, as :func:`has_unsaved_edits` says."""
    try:
        return read_journal(path).unsaved
    except Exception:  # noqa: BLE001 - as has_unsaved_edits
        return False


def has_unsaved_edits(path: str | os.PathLike) -> bool:
    """True when the journal exists, is readable and holds edits made after its last save."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        return outline_journal(p).unsaved
    except Exception:  # noqa: BLE001 - one bad journal must never hide the others
        return False
