"""Labels from a journal, by path or scan key (:func:`recover`): the command line's and the tests' restore."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from .editor import LabelEditor
from .journal import read_journal
from .journals import unsaved_journals


def recover(key_or_path: str | os.PathLike) -> np.ndarray:
    """Labels voxel-identical to the last committed step of a journal.

    ``key_or_path`` is a journal file path, or a scan key (:func:`scan_key`): then the
    newest journal of that scan with unsaved edits is read.
    """
    p = Path(key_or_path)
    if not p.is_file():
        found = unsaved_journals(str(key_or_path))
        if not found:
            raise DataError(f"No unsaved edits are recorded for scan {key_or_path}.")
        p = found[0]
    return LabelEditor.replay(read_journal(p)).labels
