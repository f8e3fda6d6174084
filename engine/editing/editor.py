"""The label editor: the one owner of a label array, its history and its journal.

Every mutation of the labels goes through :class:`LabelEditor` so that undo, the
crash-safe journal and the "changed by a person since the last AI result"
tracking see it. The editor has no Qt dependency; the application mirrors it by
registering callbacks (:attr:`LabelEditor.changed` gets the box of voxels that
changed, :attr:`LabelEditor.history_changed` fires when undo/redo names change).

A stroke is one undo step::

    with editor.stroke("Brush GGO") as s:
        for p0, p1 in drag_events:
            s.paint(ops.brush_segment(shape, spacing, p0, p1, 5.0), GGO)

An exception inside the block, or ``s.cancel()``, rolls the whole stroke back.
GUI tools that cannot hold a ``with`` block across mouse events call
``s = editor.stroke(name)`` on press and ``s.commit()`` / ``s.cancel()`` on
release / Esc.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Callable, Optional

import numpy as np

from ..display.overlay import label_counts
from ..labels import DEFAULT_TABLE, LabelTable
from ..types import Geometry
from . import ops
from .history import Delta, History, Step
from .journal import Journal, Replay, read_journal

log = logging.getLogger(__name__)

Box = tuple[slice, slice, slice]


def _bincount(values: np.ndarray) -> np.ndarray:
    """Voxels per value 0..255 without widening a whole scan to 64-bit integers (``np.bincount`` does: 2 GB
    for the 262 M changed voxels of a full-volume fill of a 1000-slice scan)."""
    return label_counts(np.asarray(values, dtype=np.uint8))


class Stroke:
    """One open undo step; see :meth:`LabelEditor.stroke`."""

    def __init__(self, editor: "LabelEditor", name: str) -> None:
        self.editor = editor
        self.name = name
        self._events: list[tuple[Box, np.ndarray, np.ndarray]] = []
        self.closed = False
        self.step: Optional[Step] = None

    # -- painting -------------------------------------------------------------
    def paint(self, region: ops.Region, value: int, mode: str = "everything",
              over_label: Optional[int] = None, hu_range: Optional[tuple[float, float]] = None) -> Optional[Box]:
        """Set ``region``'s voxels to ``value``, filtered by paint-over mode and HU range.

        Returns the box that changed, or ``None`` when no voxel changed.
        """
        if self.closed:
            raise RuntimeError("this stroke is already closed")
        ed = self.editor
        region = ops.restrict_paint_over(region, ed.labels, mode, over_label)
        if hu_range is not None:
            if ed.intensities is None:
                raise ValueError("the threshold brush needs the editor's intensities")
            region = ops.restrict_to_range(region, ed.intensities, *hu_range)
        if region.empty:
            return None
        value = int(value)
        view = ed.labels[region.box]
        sel = region.mask & (view != value)
        if not sel.any():
            return None
        old = view[sel]
        view[sel] = value
        ed._count(old, value)
        self._events.append((region.box, sel, old))
        ed._track(region.box, sel, old, np.full(old.shape, value, np.uint8))
        ed._notify(region.box)
        return region.box

    @property
    def box(self) -> Optional[Box]:
        """Union box of everything painted so far (None when nothing)."""
        if not self._events:
            return None
        box = self._events[0][0]
        for b, _, _ in self._events[1:]:
            box = ops.box_union(box, b)
        return box

    # -- closing --------------------------------------------------------------
    def cancel(self) -> None:
        """Roll back everything this stroke painted; no undo step is made."""
        if self.closed:
            return
        ed = self.editor
        box = self.box
        for b, sel, old in reversed(self._events):
            view = ed.labels[b]
            cur = view[sel]
            view[sel] = old
            ed._counts += _bincount(old) - _bincount(cur)
            ed._track(b, sel, cur, old)
        self._events.clear()
        self._close()
        if box is not None:
            ed._notify(box)

    def commit(self) -> Optional[Step]:
        """Make the stroke one undo step (and journal it); ``None`` when nothing changed."""
        if self.closed:
            return self.step
        box = self.box
        ed = self.editor
        if box is not None:
            after = ed.labels[box].copy()
            before = after.copy()
            for b, sel, old in reversed(self._events):
                sub = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(b, box))
                before[sub][sel] = old
            delta = Delta.from_box(box, before, after)
            if delta is not None:
                self.step = Step(self.name, delta, "person")
        self._events.clear()
        self._close()
        if self.step is not None:
            ed._commit(self.step)
        return self.step

    def _close(self) -> None:
        self.closed = True
        if self.editor._stroke is self:
            self.editor._stroke = None

    def __enter__(self) -> "Stroke":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.cancel()
        else:
            self.commit()
        return False


class LabelEditor:
    """Owner of a ``uint8`` ``(z, y, x)`` label array, its undo history and journal.

    Parameters
    ----------
    labels
        The label array; the editor owns it from now on and mutates it in place.
    geometry
        Voxel grid (spacing for brush sizes and mL).
    intensities
        The scan's array (HU), for the threshold brush.
    history
        A :class:`History` (default: 512 MB, at least 10 steps).
    journal
        A :class:`Journal`; it is started at the first committed step.
    table
        Label table (names for step titles and mL reports).
    """

    def __init__(self, labels: np.ndarray, geometry: Optional[Geometry] = None, *,
                 intensities: Optional[np.ndarray] = None, history: Optional[History] = None,
                 journal: Optional[Journal] = None, source: Optional[str] = None,
                 table: LabelTable = DEFAULT_TABLE) -> None:
        if labels.ndim != 3 or labels.dtype != np.uint8:
            raise ValueError(f"labels must be a 3D uint8 array, got {labels.dtype} {labels.shape}")
        if geometry is not None and tuple(geometry.shape) != labels.shape:
            raise ValueError(f"labels shape {labels.shape} != geometry shape {geometry.shape}")
        self.labels = labels if labels.flags.c_contiguous else np.ascontiguousarray(labels)
        self.geometry = geometry if geometry is not None else Geometry(labels.shape)
        self.intensities = intensities
        self.history = history if history is not None else History()
        self.journal = journal
        self.journal_error: Optional[str] = None
        #: set by :meth:`from_journal` when the journal was damaged: a sentence for the user
        self.restore_problem = ""
        self.source = source
        self.table = table
        #: callbacks ``f(box)`` run after voxels in ``box`` changed
        self.changed: list[Callable[[Box], None]] = []
        #: callbacks ``f()`` run after a step was committed, undone or redone, or the labels saved
        self.history_changed: list[Callable[[], None]] = []
        self._stroke: Optional[Stroke] = None
        self.dirty = False
        self._clean = -1  # the history position of the labels last saved (see _position): the start
        #: increases at every committed, undone or redone step (to tell whether labels changed meanwhile)
        self.version = 0
        # the starting labels are the reference of hand-edit tracking: nothing is changed yet
        self._baseline: Optional[np.ndarray] = labels.copy() if labels.any() else None
        self._baseline_lent = False  # handed out by reference_copy: copy before changing it in place
        self._added = np.zeros(256, np.int64)
        self._removed = np.zeros(256, np.int64)
        self._initial_zero = self._baseline is None
        #: voxels per label value (length 256), kept up to date by every change: the one tally
        self._counts = _bincount(self.labels)
        if journal is not None and not self._initial_zero and not journal.started:
            # store non-empty starting labels now (scan open), not at the first stroke
            self._start_journal(self.labels)

    # -- properties -----------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.labels.shape  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    @property
    def counts(self) -> np.ndarray:
        """Voxels per label value (``int64``, length 256), exact after every change. Do not modify."""
        return self._counts

    @property
    def stroke_active(self) -> bool:
        return self._stroke is not None

    # -- strokes and steps ----------------------------------------------------
    def stroke(self, name: str) -> Stroke:
        """Open a stroke: everything painted through it is one undo step."""
        if self._stroke is not None:
            raise RuntimeError(f"a stroke ({self._stroke.name!r}) is already open")
        self._stroke = Stroke(self, name)
        return self._stroke

    def cancel_stroke(self) -> bool:
        """Roll back the open stroke, if any (Esc while drawing). True when one was open."""
        if self._stroke is None:
            return False
        self._stroke.cancel()
        return True

    def paint(self, region: ops.Region, value: int, name: str = "Paint", **kw) -> Optional[Step]:
        """Paint one region as one undo step (see :meth:`Stroke.paint` for ``kw``)."""
        with self.stroke(name) as s:
            s.paint(region, value, **kw)
        return s.step

    def apply_labels(self, new: np.ndarray, name: str, kind: str = "person",
                     reference: Optional[np.ndarray] = None) -> Optional[Step]:
        """Replace the whole label array by ``new`` as one undo step (only the changed voxels are stored).

        ``kind`` is ``"person"`` (a hand edit), ``"ai"`` (a model result) or ``"load"`` (labels
        opened from a file); after ``"ai"`` and ``"load"`` steps, hand-edit tracking starts afresh
        from ``reference`` (default ``new``): voxels where the labels differ from it count as
        changed by a person.
        """
        if self._stroke is not None:
            raise RuntimeError("finish the open stroke before replacing the labels")
        new = np.asarray(new)
        if new.shape != self.labels.shape:
            raise ValueError(f"new labels shape {new.shape} != {self.labels.shape}")
        new = new.astype(np.uint8, copy=False)
        delta = Delta.between(self.labels, new)
        baseline = None
        if kind in ("ai", "load"):
            ref = new if reference is None else np.asarray(reference).astype(np.uint8, copy=False)
            baseline = Delta.between(self._baseline, ref)
            if delta is None and baseline is None:
                return None
            if delta is None:  # the labels already equal the AI result: store an empty-change step
                delta = Delta((0, 0, 0, 0, 0, 0), np.zeros(0, np.uint8), np.zeros(0, np.uint8),
                              np.zeros(0, np.uint8))
        elif delta is None:
            return None
        step = Step(name, delta, kind, baseline)
        self._do(step)
        self._commit(step)
        return step

    def apply_box(self, box: Box, values: np.ndarray, name: str, kind: str = "person") -> Optional[Step]:
        """Write ``values`` (the box's shape) into ``box`` as one undo step (e.g. a partial result)."""
        if self._stroke is not None:
            raise RuntimeError("finish the open stroke before writing a block")
        before = self.labels[box]
        after = np.asarray(values).astype(np.uint8, copy=False)
        if after.shape != before.shape:
            raise ValueError(f"values of shape {after.shape} do not fit the box {before.shape}")
        delta = Delta.from_box(box, before, after)
        if delta is None:
            return None
        step = Step(name, delta, "person" if kind not in ("ai", "load") else kind)
        if kind in ("ai", "load"):  # the reference follows the written block
            base = self._baseline if self._baseline is not None else np.zeros_like(self.labels)
            step.baseline = Delta.from_box(box, base[box], after)
        self._do(step)
        self._commit(step)
        return step

    def apply_ai_result(self, labels: np.ndarray, name: str = "AI segmentation",
                        keep_person: Optional[np.ndarray] = None) -> Optional[Step]:
        """Accept a model's label map as one undo step and make it the "last AI result".

        Voxels changed after this call count as changed by a person (:meth:`person_mask`).
        ``keep_person`` (boolean) marks voxels that stay a person's edit across the accept
        (:func:`engine.editing.assist.merge_proposal` kept their value): the reference keeps its
        previous value there, so provenance is not handed to the model. Undoing the step
        restores the labels and the previous reference.
        """
        reference = None
        if keep_person is not None and np.any(keep_person):  # none kept (the usual accept): the AI labels
            base = self._baseline if self._baseline is not None else np.uint8(0)
            reference = np.where(np.asarray(keep_person, bool), base, np.asarray(labels, np.uint8))
        return self.apply_labels(labels, name, kind="ai", reference=reference)

    def undo(self) -> Optional[str]:
        """Revert the last step, or only the stroke being drawn; returns its name (None: nothing to undo)."""
        if self._stroke is not None:  # Ctrl+Z mid-stroke takes back that stroke only, not the step before it too
            name, _ = self._stroke.name, self._stroke.cancel()
            return name
        step = self.history.pop_undo()
        if step is None:
            return None
        self._apply(step, forward=False)
        self._moved_in_history("undo")
        return step.name

    def redo(self) -> Optional[str]:
        """Reapply the last undone step; returns its name (None when there is nothing to redo)."""
        if self._stroke is not None:
            self._stroke.cancel()
        step = self.history.pop_redo()
        if step is None:
            return None
        self._apply(step, forward=True)
        self._moved_in_history("redo")
        return step.name

    def _position(self) -> int:
        """Where the labels stand in the history: the last done step's id (no step: the start, told apart from
        a start whose first steps were dropped to stay in budget)."""
        steps = self.history.undo_steps
        return steps[-1].id if steps else -1 - self.history.evicted

    def _moved_in_history(self, kind: str) -> None:
        # undone or redone back to the labels last saved (or the start, never saved): nothing is unsaved
        self.dirty, self.version = self._position() != self._clean, self.version + 1
        self._journal(kind)
        if not self.dirty and self.journal is not None and self.journal.started:
            self.journal.mark_saved("(undone or redone back to the saved labels)")
        self._announce()

    def mark_saved(self, target: Optional[str] = None) -> None:
        """Note that the labels were exported: no unsaved edits remain (recorded in the journal)."""
        self.dirty, self._clean = False, self._position()
        if self.journal is not None and self.journal.started:
            try:
                self.journal.mark_saved(target)
            except OSError as exc:  # pragma: no cover - disk trouble
                self._journal_failed(exc)
        self._announce()

    # -- "changed by a person" ------------------------------------------------
    def person_mask(self, box: Optional[Box] = None) -> np.ndarray:
        """Voxels (of ``box``, a tuple of slices) that differ from the last AI result (or the starting labels)."""
        box = box if box is not None else (slice(None),) * 3
        return ops.edited_voxels(self.labels[box], None if self._baseline is None else self._baseline[box])

    def reference_copy(self) -> Optional[np.ndarray]:
        """What :meth:`person_mask` compares with (``None``: all zero), read-only, for a worker to compare a copy
        of the labels with while edits go on. Copy-on-write: the editor copies it before it next changes it (an AI
        or load step, their undo), so Ctrl+S does not copy 78 MB (0.14 s on a 300-slice scan) that rarely change."""
        if self._baseline is None:
            return None
        self._baseline_lent = True
        view = self._baseline.view()
        view.flags.writeable = False
        return view

    def _own_baseline(self) -> np.ndarray:
        """The reference, to be changed in place: a copy when it was handed out (:meth:`reference_copy`)."""
        if self._baseline is None:
            self._baseline = np.zeros_like(self.labels)
        elif self._baseline_lent:
            self._baseline = self._baseline.copy()
        self._baseline_lent = False
        return self._baseline

    def person_changes(self) -> dict[int, tuple[int, int]]:
        """Per label value: ``(voxels added, voxels removed)`` by hand since the last AI result."""
        return {v: (int(self._added[v]), int(self._removed[v]))
                for v in range(1, 256) if self._added[v] or self._removed[v]}

    def person_changes_ml(self) -> dict[str, dict[str, float]]:
        """Per finding key: mL added and removed by hand since the last AI result."""
        vml = self.geometry.voxel_volume_ml
        out = {}
        for lab in self.table:
            out[lab.key] = {"added_ml": float(self._added[lab.value]) * vml,
                            "removed_ml": float(self._removed[lab.value]) * vml}
        return out

    #: baseline value of voxels a person erased when the finding they held is unknown
    #: (provenance read from a file says "edited", not what was there before)
    UNKNOWN_PRIOR = 255

    def adopt_person_edits(self, edited: np.ndarray) -> None:
        """Take over which voxels a person edited, as stored in a file (``.seg.nrrd``, DICOM SEG).

        Afterwards :meth:`person_mask` equals ``edited``: an edited voxel holding a finding
        counts as painted by a person, an edited background voxel as erased (what it held is
        not stored, so :meth:`person_changes` counts it under :attr:`UNKNOWN_PRIOR`). Call it
        right after the labels were opened, before any edit.
        """
        edited = np.asarray(edited, bool)
        if edited.shape != self.labels.shape:
            raise ValueError(f"edited mask {edited.shape} does not match the labels {self.labels.shape}")
        base = self.labels.copy()
        base[edited & (self.labels != 0)] = 0
        base[edited & (self.labels == 0)] = self.UNKNOWN_PRIOR
        before = self._baseline if self._baseline is not None else np.zeros_like(self.labels)
        self._baseline, self._initial_zero = base, False
        if self.journal is not None and self.journal.started:  # else with its first step (_commit)
            self._journal_baseline(before, base)  # a restore must know what a person edited
        self._recount()
        self._announce()

    # -- restore --------------------------------------------------------------
    @classmethod
    def replay(cls, rep: Replay, *, intensities: Optional[np.ndarray] = None, history: Optional[History] = None,
               table: LabelTable = DEFAULT_TABLE) -> "LabelEditor":
        """An editor in the state a decoded journal describes: labels, undo history, AI reference.

        The one journal replay (:meth:`Replay.labels` and :meth:`from_journal` use it); no
        journal is attached.
        """
        ed = cls(rep.initial.copy(), rep.geometry, intensities=intensities, history=history,
                 source=rep.source, table=table)
        budget = (ed.history.max_bytes, ed.history.min_steps)
        ed.history.max_bytes = 1 << 62  # replay exactly, then trim to the budget
        #: what the app should tell the user about a damaged journal ("" when intact)
        ed.restore_problem = rep.problem()
        for kind, step in rep.entries:
            if kind == "baseline" and step is not None and step.baseline is not None:  # adopted provenance
                step.baseline.apply(ed._own_baseline(), forward=True)
                ed._initial_zero = False
                ed._recount()
                continue
            if kind == "lost":  # a damaged record keeps its place as a no-op step (undo/redo stay paired)
                step = Step("Lost edit (damaged journal)", Delta((0, 0, 0, 0, 0, 0), np.zeros(0, np.uint8),
                                                                  np.zeros(0, np.uint8), np.zeros(0, np.uint8)))
                kind = "step"
            if kind == "step" and step is not None:
                ed._do(step)
                ed.history.push(step)
                ed.dirty = True
            elif kind in ("undo", "redo"):
                if (s := (ed.history.pop_undo() if kind == "undo" else ed.history.pop_redo())) is not None:
                    ed._apply(s, forward=kind == "redo")
                ed.dirty = ed._position() != ed._clean
            elif kind == "saved":
                ed.dirty, ed._clean = False, ed._position()
        ed.history.set_budget(*budget)
        return ed

    @classmethod
    def from_journal(cls, path: str | os.PathLike, *, intensities: Optional[np.ndarray] = None,
                     history: Optional[History] = None, table: LabelTable = DEFAULT_TABLE) -> "LabelEditor":
        """Rebuild an editor (labels, undo history, AI reference) from a journal and keep journaling to it."""
        journal = Journal(path)
        journal.resume()  # the lock first: another window cannot discard it between the read and the resume
        try:
            ed = cls.replay(read_journal(path), intensities=intensities, history=history, table=table)
        except BaseException:
            journal.close()
            raise
        ed.journal = journal
        return ed

    # -- internals ------------------------------------------------------------
    def _do(self, step: Step) -> None:
        self._apply(step, forward=True)

    def _apply(self, step: Step, forward: bool) -> None:
        d = step.delta
        if d.count:
            sl = d.slices
            mask = d.mask()
            step.delta.apply(self.labels, forward, mask=mask)
            gone, come = (d.old, d.new) if forward else (d.new, d.old)
            self._counts += _bincount(come) - _bincount(gone)
            if step.baseline is None:
                old, new = (d.old, d.new) if forward else (d.new, d.old)
                self._track(sl, mask, old, new)
        if step.baseline is not None:
            step.baseline.apply(self._own_baseline(), forward)
            self._recount()
        if d.count:
            self._notify(d.slices)

    def _start_journal(self, initial: Optional[np.ndarray]) -> None:
        assert self.journal is not None
        try:
            self.journal.start(initial, self.geometry, self.source, shape=self.shape)
        except OSError as exc:
            self._journal_failed(exc)

    def _commit(self, step: Step) -> None:
        if self.journal is not None and not self.journal.started and self.journal_error is None:
            if self._initial_zero and self.version == 0:
                self._start_journal(None)  # the first step ever: the labels before it were all zero
            else:
                before = self.labels.copy()
                step.delta.apply(before, forward=False)
                self._start_journal(before)
                self._journal_adopted_baseline(before, step)
        self.history.push(step)
        self.dirty = True
        self.version += 1
        self._journal("step", step)
        self._announce()

    def _journal_adopted_baseline(self, initial: np.ndarray, step: Step) -> None:
        """After a lazy journal start: record the reference as it was before ``step`` when it
        is not the starting labels (provenance adopted from a file before any edit)."""
        if self.journal is not None and self.journal.started and self._baseline is not None:
            base = self._baseline.copy()
            if step.baseline is not None:
                step.baseline.apply(base, forward=False)
            self._journal_baseline(initial, base)

    def _journal_baseline(self, before: np.ndarray, after: np.ndarray) -> None:
        try:
            self.journal.append_baseline(before, after)  # type: ignore[union-attr]
        except OSError as exc:
            self._journal_failed(exc)

    def _journal(self, kind: str, step: Optional[Step] = None) -> None:
        j = self.journal
        if j is None or not j.started:
            return
        try:
            if kind == "step":
                assert step is not None
                j.append_step(step)
            elif kind == "undo":
                j.append_undo()
            else:
                j.append_redo()
        except OSError as exc:
            self._journal_failed(exc)

    def _journal_failed(self, exc: OSError) -> None:
        # what to do depends on why: a full disk, a folder that cannot be written
        fix = "Free disk space" if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) else \
            f"Make {self.journal.path.parent if self.journal else 'the data folder'} writable (or set LUNGLENS_DATA_DIR)"
        self.journal_error = (f"Could not write the edit journal ({exc}); edits are not protected "
                              f"against a crash. {fix} and export your labels.")
        log.warning(self.journal_error)

    def _track(self, box: Box, sel: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Update the hand-edit counters for voxels ``sel`` of ``box`` going from ``old`` to ``new``."""
        if self._baseline is None:  # all-zero reference: a zero value is no change
            moved_new, moved_old = new != 0, old != 0
            self._added += _bincount(new[moved_new]) - _bincount(old[moved_old])
            self._removed[0] += int(np.count_nonzero(moved_new)) - int(np.count_nonzero(moved_old))
            return
        base = self._baseline[box][sel]
        moved_new, moved_old = new != base, old != base
        self._added += _bincount(new[moved_new]) - _bincount(old[moved_old])
        self._removed += _bincount(base[moved_new]) - _bincount(base[moved_old])

    def _recount(self) -> None:
        # label_counts, not np.bincount: bincount widens every voxel to 64 bits (0.26 s on the GUI thread when
        # a .seg.nrrd of 300 slices opened, QA pass)
        if self._baseline is None:
            self._added = _bincount(self.labels)
            self._added[0] = 0
            self._removed = np.zeros(256, np.int64)
            return
        diff = self.labels != self._baseline
        self._added = _bincount(self.labels[diff])
        self._removed = _bincount(self._baseline[diff])

    def _count(self, old: np.ndarray, value: int) -> None:
        """``old`` voxels became ``value``."""
        self._counts -= _bincount(old)
        self._counts[int(value)] += old.size

    def _notify(self, box: Box) -> None:
        for cb in list(self.changed):
            cb(box)

    def _announce(self) -> None:
        for cb in list(self.history_changed):
            cb()

