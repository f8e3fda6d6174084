"""Undo/redo history of bounding-box deltas, bounded in bytes.

A :class:`Delta` stores only what a step changed: its box, the changed-voxel mask
(bit-packed) and the old and new values of those voxels. A :class:`Step` is a
named delta ("Brush GGO", "AI segmentation"). :class:`History` keeps an undo and
a redo stack; when the steps held in memory exceed ``max_bytes`` it drops the
oldest steps, but always keeps at least ``min_steps`` (as ITK-SNAP's
UndoDataManager does). The budget is a real bound on memory: when the kept steps
alone are over it (ten full-volume fills of a 1000-slice scan), the oldest of them
are moved to disk (memory-mapped files in a private temporary folder, removed with
the history), newest last, so undo still works and memory stays within
``max_bytes`` plus the one step being made.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import time
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_MIN_STEPS = 10

_ids = itertools.count(1)


@dataclass(frozen=True)
class Delta:
    """The voxels one step changed.

    Attributes
    ----------
    box
        ``(z0, z1, y0, y1, x0, x1)``: half-open index ranges of the bounding box.
    packed_mask
        ``np.packbits`` of the box-shaped changed-voxel mask (C order).
    old, new
        ``uint8`` values of the changed voxels before and after, in C order.
    """

    box: tuple[int, int, int, int, int, int]
    packed_mask: np.ndarray
    old: np.ndarray
    new: np.ndarray

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        b = self.box
        return (slice(b[0], b[1]), slice(b[2], b[3]), slice(b[4], b[5]))

    @property
    def box_shape(self) -> tuple[int, int, int]:
        b = self.box
        return (b[1] - b[0], b[3] - b[2], b[5] - b[4])

    @property
    def count(self) -> int:
        return int(self.old.size)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (0 for the arrays of a delta moved to disk)."""
        return sum(int(a.nbytes) for a in (self.packed_mask, self.old, self.new)
                   if not isinstance(a, np.memmap)) + 64

    @property
    def on_disk(self) -> bool:
        return isinstance(self.old, np.memmap)

    def spilled(self, folder: Path) -> "Delta":
        """The same delta with its arrays in memory-mapped files under ``folder``."""
        if self.on_disk:
            return self
        arrays = []
        for name, a in (("mask", self.packed_mask), ("old", self.old), ("new", self.new)):
            if a.size == 0:
                arrays.append(a)
                continue
            fd, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".u8", dir=folder)
            with open(fd, "wb") as f:
                np.ascontiguousarray(a).tofile(f)  # no in-memory copy of the bytes
            arrays.append(np.memmap(path, dtype=np.uint8, mode="r", shape=a.shape))
        return Delta(self.box, arrays[0], arrays[1], arrays[2])

    def mask(self) -> np.ndarray:
        """The box-shaped boolean mask of changed voxels."""
        n = int(np.prod(self.box_shape))
        return np.unpackbits(self.packed_mask, count=n).view(bool).reshape(self.box_shape)

    def apply(self, labels: np.ndarray, forward: bool = True, mask: Optional[np.ndarray] = None) -> None:
        """Write the new (``forward``) or old values into ``labels`` in place (``mask``: :meth:`mask`, if known)."""
        view = labels[self.slices]
        view[self.mask() if mask is None else mask] = self.new if forward else self.old

    @classmethod
    def from_box(cls, box: tuple[slice, slice, slice], before: np.ndarray,
                 after: np.ndarray) -> Optional["Delta"]:
        """Delta between two box-shaped arrays; ``None`` when nothing changed."""
        changed = before != after
        if not changed.any():
            return None
        # shrink to the changed voxels' own box
        idx = [np.flatnonzero(changed.any(axis=tuple(j for j in range(3) if j != i))) for i in range(3)]
        sub = tuple(slice(int(ix[0]), int(ix[-1]) + 1) for ix in idx)
        changed = changed[sub]
        b = tuple(v for s, o in zip(sub, box) for v in (o.start + s.start, o.start + s.stop))
        return cls(box=b,  # type: ignore[arg-type]
                   packed_mask=np.packbits(changed.ravel()),
                   old=np.ascontiguousarray(before[sub][changed], dtype=np.uint8),
                   new=np.ascontiguousarray(after[sub][changed], dtype=np.uint8))

    @classmethod
    def between(cls, before: Optional[np.ndarray], after: np.ndarray) -> Optional["Delta"]:
        """Delta between two whole label arrays of the same shape (``before=None``: all zero, not allocated)."""
        full = tuple(slice(0, n) for n in after.shape)
        if before is None:
            return cls.from_box(full, np.broadcast_to(np.uint8(0), after.shape), after)  # type: ignore[arg-type]
        return cls.from_box(full, before, after)  # type: ignore[arg-type]


@dataclass
class Step:
    """One undoable step: a named :class:`Delta`.

    ``kind`` is ``"person"`` for a hand edit, ``"ai"`` for an accepted model
    result and ``"load"`` for labels opened from a file; ``baseline`` (AI and load
    steps) is the delta of the "last AI result" reference that tracks hand edits, so
    undoing an AI step restores it too.
    """

    name: str
    delta: Delta
    kind: str = "person"
    baseline: Optional[Delta] = None
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def nbytes(self) -> int:
        """Bytes held in memory."""
        return self.delta.nbytes + (self.baseline.nbytes if self.baseline is not None else 0)

    @property
    def on_disk(self) -> bool:
        return self.delta.on_disk

    def spill(self, folder: Path) -> None:
        """Move the step's arrays to memory-mapped files in ``folder``."""
        self.delta = self.delta.spilled(folder)
        if self.baseline is not None:
            self.baseline = self.baseline.spilled(folder)


class History:
    """Undo and redo stacks of :class:`Step`, bounded by ``max_bytes``.

    Parameters
    ----------
    max_bytes
        Budget for the stored steps (undo + redo); oldest undo steps go first.
    min_steps
        Number of most recent undo steps always kept, even over budget.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, min_steps: int = DEFAULT_MIN_STEPS) -> None:
        self.max_bytes = int(max_bytes)
        self.min_steps = int(min_steps)
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self.evicted = 0  #: number of steps dropped to stay within budget
        self._evicted_ids: set[int] = set()  # done steps dropped from the undo stack: done for good
        self.spilled = 0  #: number of steps moved to disk to stay within budget
        #: why steps could not be moved to disk (a full or unwritable temporary folder): they stay in
        #: memory, over the budget; the edits themselves are not affected. ``None`` when all went well.
        self.spill_error: Optional[str] = None
        self._folder: Optional[Path] = None
        self._finalizer: Optional[weakref.finalize] = None

    # -- queries --------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes the steps hold in memory (steps moved to disk count 0)."""
        return sum(s.nbytes for s in self._undo) + sum(s.nbytes for s in self._redo)

    @property
    def steps_on_disk(self) -> int:
        return sum(s.on_disk for s in self._undo) + sum(s.on_disk for s in self._redo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_name(self) -> Optional[str]:
        return self._undo[-1].name if self._undo else None

    @property
    def redo_name(self) -> Optional[str]:
        return self._redo[-1].name if self._redo else None

    def __len__(self) -> int:
        return len(self._undo)

    @property
    def undo_steps(self) -> tuple[Step, ...]:
        return tuple(self._undo)

    def is_done(self, step_id: int) -> bool:
        """Whether step ``step_id`` is in effect: on the undo stack, or dropped from it to stay in budget (it can
        no longer be undone). An undone step, or one the redo stack lost to a new step, is not."""
        return step_id in self._evicted_ids or any(s.id == step_id for s in self._undo)

    # -- changes --------------------------------------------------------------
    def push(self, step: Step) -> None:
        """Add a done step; clears the redo stack and evicts to stay in budget."""
        self._undo.append(step)
        self._redo.clear()
        self._evict()

    def pop_undo(self) -> Optional[Step]:
        """Move the last done step to the redo stack and return it (the caller reverts it)."""
        if not self._undo:
            return None
        step = self._undo.pop()
        self._redo.append(step)
        return step

    def pop_redo(self) -> Optional[Step]:
        """Move the last undone step back to the undo stack and return it (the caller reapplies it)."""
        if not self._redo:
            return None
        step = self._redo.pop()
        self._undo.append(step)
        return step

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._evicted_ids.clear()
        self.close()

    def close(self) -> None:
        """Remove the files of steps moved to disk (also done when the history is collected)."""
        if self._finalizer is not None and not (self._undo or self._redo):
            self._finalizer()
            self._finalizer = None
            self._folder = None

    def _spill_folder(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-", dir=spill_root()))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._folder), True)
        return self._folder

    def set_budget(self, max_bytes: int, min_steps: Optional[int] = None) -> None:
        self.max_bytes = int(max_bytes)
        if min_steps is not None:
            self.min_steps = int(min_steps)
        self._evict()

    def _evict(self) -> None:
        total = self.nbytes
        while total > self.max_bytes and len(self._undo) > self.min_steps:
            gone = self._undo.pop(0)
            total -= gone.nbytes
            self._evicted_ids.add(gone.id)
            self.evicted += 1
        if total <= self.max_bytes:
            return
        # the kept steps alone are over budget: move the oldest to disk (redo steps first, the
        # newest undo step last), so memory stays bounded while undo still works
        for step in self._redo + self._undo:
            if total <= self.max_bytes:
                break
            if step.on_disk:
                continue
            before = step.nbytes
            try:
                step.spill(self._spill_folder())
            except (OSError, ValueError) as exc:  # never out of push(): the step is done, only undo memory is short
                reason = getattr(exc, "strerror", None) or str(exc)
                self.spill_error = (f"Undo steps could not be moved to disk ({reason}; folder {spill_root()}): "
                                    "they stay in memory, over the undo memory budget. Your edits are not "
                                    "affected; free disk space there, or save and restart to release the memory.")
                break
            total -= before - step.nbytes
            self.spilled += 1


#: folders of undo steps moved to disk: ``SPILL_PREFIX<pid>-<random>`` in :func:`spill_root`
SPILL_PREFIX = "lunglens-undo-"
_SPILL_PID = re.compile(re.escape(SPILL_PREFIX) + r"(\d+)-")
#: a spill folder without a process id (older versions) is stale after a day
_SPILL_MAX_AGE_S = 24 * 3600.0


def spill_root() -> str:
    """Where undo steps go to disk: the system's temporary folder."""
    return tempfile.gettempdir()


def clean_stale_spills(root: Optional[str | os.PathLike] = None) -> list[Path]:
    """Remove the undo folders of sessions that ended without cleaning up (the app's quick exit,
    a crash); return what was removed. A folder is stale when the process named in it no longer
    runs, or, without a process id, when it is over a day old. Called once at application start.
    """
    from ..io.atomic import _alive  # the same liveness test as the export temporaries

    removed: list[Path] = []
    now = time.time()
    try:
        entries = [p for p in Path(root or spill_root()).iterdir() if p.name.startswith(SPILL_PREFIX) and p.is_dir()]
    except OSError:
        return removed
    for p in entries:
        m = _SPILL_PID.match(p.name)
        try:
            stale = not _alive(int(m.group(1))) if m else now - p.lstat().st_mtime > _SPILL_MAX_AGE_S
        except OSError:
            continue
        if stale and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            if not p.exists():
                removed.append(p)
    return removed
