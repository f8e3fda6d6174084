"""Decisions that protect an annotator's work: merging AI proposals, filling between slices, leaks.

The functions here are pure (numpy in, numpy or a plan out) so that the app's flows stay
thin and each rule is tested without a window:

- :func:`merge_proposal` lays an AI proposal over the current labels without touching the
  voxels a person painted, optionally for some findings only (per-finding accept);
- :func:`proposal_changes` says where and how much a proposal would change the labels,
  for the preview and the accept dialog;
- :func:`plan_fill_between` picks the two slices a person edited for a label around the
  cursor and interpolates only that gap (Slicer's "fill between slices" and ITK-SNAP's
  interpolation work from the user's key slices, not from every slice holding the label);
- :func:`describe_extent` and :func:`leak_question` turn a fill region into words a user
  understands (mL and slices) and ask before a fill that escaped an open outline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from . import ops

Spacing = tuple[float, float, float]


# ---------------------------------------------------------------- AI proposals
def merge_proposal(current: np.ndarray, proposal: np.ndarray, person: np.ndarray,
                   values: Optional[Iterable[int]] = None) -> np.ndarray:
    """The labels after accepting ``proposal``: a person's voxels always win.

    Parameters
    ----------
    current
        ``uint8`` labels now (AI results, opened labels, hand edits).
    proposal
        ``uint8`` labels the model proposes, same shape.
    person
        Boolean mask of the voxels a person painted or erased (``LabelEditor.person_mask``,
        which also covers strokes made while the model ran). They keep their value.
    values
        Label values to accept from the proposal (per-finding accept); ``None`` accepts all.
        For an accepted value, the proposal decides where it is and where it is not (outside
        the person's voxels); voxels of other values keep their current label.

    Returns
    -------
    numpy.ndarray
        A new ``uint8`` array; the inputs are not changed.
    """
    current = np.asarray(current)
    proposal = np.asarray(proposal)
    if current.shape != proposal.shape or current.shape != person.shape:
        raise ValueError(f"shapes differ: labels {current.shape}, proposal {proposal.shape}, person {person.shape}")
    person = np.asarray(person, bool)
    if values is None and not person.any():  # nobody edited (the usual accept): the proposal, without a mask pass
        return proposal.astype(np.uint8, copy=True)
    out = current.copy()
    free = ~person
    if values is None:
        np.copyto(out, proposal, where=free)
        return out
    accepted = np.zeros(256, bool)
    for v in values:
        accepted[int(v)] = True
    # set where the proposal has an accepted value; clear where the current label is an
    # accepted value that the proposal no longer places there
    take = free & accepted[proposal]
    clear = free & accepted[current] & ~accepted[proposal]
    np.copyto(out, proposal, where=take)
    out[clear] = 0
    return out


@dataclass(frozen=True)
class ProposalChanges:
    """What accepting a proposal would change, per label value.

    Attributes
    ----------
    added, removed
        Voxels each value would gain / lose, indexed by label value (length 256).
    kept_by_person
        Voxels where the proposal differs from a person's edit, which the merge keeps.
    """

    added: np.ndarray
    removed: np.ndarray
    kept_by_person: int

    def changed(self) -> bool:
        return bool(self.added.any() or self.removed.any())


def proposal_changes(current: np.ndarray, merged: np.ndarray, proposal: np.ndarray,
                     person: np.ndarray) -> ProposalChanges:
    """Counts of what :func:`merge_proposal` changes and what it left to the person."""
    diff = current != merged
    added = np.bincount(merged[diff], minlength=256)
    removed = np.bincount(current[diff], minlength=256)
    added[0] = removed[0] = 0
    person = np.asarray(person, bool)
    kept = int(np.count_nonzero(person & (proposal != current))) if person.any() else 0
    return ProposalChanges(added, removed, kept)


def difference_mask(current: np.ndarray, proposal: np.ndarray) -> np.ndarray:
    """``uint8`` map of where a proposal differs: 1 the proposal adds a finding, 2 it removes one,
    3 it changes one finding into another; 0 elsewhere (for a preview layer)."""
    out = np.zeros(current.shape, np.uint8)
    differs = current != proposal
    out[differs & (current == 0)] = 1
    out[differs & (proposal == 0)] = 2
    out[differs & (current != 0) & (proposal != 0)] = 3
    return out


# ---------------------------------------------------------------- fill between slices
@dataclass(frozen=True)
class FillBetweenPlan:
    """The gap :func:`plan_fill_between` chose, or why there is nothing to do.

    Attributes
    ----------
    start, stop
        The two key slices (exclusive bounds of the filled slices), or None.
    region
        The interpolated voxels (only those that are background now are meant to be
        painted), or None.
    reason
        Empty when a fill was planned; otherwise a sentence for the user.
    """

    start: Optional[int]
    stop: Optional[int]
    region: Optional[ops.Region]
    reason: str = ""
    #: the array axis of the slices (0 axial, 1 coronal, 2 sagittal)
    axis: int = 0

    @property
    def ok(self) -> bool:
        return self.region is not None and not self.region.empty


def key_slices(labels: np.ndarray, person: np.ndarray, value: int, axis: int = 0) -> list[int]:
    """Slices along ``axis`` where a person painted ``value`` (the interpolation's key slices)."""
    painted = (labels == value) & np.asarray(person, bool)
    other = tuple(i for i in range(3) if i != axis)
    return [int(i) for i in np.flatnonzero(painted.any(axis=other))]


def plan_fill_between(labels: np.ndarray, person: np.ndarray, value: int, cursor: int, axis: int = 0,
                      spacing: Spacing = (1.0, 1.0, 1.0), name: str = "the label") -> FillBetweenPlan:
    """Interpolate ``value`` across the gap around ``cursor`` between two hand-edited slices.

    Only slices where a person painted ``value`` count as key slices, so specks of an AI result
    do not split the user's gap. The gap is the one that contains ``cursor``; when the cursor is
    on a key slice, the gap that starts or ends there and is not yet filled is taken (the next one
    first). Only the key slices' own painted voxels shape the interpolation.
    """
    keys = key_slices(labels, person, value, axis)
    if len(keys) < 2:
        have = "one slice" if keys else "no slice"
        return FillBetweenPlan(None, None, None,
                               f"Nothing to fill: {name} is painted by hand on {have}. Paint it on two "
                               "slices with a gap between them, then fill between them.")
    gaps = [(a, b) for a, b in zip(keys[:-1], keys[1:]) if b - a >= 2]
    if not gaps:
        return FillBetweenPlan(None, None, None,
                               f"Nothing to fill: the slices where {name} was painted by hand are adjacent.")
    inside = [g for g in gaps if g[0] < cursor < g[1]]
    if not inside:
        touching = [g for g in gaps if cursor in g]
        inside = sorted(touching, key=lambda g: g[0] != cursor)
    if not inside:
        return FillBetweenPlan(None, None, None,
                               f"Nothing to fill here: move to a slice between two slices where {name} "
                               f"was painted by hand (painted on slices {_slice_list(keys)}).")
    a, b = inside[0]
    painted = np.where(np.asarray(person, bool), labels, 0)
    region = ops.interpolate_between_slices(painted, value, a, b, axis, spacing)
    return FillBetweenPlan(a, b, region, "" if not region.empty else
                           f"Nothing to fill between slices {a + 1} and {b + 1}: the interpolation is empty.", axis)


def fill_between_change(labels: np.ndarray, person: np.ndarray, value: int, cursor: int | Sequence[int],
                        spacing: Spacing, name: str, mode: str, over_label: Optional[int],
                        axes: Sequence[int] = (0,),
                        protect: Iterable[int] = ()) -> str | tuple[FillBetweenPlan, ops.Region]:
    """The fill between slices the app previews: the plan's voxels that the paint-over ``mode`` allows and that
    change, with the plan; or why there is nothing to fill. Only reads ``labels`` (a worker may run it).

    ``axes`` are tried in order (the view the person works in first): strokes on coronal slices fill between
    coronal slices, which along the axial axis are adjacent (QA pass: "Nothing to fill ... adjacent", where
    3D Slicer fills in any orientation). ``cursor`` is the ``(z, y, x)`` cursor (an int: its axial index).
    Voxels holding a value of ``protect`` (labels a person has hidden) are never changed.
    """
    protect = [int(v) for v in protect]
    reason = ""
    for axis in axes:
        at = int(cursor) if isinstance(cursor, (int, np.integer)) else int(cursor[axis])
        plan = plan_fill_between(labels, person, value, at, axis, spacing, name)
        if not plan.ok:
            reason = reason or plan.reason
            continue
        allowed = ops.restrict_paint_over(plan.region, labels, mode, over_label)
        region = ops.without_values(allowed, labels, protect)
        change = region.mask & (labels[region.box] != value) if not region.empty else None
        if change is None or not change.any():
            hidden = allowed.count > region.count  # it would have changed voxels of hidden labels only
            reason = reason or ("Nothing to fill: between those slices only hidden labels would change. Show them "
                                "(H) to fill there." if hidden else
                                f"Nothing to fill: the slices between {plan.start + 1} and {plan.stop + 1} already "
                                f"hold {name} there.")
            continue
        return plan, ops.Region(region.box, change)
    return reason


def fill_preview(labels: np.ndarray, region: ops.Region) -> np.ndarray:
    """A preview map of ``region``: 1 where it adds to the background, 3 where it changes another finding."""
    preview = np.zeros(labels.shape, np.uint8)
    view = preview[region.box]
    view[region.mask & (labels[region.box] == 0)] = 1
    view[region.mask & (labels[region.box] != 0)] = 3
    return preview


def _slice_list(indices: Sequence[int], limit: int = 6) -> str:
    shown = ", ".join(str(i + 1) for i in indices[:limit])
    return shown + (", ..." if len(indices) > limit else "")


# ---------------------------------------------------------------- leaks
@dataclass(frozen=True)
class Extent:
    """Size of a region in words: voxels, mL (None without spacing) and slices along an axis."""

    voxels: int
    ml: Optional[float]
    slices: int

    def describe(self) -> str:
        size = f"{self.ml:.1f} mL" if self.ml is not None else f"{self.voxels:,} voxels"
        return f"{size} over {self.slices} slice{'s' if self.slices != 1 else ''}"


def describe_extent(region: ops.Region, spacing: Optional[Spacing], axis: int = 0) -> Extent:
    """How big a region is; ``spacing=None`` (unknown) gives no mL."""
    voxels = region.count
    if voxels:
        other = tuple(i for i in range(3) if i != axis)
        slices = int(np.count_nonzero(region.mask.any(axis=other)))
    else:
        slices = 0
    ml = None if spacing is None else voxels * float(np.prod(spacing)) / 1000.0
    return Extent(voxels, ml, slices)


def touches_border(region: ops.Region, shape: Sequence[int], plane_axis: Optional[int] = None) -> bool:
    """Whether the region reaches the image edge in-plane (a fill that escaped through an open contour).

    The in-plane axes are the two other than ``plane_axis`` (2D fill) or than the slice axis 0
    (3D fill: the first and last slices are ordinary ends of the scan, not an edge to leak through).
    """
    if region.empty:
        return False
    box = region.tight().box
    skip = 0 if plane_axis is None else plane_axis
    return any(box[ax].start == 0 or box[ax].stop == shape[ax] for ax in range(3) if ax != skip)


def leak_question(region: ops.Region, shape: Sequence[int], spacing: Optional[Spacing],
                  plane_axis: Optional[int] = None, max_fraction: float = 0.10) -> Optional[str]:
    """A question to ask before painting a fill that looks like a leak, or None when it looks fine.

    A fill looks like a leak when it reaches the image edge in-plane (the region is open to the
    air around the patient) or covers more than ``max_fraction`` of the slice (2D) or of the scan
    (3D). The question gives the size in mL (voxels when the spacing is unknown) and slices.
    """
    if region.empty:
        return None
    n_total = int(np.prod([n for i, n in enumerate(shape) if i != plane_axis])) if plane_axis is not None \
        else int(np.prod(shape))
    fraction = region.count / max(n_total, 1)
    border = touches_border(region, shape, plane_axis)
    if not border and fraction <= max_fraction:
        return None
    extent = describe_extent(region, spacing, axis=0 if plane_axis is None else plane_axis)
    where = "the slice" if plane_axis is not None else "the scan"
    why = []
    if border:
        why.append("it reaches the edge of the image, so the outline it fills is probably not closed")
    if fraction > max_fraction:
        why.append(f"it covers {100 * fraction:.0f} % of {where}")
    return f"This fill would paint {extent.describe()}: {' and '.join(why)}. Fill anyway?"
