"""Where LungLens keeps its per-user files (edit journals, the temporary-folder register)
and its caches (exported ONNX models, retrieved PACS series).

Two functions, :func:`data_dir` and :func:`cache_dir`, in the lowest layer so that readers and writers
(``engine.io``) and the editor (``engine.editing``) agree on the folder without importing
each other.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


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


def cache_dir(kind: str) -> Path:
    """The LungLens cache folder for ``kind`` (``"onnx"``, ``"pacs"``): files that can be made again.

    ``$LUNGLENS_CACHE_DIR/<kind>`` when set, else the platform's cache folder
    (``%LOCALAPPDATA%\\LungLens\\Cache``, ``~/Library/Caches/LungLens``,
    ``$XDG_CACHE_HOME/LungLens`` or ``~/.cache/LungLens``) plus ``kind``.
    """
    env = os.environ.get("LUNGLENS_CACHE_DIR")
    if env:
        return Path(env).expanduser() / kind
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "LungLens" / "Cache"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "LungLens"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "LungLens"
    return base / kind
