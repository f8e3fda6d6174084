"""The retrieved-series cache: its size, its use, and pruning it.

Retrieved series stay in ``ROOT/<StudyUID>/<SeriesUID>/`` so that opening one again is
quick; left alone the folder would grow with every study read, on a reading-room machine,
with patient data in it. :func:`prune` removes the least recently used series until the
cache fits its budget (``LUNGLENS_PACS_CACHE_GB``, default :data:`DEFAULT_BUDGET_GB`), and
staging folders that a crash left behind. "Used" is the manifest's modification time:
retrieving a series writes it, and :func:`touch` renews it when a cached copy is opened.

A series being read or retrieved right now is passed in ``keep`` and never removed; a series
removed by mistake costs only a new retrieval.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

#: file written into each retrieved series folder (see :mod:`engine.pacs.client`)
MANIFEST = ".lunglens-pacs.json"
#: cache budget when ``LUNGLENS_PACS_CACHE_GB`` is not set (about 40 chest CT series of 500 slices)
DEFAULT_BUDGET_GB = 10.0
#: staging folders (``.<series>.partial-*``, ``.<series>.old-*``) older than this are left-overs
STALE_STAGING_S = 6 * 3600


@dataclass(frozen=True)
class CachedSeries:
    """One complete series folder of the cache: its path, size in bytes and last use (epoch s)."""

    path: Path
    bytes: int
    used: float


def budget_bytes() -> int:
    """The cache budget in bytes: ``LUNGLENS_PACS_CACHE_GB`` (a number; 0 keeps nothing but
    what is in use) or :data:`DEFAULT_BUDGET_GB`. An unreadable value falls back to the default."""
    text = os.environ.get("LUNGLENS_PACS_CACHE_GB", "").strip()
    try:
        gb = float(text) if text else DEFAULT_BUDGET_GB
    except ValueError:
        log.warning("LUNGLENS_PACS_CACHE_GB=%r is not a number: using %s GB", text, DEFAULT_BUDGET_GB)
        gb = DEFAULT_BUDGET_GB
    return max(0, int(gb * 1024 ** 3))


def _folder_bytes(path: Path) -> int:
    total = 0
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            total += entry.stat(follow_symlinks=False).st_size
    return total


def series_folders(root: Path) -> list[CachedSeries]:
    """The complete series folders under ``root`` (those holding a manifest), oldest use first."""
    out = []
    if not root.is_dir():
        return out
    for study in root.iterdir():
        if not study.is_dir() or study.name.startswith("."):
            continue
        for series in study.iterdir():
            manifest = series / MANIFEST
            if series.name.startswith(".") or not manifest.is_file():
                continue
            out.append(CachedSeries(series, _folder_bytes(series), manifest.stat().st_mtime))
    out.sort(key=lambda s: (s.used, str(s.path)))
    return out


def touch(series_dir: str | Path) -> None:
    """Mark a cached series as just used (opening a cached copy counts as a use)."""
    manifest = Path(series_dir) / MANIFEST
    try:
        os.utime(manifest)
    except OSError:  # read-only cache or a folder without manifest: pruning order only
        pass


def prune(root: str | Path, budget: int | None = None, keep: Iterable[str | Path] = (),
          now: float | None = None) -> list[Path]:
    """Remove least recently used series until the cache holds at most ``budget`` bytes.

    Parameters
    ----------
    root
        The cache folder (``default_cache_dir()`` or the one the user chose).
    budget
        Bytes to keep at most (default :func:`budget_bytes`).
    keep
        Series folders never removed (the one being opened).
    now
        The present time (epoch seconds), for the age of staging left-overs.

    Returns
    -------
    list of Path
        The folders removed, oldest use first (staging left-overs included).
    """
    root = Path(root)
    budget = budget_bytes() if budget is None else max(0, int(budget))
    now = time.time() if now is None else now
    kept = {Path(p).resolve() for p in keep}
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for study in root.iterdir():  # left-overs of a crash: staging and replaced folders
        if not study.is_dir():
            continue
        for entry in study.iterdir():
            name = entry.name
            if entry.is_dir() and name.startswith(".") and (".partial-" in name or ".old-" in name):
                if now - entry.stat().st_mtime > STALE_STAGING_S:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
    folders = series_folders(root)
    total = sum(s.bytes for s in folders)
    for s in folders:
        if total <= budget:
            break
        if s.path.resolve() in kept:
            continue
        shutil.rmtree(s.path, ignore_errors=True)
        if not s.path.exists():
            total -= s.bytes
            removed.append(s.path)
            try:
                s.path.parent.rmdir()  # the study folder, when this was its last series
            except OSError:
                pass
    if removed:
        log.info("PACS cache %s: removed %d folder(s), %.1f MB kept (budget %.1f MB)", root, len(removed),
                 total / 1024 ** 2, budget / 1024 ** 2)
    return removed
