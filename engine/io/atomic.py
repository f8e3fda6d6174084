"""Durable, atomic writes and the clean-up of temporary files an interrupted export left behind.

Every export writes ``.lunglens-tmp-<pid>-<random>-<name>`` beside its target,
``fsync``-s it (each file of a folder, then the folder), renames it over the target
with ``os.replace`` and ``fsync``-s the target's folder, so that after a power cut
the target is either the old file or the complete new one.

A process killed mid-export leaves its temporary file behind. The folder of every
temporary file is remembered in ``<data dir>/temp_folders.txt``; at the next start
the application calls :func:`clean_stale_temps`, which removes the temporary files
whose writing process is gone (and any older than a day).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterable, Optional

__all__ = ["temp_path", "replace_durably", "fsync_tree", "fsync_dir", "clean_stale_temps", "TEMP_PREFIX"]

TEMP_PREFIX = ".lunglens-tmp-"
_PID = re.compile(rf"^{re.escape(TEMP_PREFIX)}(\d+)-[0-9a-f]+-")
_MAX_AGE_S = 24 * 3600
_REGISTRY_MAX = 200


def _registry() -> Path:
    from ..userdata import data_dir
    return data_dir() / "temp_folders.txt"


def _remember(folder: Path) -> None:
    try:
        reg = _registry()
        folder_s = str(folder.resolve())
        known = reg.read_text(encoding="utf-8").splitlines() if reg.is_file() else []
        if folder_s in known:
            return
        reg.parent.mkdir(parents=True, exist_ok=True)
        known = (known + [folder_s])[-_REGISTRY_MAX:]
        reg.write_text("\n".join(known) + "\n", encoding="utf-8")
    except OSError:
        pass  # remembering is a convenience; the export itself must not fail for it


def temp_path(target: Path) -> Path:
    """A fresh temporary name beside ``target`` (its folder is remembered for clean-up)."""
    _remember(target.parent)
    return target.parent / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{target.name}"


def fsync_dir(folder: Path) -> None:
    """``fsync`` a folder so that a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """``fsync`` a file, or every file of a folder and then the folder."""
    if path.is_dir():
        for p in path.iterdir():
            if p.is_file():
                fsync_tree(p)
        fsync_dir(path)
        return
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def replace_durably(tmp: Path, target: Path) -> None:
    """fsync ``tmp``, rename it over ``target``, fsync the folder."""
    fsync_tree(tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def clean_stale_temps(folders: Optional[Iterable[str | os.PathLike]] = None) -> list[Path]:
    """Remove the temporary files of interrupted exports; return what was removed.

    Looks in the remembered folders (and ``folders``); a temporary file is stale when
    the process that wrote it no longer runs, or when it is over a day old. Meant to be
    called once at application start (cheap: one listing per folder).
    """
    reg = _registry()
    todo: list[Path] = []
    if reg.is_file():
        try:
            todo += [Path(line) for line in reg.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError:
            pass
    todo += [Path(f) for f in folders or ()]
    removed: list[Path] = []
    now = time.time()
    keep: list[str] = []
    for folder in dict.fromkeys(todo):
        try:
            entries = [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]
        except OSError:
            continue
        pending = False
        for p in entries:
            m = _PID.match(p.name)
            try:
                age = now - p.lstat().st_mtime
            except OSError:
                continue
            if (m and not _alive(int(m.group(1)))) or age > _MAX_AGE_S:
                try:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                    removed.append(p)
                except OSError:
                    pending = True
            else:
                pending = True
        if pending:  # a live export (or an undeletable file): look again next time
            keep.append(str(folder))
    try:
        if reg.is_file():
            reg.write_text("".join(f"{k}\n" for k in keep if Path(k).is_dir()), encoding="utf-8")
    except OSError:
        pass
    return removed
