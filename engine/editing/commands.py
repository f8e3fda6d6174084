"""Whole-volume editing commands: remove small islands, keep the largest component, fill between slices.

Each is one undo step on the current label through the editor; each returns the number
of voxels it changed (0 when nothing needed doing).
"""

from __future__ import annotations

from ..labels import DEFAULT_TABLE
from . import ops
from .editor import LabelEditor


def _name(value: int) -> str:
    return DEFAULT_TABLE[value].name


def small_islands_region(editor: LabelEditor, value: int, min_ml: float) -> ops.Region:
    """The connected pieces of ``value`` smaller than ``min_ml`` millilitres (only reads the labels: a worker
    may compute it)."""
    min_voxels = max(int(round(min_ml / editor.geometry.voxel_volume_ml)), 1)
    return ops.small_islands(editor.labels, value, min_voxels)


def outside_largest_region(editor: LabelEditor, value: int) -> ops.Region:
    """Every piece of ``value`` but the largest (only reads the labels)."""
    return ops.outside_largest_component(editor.labels, value)


def remove_small_islands(editor: LabelEditor, value: int, min_ml: float) -> int:
    """Erase the connected pieces of ``value`` smaller than ``min_ml`` millilitres."""
    region = small_islands_region(editor, value, min_ml)
    step = editor.paint(region, 0, name=f"Remove islands of {_name(value)}", mode="label", over_label=value)
    return 0 if step is None else step.delta.count


def keep_largest_component(editor: LabelEditor, value: int) -> int:
    """Erase every piece of ``value`` but the largest."""
    region = outside_largest_region(editor, value)
    step = editor.paint(region, 0, name=f"Keep largest {_name(value)}", mode="label", over_label=value)
    return 0 if step is None else step.delta.count


def fill_between_slices(editor: LabelEditor, value: int, axis: int = 0, mode: str = "background",
                        over_label: int | None = None, at: int | None = None) -> int:
    """Interpolate ``value`` across the gaps between consecutive slices that hold it (one step).

    With ``at`` (the slice shown) strictly inside a gap, only that gap is filled;
    otherwise every gap is. Only voxels the paint-over ``mode`` allows are painted
    (default: background only, so other findings are kept).
    """
    slices = ops.labelled_slices(editor.labels, value, axis)
    gaps = [(a, b) for a, b in zip(slices[:-1], slices[1:]) if b - a > 1]
    if at is not None and any(a < at < b for a, b in gaps):
        gaps = [(a, b) for a, b in gaps if a < at < b]
    regions = [ops.interpolate_between_slices(editor.labels, value, a, b, axis, editor.spacing)
               for a, b in gaps]
    regions = [r for r in regions if not r.empty]
    if not regions:
        return 0
    with editor.stroke("Fill between slices") as s:
        for r in regions:
            s.paint(r, value, mode=mode, over_label=over_label)
    return 0 if s.step is None else s.step.delta.count
